/**
 * `strata logs POD [-c CONTAINER] [-f] [--tail N] [-n NS]`: a container's
 * output, read from the file its node's agent writes on this machine. With
 * -f it keeps printing what is appended until the pod is deleted (or
 * Ctrl-C).
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
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

/** The last `lines` lines of `text` (all of it when `lines` is negative). */
export function lastLines(text: string, lines: number): string {
  if (lines < 0 || text === '') return text;
  if (lines === 0) return '';
  const parts = text.split('\n');
  const trailing = parts.at(-1) === '' ? parts.pop() : undefined;
  return parts.slice(-lines).join('\n') + (trailing === undefined ? '' : '\n');
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

/** Prints what is appended to `path` from `offset` on, until `stillThere` says no. */
async function follow(
  path: string,
  offset: number,
  out: Output,
  stillThere: () => Promise<boolean>,
): Promise<void> {
  const buffer = Buffer.alloc(64 * 1024);
  // A read may end inside a character; the decoder keeps its first bytes for the next.
  const decoder = new StringDecoder('utf8');
  let position = offset;
  let lastCheck = Date.now();
  for (;;) {
    let size = -1;
    try {
      size = statSync(path).size;
    } catch {
      // Not written yet.
    }
    if (size >= 0 && size < position) position = 0; // truncated or replaced
    if (size > position) {
      const fd = openSync(path, 'r');
      try {
        let read;
        while ((read = readSync(fd, buffer, 0, buffer.length, position)) > 0) {
          out.write(decoder.write(buffer.subarray(0, read)));
          position += read;
        }
      } finally {
        closeSync(fd);
      }
    }
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
    let text = '';
    if (existsSync(path)) text = readFileSync(path, 'utf8');
    else if (!values.follow) {
      throw new CommandError(
        `container "${container.name}" of pod ${name} has no logs yet (${path} does not exist; the pod is ${podPhase(pod)})`,
      );
    }
    io.out.write(lastLines(text, tail));
    if (values.follow) {
      await follow(path, Buffer.byteLength(text), io.out, () =>
        podExists(connection, name, namespace, pod.metadata.uid),
      );
    }
    return 0;
  } finally {
    connection.client.close();
  }
}
