/**
 * `strata logs POD [-c CONTAINER] [-f] [--tail N] [-n NS]`: a container's
 * output, read from the file its node's agent writes on this machine: all
 * of the current file, or with --tail N its last N lines, read from the
 * end (a log is up to the agent's rotation cap, 10 MiB by default, and is
 * never read whole into memory). With -f it keeps printing what is
 * appended until the pod is deleted (or Ctrl-C), across rotations: the
 * agent truncates the log after copying it to `<c>.log.1`
 * (src/agent/container-logs.ts), and a new `.1` means what was being
 * followed continues there.
 */
import {
  type Stats,
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readSync,
  statSync,
} from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { rotatedLogPath } from '../agent/container-logs.js';
import { resourceForKind } from '../api/registry.js';
import { isNotFound } from '../client/index.js';
import {
  CommandError,
  UsageError,
  integerFlag,
  namespaceOption,
  parseCommandLine,
  targetOptions,
} from './args.js';
import { type Connection, connect } from './connect.js';
import type { Io, Output } from './io.js';
import { containerLogPath, findPod, podPhase } from './pod-target.js';

const chunkSize = 64 * 1024;

/** The last `lines` lines of `text` (all of it when `lines` is negative). */
export function lastLines(text: string, lines: number): string {
  if (lines < 0 || text === '') return text;
  if (lines === 0) return '';
  const parts = text.split('\n');
  const trailing = parts.at(-1) === '' ? parts.pop() : undefined;
  return parts.slice(-lines).join('\n') + (trailing === undefined ? '' : '\n');
}

/**
 * Where the last `lines` lines of the first `size` bytes of `fd` start,
 * found by reading backwards a chunk at a time (0 for all of it when
 * `lines` is negative). A final newline ends the last line; it starts none.
 */
export function tailOffset(fd: number, size: number, lines: number): number {
  if (lines < 0) return 0;
  if (lines === 0) return size;
  const buffer = Buffer.alloc(chunkSize);
  let end = size;
  let found = 0;
  while (end > 0) {
    const start = Math.max(0, end - chunkSize);
    const read = readSync(fd, buffer, 0, end - start, start);
    for (let i = read - 1; i >= 0; i--) {
      const at = start + i;
      if (buffer[i] !== 0x0a || at === size - 1) continue;
      if (++found === lines) return at + 1;
    }
    end = start;
  }
  return 0;
}

/** Writes bytes `from` to `to` (the end when undefined) of `fd`; returns where it stopped. */
function copyRange(
  fd: number,
  from: number,
  to: number | undefined,
  out: Output,
  decoder: StringDecoder,
): number {
  const buffer = Buffer.alloc(chunkSize);
  let position = from;
  for (;;) {
    const want = to === undefined ? buffer.length : Math.min(buffer.length, to - position);
    if (want <= 0) break;
    const read = readSync(fd, buffer, 0, want, position);
    if (read === 0) break;
    out.write(decoder.write(buffer.subarray(0, read)));
    position += read;
  }
  return position;
}

/** copyRange on a file by name. */
function copyOut(path: string, from: number, out: Output, decoder: StringDecoder): number {
  const fd = openSync(path, 'r');
  try {
    return copyRange(fd, from, undefined, out, decoder);
  } finally {
    closeSync(fd);
  }
}

/** Whether the pod with this uid still exists. */
async function podExists(
  connection: Connection,
  name: string,
  namespace: string,
  uid: string | undefined,
): Promise<boolean> {
  const pods = resourceForKind('v1', 'Pod');
  if (!pods) return false;
  try {
    const pod = await connection.client.get(pods, name, { namespace });
    return pod.metadata.uid === uid;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

function statOf(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** A file's identity: a new `.1` is another inode, or at least changed (renamed in) since. */
function sameFile(a: Stats | undefined, b: Stats | undefined): boolean {
  return a?.ino === b?.ino && a?.ctimeMs === b?.ctimeMs;
}

/** How many polls a log may stay shorter than what was read before it counts as truncated by hand. */
const truncationPolls = 3;

/**
 * Prints what is appended to `path` from `offset` on, until `stillThere`
 * says no; `rotated` is `.1` as it was when `offset` was read up to.
 */
async function follow(
  path: string,
  offset: number,
  rotated: Stats | undefined,
  out: Output,
  decoder: StringDecoder,
  stillThere: () => Promise<boolean>,
): Promise<void> {
  const rotatedPath = rotatedLogPath(path, 1);
  let known = rotated;
  let position = offset;
  let shorter = 0;
  let lastCheck = Date.now();
  for (;;) {
    const newest = statOf(rotatedPath);
    if (newest && !sameFile(newest, known)) {
      // Rotated: the log was copied to .1, then truncated. The rest of what was followed is there.
      known = newest;
      if (newest.size > position) copyOut(rotatedPath, position, out, decoder);
      position = 0;
    }
    const size = statOf(path)?.size ?? -1;
    if (size >= 0 && size < position) {
      // Mid-rotation (.1 is renamed in right after the truncation), or truncated by someone.
      if (++shorter >= truncationPolls) position = 0;
    } else {
      shorter = 0;
    }
    if (size > position) position = copyOut(path, position, out, decoder);
    if (Date.now() - lastCheck > 1000) {
      lastCheck = Date.now();
      if (!(await stillThere())) return;
    }
    await sleep(200);
  }
}

export async function logsCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parseCommandLine('logs', () =>
    parseArgs({
      args: [...argv],
      options: {
        ...targetOptions,
        ...namespaceOption,
        container: { type: 'string', short: 'c' },
        follow: { type: 'boolean', short: 'f' },
        tail: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  const [arg, ...extra] = positionals;
  if (arg === undefined || extra.length > 0) {
    throw new UsageError('strata logs: name one pod, for example "strata logs web-7d4b9-x2k8p"');
  }
  const tail = integerFlag('--tail', values.tail) ?? -1;
  const connection = connect(values);
  try {
    const { pod, name, namespace, container } = await findPod(
      connection,
      arg,
      values.namespace,
      values.container,
      io.err,
    );
    const path = containerLogPath(connection.target.stateDir, pod, container.name);
    // A read may end inside a character; the decoder keeps its first bytes for the next.
    const decoder = new StringDecoder('utf8');
    let end = 0;
    // Taken first: a rotation while the log is read shows as a new .1 when following starts.
    const rotated = statOf(rotatedLogPath(path, 1));
    if (existsSync(path)) {
      const fd = openSync(path, 'r');
      try {
        const size = fstatSync(fd).size;
        end = copyRange(fd, tailOffset(fd, size, tail), size, io.out, decoder);
      } finally {
        closeSync(fd);
      }
    } else if (!values.follow) {
      throw new CommandError(
        `container "${container.name}" of pod ${name} has no logs yet (${path} does not exist; the pod is ${podPhase(pod)})`,
      );
    }
    if (values.follow) {
      await follow(path, end, rotated, io.out, decoder, () =>
        podExists(connection, name, namespace, pod.metadata.uid),
      );
    } else {
      io.out.write(decoder.end());
    }
    return 0;
  } finally {
    connection.client.close();
  }
}
