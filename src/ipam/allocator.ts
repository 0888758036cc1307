/**
 * Round-robin address allocation over a range set, as host-local does it:
 * start after the address last handed out from the set, walk the ranges in
 * order, wrap around, and skip each range's gateway.
 */
import { CniError, CniErrorCode } from '../cni/errors.js';
import { type IpAddress, formatIp, ipEqual } from '../netaddr/ip.js';
import { type AddressRange, describeRangeSet } from './config.js';
import type { Allocation, AllocationStore } from './store.js';

export interface Allocated {
  ip: IpAddress;
  range: AddressRange;
}

/** The range of the set holding `ip` between rangeStart and rangeEnd, if any. */
export function rangeFor(set: AddressRange[], ip: IpAddress): AddressRange | undefined {
  return set.find(
    (r) =>
      r.subnet.address.family === ip.family &&
      ip.value >= r.rangeStart.value &&
      ip.value <= r.rangeEnd.value,
  );
}

function rangeSize(r: AddressRange): bigint {
  return r.rangeEnd.value - r.rangeStart.value + 1n;
}

/** How many addresses of the set are neither a gateway nor among `allocated`. */
export function freeCount(set: AddressRange[], allocated: readonly IpAddress[]): bigint {
  let free = 0n;
  for (const r of set) {
    free += rangeSize(r);
    if (r.gateway.value >= r.rangeStart.value && r.gateway.value <= r.rangeEnd.value) free -= 1n;
  }
  for (const ip of allocated) {
    const range = rangeFor(set, ip);
    // An address file on the gateway (left from before the gateway moved) is already not free.
    if (range && ip.value !== range.gateway.value) free -= 1n;
  }
  return free;
}

/** Allocates one address from range set `index` for the attachment. */
export function allocateFromSet(
  store: AllocationStore,
  set: AddressRange[],
  index: number,
  containerId: string,
  ifname: string,
  requested: IpAddress | undefined,
  existing: readonly IpAddress[],
  allocations: readonly Allocation[] = store.allocations(),
): Allocated {
  if (requested) {
    const range = rangeFor(set, requested);
    if (!range) {
      throw new CniError(
        CniErrorCode.InvalidNetworkConfig,
        `requested IP address ${formatIp(requested)} is not in range set ${describeRangeSet(set, formatIp)}`,
      );
    }
    if (ipEqual(requested, range.gateway)) {
      throw new CniError(
        CniErrorCode.InvalidNetworkConfig,
        `requested IP address ${formatIp(requested)} is the gateway of its subnet`,
      );
    }
    if (!store.reserve(requested, containerId, ifname, index)) {
      throw new CniError(
        CniErrorCode.TryAgainLater,
        `requested IP address ${formatIp(requested)} is not available in range set ${describeRangeSet(set, formatIp)}`,
      );
    }
    return { ip: requested, range };
  }

  // The spec forbids a second ADD for one attachment without a DEL between.
  const duplicate = existing.find((ip) => rangeFor(set, ip));
  if (duplicate) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `${formatIp(duplicate)} has been allocated to ${containerId}/${ifname} already; duplicate allocation is not allowed`,
    );
  }

  const taken = new Set(allocations.map((a) => a.name));
  const free = freeCount(
    set,
    allocations.map((a) => a.ip),
  );
  const exhausted = (): CniError =>
    new CniError(
      CniErrorCode.TryAgainLater,
      `no IP addresses available in range set ${describeRangeSet(set, formatIp)}`,
    );
  if (free <= 0n) throw exhausted();

  // Start right after the last address handed out from this set, if it is still in the set.
  let rangeIndex = 0;
  let cursor = set[0]?.rangeStart.value ?? 0n;
  const last = store.lastReserved(index);
  const lastRange = last ? rangeFor(set, last) : undefined;
  if (last && lastRange) {
    rangeIndex = set.indexOf(lastRange);
    cursor = last.value + 1n;
  }
  let total = 0n;
  for (const r of set) total += rangeSize(r);
  for (let step = 0n; step < total; step++) {
    let range = set[rangeIndex];
    if (!range) break;
    if (cursor > range.rangeEnd.value) {
      rangeIndex = (rangeIndex + 1) % set.length;
      range = set[rangeIndex];
      if (!range) break;
      cursor = range.rangeStart.value;
    }
    const ip: IpAddress = { family: range.subnet.address.family, value: cursor };
    cursor += 1n;
    if (ip.value === range.gateway.value) continue;
    if (taken.has(formatIp(ip))) continue;
    if (store.reserve(ip, containerId, ifname, index)) return { ip, range };
  }
  throw exhausted();
}
