/**
 * The allocation store, on disk in host-local's layout so operators' tools
 * and habits carry over: `<dataDir>/<network>/<ip>` holds
 * `containerID\r\nifname`, `last_reserved_ip.<range set index>` the last
 * address handed out from that set, and `lock` the flock every change holds.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { type HeldLock, lockFile } from './lock.js';
import { parseIp, formatIp, type IpAddress } from '../netaddr/ip.js';

const lineBreak = '\r\n';
const lastReservedPrefix = 'last_reserved_ip.';

export interface Allocation {
  ip: IpAddress;
  /** The file name: the address in canonical text. */
  name: string;
  containerId: string;
  ifname: string;
}

/** The owner key host-local writes into an address file. */
export function ownerKey(containerId: string, ifname: string): string {
  return containerId.trim() + lineBreak + ifname;
}

/** A file of the store. */
function path(store: AllocationStore, name: string): string {
  return `${store.dir}/${name}`;
}

export class AllocationStore {
  readonly dir: string;
  #lock: HeldLock | undefined;

  constructor(dataDir: string, network: string) {
    this.dir = `${dataDir.replace(/\/+$/, '')}/${network}`;
  }

  /** Creates the directory and takes the store's lock; every other method needs it held. */
  async open(): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    this.#lock = await lockFile(path(this, 'lock'));
  }

  close(): void {
    this.#lock?.release();
    this.#lock = undefined;
  }

  /** Every address file, with its owner; a file a crash left empty has an empty owner. */
  allocations(): Allocation[] {
    const out: Allocation[] = [];
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const name of names) {
      const ip = parseIp(name);
      if (!ip) continue;
      let content: string;
      try {
        content = readFileSync(path(this, name), 'utf8').trim();
      } catch {
        continue;
      }
      const br = content.indexOf(lineBreak);
      // Files from host-local before 0.7 hold the container ID alone.
      out.push(
        br < 0
          ? { ip, name, containerId: content, ifname: '' }
          : { ip, name, containerId: content.slice(0, br), ifname: content.slice(br + 2) },
      );
    }
    return out;
  }

  /** The allocations of one attachment (files of the older ID-only format included). */
  allocationsOf(containerId: string, ifname: string): Allocation[] {
    const id = containerId.trim();
    return this.allocations().filter(
      (a) => a.containerId === id && (a.ifname === ifname || a.ifname === ''),
    );
  }

  /**
   * Claims `ip` for the attachment: O_EXCL creation, so even a writer that
   * ignores the lock cannot get the same address. False when it is taken.
   */
  reserve(ip: IpAddress, containerId: string, ifname: string, rangeSetIndex: number): boolean {
    const name = formatIp(ip);
    try {
      writeFileSync(path(this, name), ownerKey(containerId, ifname), {
        flag: 'wx',
        mode: 0o644,
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
    writeFileSync(path(this, `${lastReservedPrefix}${rangeSetIndex}`), name);
    return true;
  }

  lastReserved(rangeSetIndex: number): IpAddress | undefined {
    try {
      return parseIp(
        readFileSync(path(this, `${lastReservedPrefix}${rangeSetIndex}`), 'utf8').trim(),
      );
    } catch {
      return undefined;
    }
  }

  /** Removes one address file; already gone is fine. */
  releaseFile(name: string): void {
    rmSync(path(this, name), { force: true });
  }

  /** Releases every address of the attachment and returns them. */
  release(containerId: string, ifname: string): Allocation[] {
    const owned = this.allocationsOf(containerId, ifname);
    for (const a of owned) this.releaseFile(a.name);
    return owned;
  }
}

/** Runs `fn` with the store open and locked, closing it on every path. */
export async function withStore<T>(
  dataDir: string,
  network: string,
  fn: (store: AllocationStore) => T | Promise<T>,
): Promise<T> {
  const store = new AllocationStore(dataDir, network);
  await store.open();
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}
