/**
 * Address and port arithmetic for policy peers: an ipBlock minus its
 * `except` list as disjoint prefixes, and the normalization that turns
 * overlapping `peer . protocol . port` entries into disjoint set elements
 * (the kernel refuses a partially overlapping interval element with "File
 * exists"; docs/policy-enforcement.md section 7).
 */
import {
  type IpFamily,
  type IpPrefix,
  familyBits,
  formatIp,
  lastAddress,
  networkAddress,
  prefixContains,
  prefixesOverlap,
} from '../netaddr/ip.js';

/** `cidr` minus every prefix in `except`, as disjoint prefixes (largest first). */
export function subtractPrefixes(cidr: IpPrefix, except: readonly IpPrefix[]): IpPrefix[] {
  const base = { address: networkAddress(cidr), length: cidr.length };
  const relevant = except.filter(
    (e) => e.address.family === cidr.address.family && prefixesOverlap(base, e),
  );
  if (relevant.length === 0) return [base];
  if (relevant.some((e) => e.length <= base.length && prefixContains(e, base.address))) return [];
  // Some except lies strictly inside: split in two halves and recurse.
  const length = base.length + 1;
  const bit = 1n << BigInt(familyBits(base.address.family) - length);
  const low = { address: base.address, length };
  const high = { address: { ...base.address, value: base.address.value | bit }, length };
  return [...subtractPrefixes(low, relevant), ...subtractPrefixes(high, relevant)];
}

/** An inclusive range of addresses of one family. */
export interface AddressRange {
  family: IpFamily;
  from: bigint;
  to: bigint;
}

export function prefixRange(prefix: IpPrefix): AddressRange {
  return {
    family: prefix.address.family,
    from: networkAddress(prefix).value,
    to: lastAddress(prefix).value,
  };
}

/** An IP protocol number range and a port range: `any` is protocols 0-255, ports 0-65535. */
export interface ServiceRange {
  protoFrom: number;
  protoTo: number;
  portFrom: number;
  portTo: number;
}

/** One disjoint set element: an address range and a service range. */
export interface SetElement {
  address: AddressRange;
  service: ServiceRange;
}

interface Span {
  from: number;
  to: number;
}

function mergeSpans(spans: Span[]): Span[] {
  const sorted = [...spans].sort((a, b) => a.from - b.from);
  const out: Span[] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last && s.from <= last.to + 1) last.to = Math.max(last.to, s.to);
    else out.push({ ...s });
  }
  return out;
}

/**
 * The union of services as disjoint service ranges: a whole-protocol range
 * swallows everything; otherwise ports are merged per protocol.
 */
function mergeServices(services: readonly ServiceRange[]): ServiceRange[] {
  if (
    services.some((s) => s.protoFrom === 0 && s.protoTo === 255 && s.portTo - s.portFrom === 65535)
  ) {
    return [{ protoFrom: 0, protoTo: 255, portFrom: 0, portTo: 65535 }];
  }
  const byProto = new Map<number, Span[]>();
  for (const s of services) {
    for (let p = s.protoFrom; p <= s.protoTo; p++) {
      const list = byProto.get(p) ?? [];
      list.push({ from: s.portFrom, to: s.portTo });
      byProto.set(p, list);
    }
  }
  const out: ServiceRange[] = [];
  for (const proto of [...byProto.keys()].sort((a, b) => a - b)) {
    for (const span of mergeSpans(byProto.get(proto) ?? [])) {
      out.push({ protoFrom: proto, protoTo: proto, portFrom: span.from, portTo: span.to });
    }
  }
  return out;
}

function serviceKey(services: readonly ServiceRange[]): string {
  return services.map((s) => `${s.protoFrom}-${s.protoTo}:${s.portFrom}-${s.portTo}`).join(',');
}

/**
 * Disjoint set elements covering exactly the union of `entries`: the address
 * axis is cut at every boundary, the services of each piece are merged, and
 * neighbouring pieces with the same services are joined again.
 */
export function disjointElements(entries: readonly SetElement[], family: IpFamily): SetElement[] {
  const mine = entries.filter((e) => e.address.family === family);
  const cuts = new Set<bigint>();
  for (const e of mine) {
    cuts.add(e.address.from);
    cuts.add(e.address.to + 1n);
  }
  const points = [...cuts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const byStart = [...mine].sort((a, b) =>
    a.address.from < b.address.from ? -1 : a.address.from > b.address.from ? 1 : 0,
  );
  const pieces: { from: bigint; to: bigint; services: ServiceRange[]; key: string }[] = [];
  let active: SetElement[] = [];
  let next = 0;
  for (let i = 0; i + 1 < points.length; i++) {
    const from = points[i] ?? 0n;
    const to = (points[i + 1] ?? 0n) - 1n;
    active = active.filter((e) => e.address.to >= from);
    while (next < byStart.length && (byStart[next]?.address.from ?? 0n) <= from) {
      const e = byStart[next++];
      if (e && e.address.to >= from) active.push(e);
    }
    if (active.length === 0) continue;
    const services = mergeServices(active.map((e) => e.service));
    const key = serviceKey(services);
    const last = pieces[pieces.length - 1];
    if (last && last.key === key && last.to + 1n === from) last.to = to;
    else pieces.push({ from, to, services, key });
  }
  return pieces.flatMap((p) =>
    p.services.map((service) => ({ address: { family, from: p.from, to: p.to }, service })),
  );
}

/** An address range as nft writes it: a single address, a prefix, or `a-b`. */
export function formatAddressRange(range: AddressRange): string {
  const first = { family: range.family, value: range.from };
  if (range.from === range.to) return formatIp(first);
  const size = range.to - range.from + 1n;
  const bits = familyBits(range.family);
  if ((size & (size - 1n)) === 0n && range.from % size === 0n) {
    const length = bits - (size.toString(2).length - 1);
    return `${formatIp(first)}/${length}`;
  }
  return `${formatIp(first)}-${formatIp({ family: range.family, value: range.to })}`;
}
