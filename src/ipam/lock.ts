/**
 * An exclusive flock(2) on a file, the lock host-local takes on
 * `<dataDir>/<network>/lock`, so strata-ipam and host-local exclude each other
 * on one directory. The kernel drops the lock when the process dies, so a
 * kill -9 never leaves the store locked. Node has no flock, so it is reached
 * through libc: Bun's built-in FFI in the compiled plugin, koffi under Node.
 */
import { closeSync, openSync } from 'node:fs';

const LOCK_EX = 2;
const LOCK_UN = 8;

type Flock = (fd: number, operation: number) => number;

let flockFunction: Flock | undefined;

async function loadFlock(): Promise<Flock> {
  if (flockFunction) return flockFunction;
  if (process.versions.bun) {
    const { dlopen, FFIType } = await import('bun:ffi');
    const libc = dlopen('libc.so.6', {
      flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    });
    const flock = libc.symbols.flock;
    if (!flock) throw new Error('libc has no flock symbol');
    flockFunction = flock;
  } else {
    const koffi = (await import('koffi')).default;
    const libc = koffi.load('libc.so.6');
    flockFunction = libc.func('int flock(int fd, int operation)') as Flock;
  }
  return flockFunction;
}

export interface HeldLock {
  release(): void;
}

/** Opens (creating if needed) `path` and blocks until this process holds an exclusive lock on it. */
export async function lockFile(path: string): Promise<HeldLock> {
  const flock = await loadFlock();
  const fd = openSync(path, 'a', 0o600);
  if (flock(fd, LOCK_EX) !== 0) {
    closeSync(fd);
    throw new Error(`cannot lock ${path}`);
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      flock(fd, LOCK_UN);
      closeSync(fd);
    },
  };
}
