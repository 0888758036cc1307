/**
 * The few libc calls Node cannot make itself: flock(2) for the IPAM store,
 * and socket/send/recv/setns for rtnetlink. The compiled plugin reaches
 * libc through Bun's built-in FFI; under Node the same functions come from
 * koffi. Loading costs well under a millisecond and happens once.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

export interface Libc {
  flock(fd: number, operation: number): number;
  socket(domain: number, type: number, protocol: number): number;
  send(fd: number, buffer: Uint8Array, length: number, flags: number): number;
  recv(fd: number, buffer: Uint8Array, length: number, flags: number): number;
  setns(fd: number, nstype: number): number;
  /** errno after the last failed call. */
  errno(): number;
  /** _exit(2): ends the process at once, skipping the runtime's own teardown. */
  exit(code: number): never;
}

let loaded: Libc | undefined;

async function loadWithBun(): Promise<Libc> {
  const { dlopen, FFIType, read } = await import('bun:ffi');
  const { i32, u64, ptr } = FFIType;
  const lib = dlopen('libc.so.6', {
    flock: { args: [i32, i32], returns: i32 },
    socket: { args: [i32, i32, i32], returns: i32 },
    send: { args: [i32, ptr, u64, i32], returns: i32 },
    recv: { args: [i32, ptr, u64, i32], returns: i32 },
    setns: { args: [i32, i32], returns: i32 },
    __errno_location: { args: [], returns: ptr },
    _exit: { args: [i32], returns: i32 },
  });
  const s = lib.symbols as Record<string, (...args: unknown[]) => unknown>;
  const call = (name: string, ...args: unknown[]): number => {
    const fn = s[name];
    if (!fn) throw new Error(`libc has no ${name}`);
    return Number(fn(...args));
  };
  return {
    flock: (fd, op) => call('flock', fd, op),
    socket: (d, t, p) => call('socket', d, t, p),
    send: (fd, b, n, f) => call('send', fd, b, n, f),
    recv: (fd, b, n, f) => call('recv', fd, b, n, f),
    setns: (fd, t) => call('setns', fd, t),
    errno: () => read.i32(s.__errno_location?.(), 0),
    exit: (code) => {
      call('_exit', code);
      throw new Error('_exit returned');
    },
  };
}

async function loadWithKoffi(): Promise<Libc> {
  const koffi = (await import('koffi')).default;
  const lib = koffi.load('libc.so.6');
  const flock = lib.func('int flock(int, int)') as (fd: number, op: number) => number;
  const socket = lib.func('int socket(int, int, int)') as (
    d: number,
    t: number,
    p: number,
  ) => number;
  const send = lib.func('int send(int, const void *, size_t, int)') as Libc['send'];
  const recv = lib.func('int recv(int, _Out_ void *, size_t, int)') as Libc['recv'];
  const setns = lib.func('int setns(int, int)') as (fd: number, t: number) => number;
  return {
    flock,
    socket,
    send,
    recv,
    setns,
    errno: () => koffi.errno(),
    exit: (code) => process.exit(code),
  };
}

/** libc if something has loaded it already (no cost when nothing has). */
export function loadedLibc(): Libc | undefined {
  return loaded;
}

const CLONE_NEWNET = 0x40000000;

/**
 * Runs `fn` with this thread in the network namespace at `netns`, and
 * returns to the thread's own namespace before anything else runs. What
 * `fn` opens there (a socket) stays bound to that namespace for its life.
 * A thread that cannot return is not used again: the process ends at once,
 * as Go's netns.Do discards such a thread.
 */
export function inNetns<T>(c: Libc, netns: string, fn: () => T): T {
  const home = openSync('/proc/thread-self/ns/net', 'r');
  let target: number;
  try {
    target = openSync(netns, 'r');
  } catch (error) {
    closeSync(home);
    throw error;
  }
  let result: { value: T } | undefined;
  let failure: unknown;
  try {
    if (c.setns(target, CLONE_NEWNET) !== 0) {
      throw new Error(`Cannot enter the network namespace ${netns} (errno ${c.errno()})`);
    }
    try {
      result = { value: fn() };
    } catch (error) {
      failure = error;
    }
    if (c.setns(home, CLONE_NEWNET) !== 0) {
      const errno = c.errno();
      writeSync(2, `strata: cannot return to this thread's network namespace (errno ${errno})\n`);
      c.exit(70);
    }
  } finally {
    closeSync(target);
    closeSync(home);
  }
  if (!result) throw failure;
  return result.value;
}

/** libc, loaded on first use. */
export async function libc(): Promise<Libc> {
  loaded ??= await (process.versions.bun ? loadWithBun() : loadWithKoffi());
  return loaded;
}
