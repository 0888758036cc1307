/**
 * Hands out the equal-sized subnets of a prefix, each to one owner: a node's
 * pod CIDR from the cluster CIDR (nodeipam's cidrset: the next free subnet
 * after the last one handed out, wrapping around), or a Service's cluster IP
 * from the service CIDR (subnets of one address). Pure bookkeeping: the
 * callers persist assignments in the API objects and rebuild this from them
 * after a restart.
 */
import {
  type IpAddress,
  type IpPrefix,
  familyBits,
  formatIp,
  formatPrefix,
  networkAddress,
  parseIp,
  parsePrefix,
  prefixContains,
} from '../netaddr/ip.js';

export interface SubnetAllocatorOptions {
  /** Indexes never handed out (a range's network and broadcast addresses). */
  reserved?: readonly number[];
  /** Where the first search starts (the service range's upper band). */
  firstCandidate?: number;
}

/** What claiming an existing assignment found. */
export type Occupied =
  { result: 'occupied' } | { result: 'outside' } | { result: 'taken'; owner: string };

export class SubnetAllocator {
  readonly prefix: IpPrefix;
  readonly subnetLength: number;
  /** How many subnets the prefix holds. */
  readonly size: number;
  readonly #hostBits: bigint;
  readonly #owners = new Map<number, string>();
  readonly #reserved: Set<number>;
  #next: number;

  constructor(prefix: IpPrefix, subnetLength: number, options: SubnetAllocatorOptions = {}) {
    const bits = subnetLength - prefix.length;
    if (bits < 0 || bits > 20 || subnetLength > familyBits(prefix.address.family)) {
      throw new Error(
        `Cannot split ${formatPrefix(prefix)} into /${subnetLength} subnets: the subnet length must be ${prefix.length}-${Math.min(prefix.length + 20, familyBits(prefix.address.family))}`,
      );
    }
    this.prefix = { address: networkAddress(prefix), length: prefix.length };
    this.subnetLength = subnetLength;
    this.size = 2 ** bits;
    this.#hostBits = BigInt(familyBits(prefix.address.family) - subnetLength);
    this.#reserved = new Set(options.reserved ?? []);
    this.#next = options.firstCandidate ?? 0;
  }

  /** The prefix as text: `10.244.0.0/16`. */
  toString(): string {
    return formatPrefix(this.prefix);
  }

  get used(): number {
    return this.#owners.size;
  }

  get capacity(): number {
    return this.size - this.#reserved.size;
  }

  #text(index: number): string {
    const value = this.prefix.address.value + (BigInt(index) << this.#hostBits);
    const address: IpAddress = { family: this.prefix.address.family, value };
    return this.#hostBits === 0n
      ? formatIp(address)
      : formatPrefix({ address, length: this.subnetLength });
  }

  /** The index of a subnet (or, for one-address subnets, an address) of this prefix. */
  #indexOf(text: string): number | undefined {
    let address: IpAddress | undefined;
    if (this.#hostBits === 0n && !text.includes('/')) {
      address = parseIp(text);
    } else {
      const prefix = parsePrefix(text);
      if (prefix?.length !== this.subnetLength) return undefined;
      address = prefix.address;
    }
    if (!address || !prefixContains(this.prefix, address)) return undefined;
    const offset = address.value - this.prefix.address.value;
    if (offset & ((1n << this.#hostBits) - 1n)) return undefined;
    return Number(offset >> this.#hostBits);
  }

  contains(text: string): boolean {
    return this.#indexOf(text) !== undefined;
  }

  ownerOf(text: string): string | undefined {
    const index = this.#indexOf(text);
    return index === undefined ? undefined : this.#owners.get(index);
  }

  /** Records an existing assignment (read back from the API after a restart). */
  occupy(text: string, owner: string): Occupied {
    const index = this.#indexOf(text);
    if (index === undefined) return { result: 'outside' };
    const current = this.#owners.get(index);
    if (current !== undefined && current !== owner) return { result: 'taken', owner: current };
    this.#owners.set(index, owner);
    return { result: 'occupied' };
  }

  /** The next free subnet, now `owner`'s; undefined when every one is taken. */
  allocate(owner: string): string | undefined {
    for (let tried = 0; tried < this.size; tried++) {
      const index = (this.#next + tried) % this.size;
      if (this.#owners.has(index) || this.#reserved.has(index)) continue;
      this.#owners.set(index, owner);
      this.#next = (index + 1) % this.size;
      return this.#text(index);
    }
    return undefined;
  }

  /** Frees the subnet if `owner` holds it. */
  release(text: string, owner: string): boolean {
    const index = this.#indexOf(text);
    if (index === undefined || this.#owners.get(index) !== owner) return false;
    this.#owners.delete(index);
    return true;
  }
}
