/**
 * An exclusive flock(2) on a file, the lock host-local takes on
 * `<dataDir>/<network>/lock`, so strata-ipam and host-local exclude each other
 * on one directory. The kernel drops the lock when the process dies, so a
 * kill -9 never leaves the store locked.
 */
import { closeSync, openSync } from 'node:fs';
import { libc } from '../kernel/libc.js';

const LOCK_EX = 2;
const LOCK_UN = 8;

export interface HeldLock {
  release(): void;
}

/** Opens (creating if needed) `path` and blocks until this process holds an exclusive lock on it. */
export async function lockFile(path: string): Promise<HeldLock> {
  const c = await libc();
  const fd = openSync(path, 'a', 0o600);
  if (c.flock(fd, LOCK_EX) !== 0) {
    const errno = c.errno();
    closeSync(fd);
    throw new Error(`cannot lock ${path}: errno ${errno}`);
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      c.flock(fd, LOCK_UN);
      closeSync(fd);
    },
  };
}
