/**
 * Container log rotation, as kubelet's container log manager does it
 * (pkg/kubelet/logs: containerLogMaxSize, containerLogMaxFiles,
 * containerLogMonitorInterval): every interval, each `pods/<uid>/<c>.log`
 * larger than the cap is rotated, keeping at most `maxFiles` files per
 * container — `<c>.log` (the one written), `<c>.log.1` (the newest rotated),
 * `<c>.log.2`... — the oldest removed.
 *
 * A container writes its own log: its stdout and stderr are the file, opened
 * O_APPEND (containers.ts), so that it outlives the agent that started it.
 * The agent cannot reopen another process's descriptor, so rotation is
 * "copytruncate" (logrotate): the file is copied to `<c>.log.1` and
 * truncated in place, and the container's next write lands at offset 0.
 * Bytes written between the last copy and the truncation are lost; the copy
 * is topped up just before truncating to keep that window to microseconds.
 * Readers that follow the file (`strata logs -f`) see `<c>.log.1` change
 * identity (it is renamed in after the truncation) and read the rest of
 * what they were following from it.
 */
import {
  closeSync,
  copyFileSync,
  ftruncateSync,
  openSync,
  readSync,
  readdirSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { messageChain } from '../cni/errors.js';

export interface LogRotationLimits {
  /** A log larger than this is rotated (kubelet: containerLogMaxSize, 10Mi). */
  maxBytes: number;
  /** Files kept per container, the one written included; at least 2 (kubelet: containerLogMaxFiles). */
  maxFiles: number;
}

/** The rotated file `n` of a container log (`<c>.log.<n>`); 0 is the log itself. */
export function rotatedLogPath(path: string, n: number): string {
  return n === 0 ? path : `${path}.${n}`;
}

/** Appends what `path` holds past `from` to `fd`; returns the new end. */
function appendFrom(path: string, from: number, fd: number, at: number): number {
  const source = openSync(path, 'r');
  const buffer = Buffer.alloc(64 * 1024);
  let read: number;
  let offset = from;
  let end = at;
  try {
    while ((read = readSync(source, buffer, 0, buffer.length, offset)) > 0) {
      end += writeSync(fd, buffer, 0, read, end);
      offset += read;
    }
  } finally {
    closeSync(source);
  }
  return end;
}

/**
 * Rotates one container log if it is larger than the cap; true when it did.
 * Shifts `.1` → `.2`... (the last one falls off), copies the log to a
 * temporary file, truncates the log, and renames the copy to `.1` — last,
 * so that a reader who sees a new `.1` knows the log was truncated already.
 */
export function rotateContainerLog(path: string, limits: LogRotationLimits): boolean {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return false;
  }
  if (size <= limits.maxBytes) return false;
  const keep = Math.max(2, limits.maxFiles);
  // Each rename replaces the next file: the last one kept falls off.
  for (let n = keep - 2; n >= 1; n--) {
    try {
      renameSync(rotatedLogPath(path, n), rotatedLogPath(path, n + 1));
    } catch {
      // Not there (yet).
    }
  }
  const temporary = `${path}.rotating`;
  copyFileSync(path, temporary);
  const log = openSync(path, 'r+');
  const copy = openSync(temporary, 'r+');
  try {
    const copied = statSync(temporary).size;
    // What the container wrote during the copy, then the truncation right after.
    appendFrom(path, copied, copy, copied);
    ftruncateSync(log, 0);
  } finally {
    closeSync(copy);
    closeSync(log);
  }
  renameSync(temporary, rotatedLogPath(path, 1));
  return true;
}

/** Every container log under the pods directory: `<podsDir>/<uid>/<container>.log`. */
export function containerLogFiles(podsDir: string): string[] {
  const files: string[] = [];
  let pods: string[];
  try {
    pods = readdirSync(podsDir);
  } catch {
    return files;
  }
  for (const uid of pods) {
    let names: string[];
    try {
      names = readdirSync(join(podsDir, uid));
    } catch {
      continue;
    }
    for (const name of names) if (name.endsWith('.log')) files.push(join(podsDir, uid, name));
  }
  return files;
}

/** Rotates the node's container logs every `intervalMs` until stopped. */
export class ContainerLogRotation {
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly podsDir: string,
    private readonly limits: LogRotationLimits,
    private readonly intervalMs: number,
    private readonly log: (line: string) => void,
  ) {}

  start(): void {
    this.#timer = setInterval(() => {
      this.rotateAll();
    }, this.intervalMs);
    this.#timer.unref();
  }

  /** One pass; a log that cannot be rotated is reported and tried again next time. */
  rotateAll(): void {
    for (const path of containerLogFiles(this.podsDir)) {
      try {
        rotateContainerLog(path, this.limits);
      } catch (error) {
        // The pod may be going (its directory removed under us): nothing to rotate then.
        if ((error as { code?: unknown }).code === 'ENOENT') continue;
        this.log(`cannot rotate ${path}: ${messageChain(error)}`);
      }
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
