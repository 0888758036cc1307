/**
 * The IPAM section of a network configuration, in host-local's format
 * (plugins/ipam/host-local in containernetworking/plugins): `ranges` is a list
 * of range sets, each set yields one address; the older single-range form
 * (`subnet`, `rangeStart`, `rangeEnd`, `gateway` at the top) is accepted too.
 */
import { CniError, CniErrorCode } from '../cni/errors.js';
import {
  type IpAddress,
  type IpPrefix,
  formatIp,
  formatPrefix,
  ipEqual,
  lastAddress,
  networkAddress,
  nextIp,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixesOverlap,
} from '../netaddr/ip.js';

export const defaultDataDir = '/var/lib/cni/networks';

export interface AddressRange {
  /** The subnet, host bits cleared. */
  subnet: IpPrefix;
  rangeStart: IpAddress;
  rangeEnd: IpAddress;
  gateway: IpAddress;
}

export interface IpamRoute {
  dst: string;
  gw?: string;
}

export interface IpamConfig {
  type: string;
  rangeSets: AddressRange[][];
  routes: IpamRoute[];
  dataDir: string;
  resolvConf?: string;
}

function invalid(field: string, why: string): CniError {
  return new CniError(CniErrorCode.InvalidNetworkConfig, `${field}: ${why}`);
}

function requireAddress(value: unknown, field: string): IpAddress {
  const ip = typeof value === 'string' ? parseIp(value) : undefined;
  if (!ip) throw invalid(field, `not an IP address: ${JSON.stringify(value)}`);
  return ip;
}

/** Fills in a range's defaults and checks it, as host-local's Range.Canonicalize does. */
function parseRange(raw: unknown, field: string): AddressRange {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid(field, 'expected an object with a "subnet"');
  }
  const r = raw as Record<string, unknown>;
  const subnet = typeof r.subnet === 'string' ? parsePrefix(r.subnet) : undefined;
  if (!subnet) {
    throw invalid(`${field}.subnet`, `not a CIDR subnet: ${JSON.stringify(r.subnet)}`);
  }
  const bits = subnet.address.family === 4 ? 32 : 128;
  if (subnet.length > bits - 2) {
    throw invalid(`${field}.subnet`, `network ${String(r.subnet)} is too small to allocate from`);
  }
  const network = networkAddress(subnet);
  if (!ipEqual(network, subnet.address)) {
    throw invalid(
      `${field}.subnet`,
      `${String(r.subnet)} has host bits set; for a prefix length of ${subnet.length} the network is ${formatPrefix({ address: network, length: subnet.length })}`,
    );
  }
  const inSubnet = (ip: IpAddress, name: string): IpAddress => {
    if (!prefixContains(subnet, ip)) {
      throw invalid(`${field}.${name}`, `${String(r[name])} is not in subnet ${String(r.subnet)}`);
    }
    return ip;
  };
  // host-local: the gateway defaults to the first address, the range to the
  // whole subnet less the network address and, for IPv4, the broadcast.
  const gateway =
    r.gateway === undefined
      ? nextIp(network)
      : inSubnet(requireAddress(r.gateway, `${field}.gateway`), 'gateway');
  const rangeStart =
    r.rangeStart === undefined
      ? nextIp(network)
      : inSubnet(requireAddress(r.rangeStart, `${field}.rangeStart`), 'rangeStart');
  const last = lastAddress(subnet);
  const defaultEnd =
    subnet.address.family === 4 ? { family: 4 as const, value: last.value - 1n } : last;
  const rangeEnd =
    r.rangeEnd === undefined
      ? defaultEnd
      : inSubnet(requireAddress(r.rangeEnd, `${field}.rangeEnd`), 'rangeEnd');
  if (rangeStart.value > rangeEnd.value) {
    throw invalid(
      `${field}.rangeStart`,
      `${formatIp(rangeStart)} is after rangeEnd ${formatIp(rangeEnd)}`,
    );
  }
  return { subnet: { address: network, length: subnet.length }, rangeStart, rangeEnd, gateway };
}

function rangesOverlap(a: AddressRange, b: AddressRange): boolean {
  return (
    a.subnet.address.family === b.subnet.address.family &&
    a.rangeStart.value <= b.rangeEnd.value &&
    b.rangeStart.value <= a.rangeEnd.value
  );
}

function parseRoutes(raw: unknown): IpamRoute[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid('ipam.routes', 'expected a list of routes');
  return raw.map((route: unknown, i) => {
    const field = `ipam.routes[${i}]`;
    if (typeof route !== 'object' || route === null) throw invalid(field, 'expected an object');
    const r = route as Record<string, unknown>;
    if (typeof r.dst !== 'string' || !parsePrefix(r.dst)) {
      throw invalid(`${field}.dst`, `not a CIDR destination: ${JSON.stringify(r.dst)}`);
    }
    const out: IpamRoute = { dst: r.dst };
    if (r.gw !== undefined) {
      requireAddress(r.gw, `${field}.gw`);
      out.gw = r.gw as string;
    }
    return out;
  });
}

const parsed = new WeakMap<object, IpamConfig>();

/** Parses and checks the `ipam` object of a network configuration (once per object). */
export function parseIpamConfig(raw: unknown): IpamConfig {
  const known = typeof raw === 'object' && raw !== null ? parsed.get(raw) : undefined;
  if (known) return known;
  const config = parseIpamConfigUncached(raw);
  parsed.set(raw as object, config);
  return config;
}

function parseIpamConfigUncached(raw: unknown): IpamConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid('ipam', 'expected an object with a "type"');
  }
  const ipam = raw as Record<string, unknown>;
  if (typeof ipam.type !== 'string' || ipam.type === '') {
    throw invalid('ipam.type', 'must name an IPAM plugin');
  }
  let rawSets: unknown[];
  let base = 'ipam.ranges';
  if (ipam.ranges !== undefined) {
    if (!Array.isArray(ipam.ranges) || ipam.ranges.length === 0) {
      throw invalid('ipam.ranges', 'expected a non-empty list of range sets');
    }
    rawSets = ipam.ranges as unknown[];
    // host-local: a top-level subnet beside ranges becomes the first range set.
    if (ipam.subnet !== undefined) {
      const { subnet, rangeStart, rangeEnd, gateway } = ipam;
      rawSets = [[{ subnet, rangeStart, rangeEnd, gateway }], ...rawSets];
    }
  } else if (ipam.subnet !== undefined) {
    const { subnet, rangeStart, rangeEnd, gateway } = ipam;
    rawSets = [[{ subnet, rangeStart, rangeEnd, gateway }]];
    base = 'ipam';
  } else {
    throw invalid('ipam.ranges', 'no address ranges are configured');
  }
  const rangeSets = rawSets.map((set, i) => {
    if (!Array.isArray(set) || set.length === 0) {
      throw invalid(`ipam.ranges[${i}]`, 'expected a non-empty list of ranges');
    }
    const ranges = set.map((r: unknown, j) =>
      parseRange(r, base === 'ipam' ? 'ipam' : `ipam.ranges[${i}][${j}]`),
    );
    const family = ranges[0]?.subnet.address.family;
    ranges.forEach((r, j) => {
      if (r.subnet.address.family !== family) {
        throw invalid(`ipam.ranges[${i}][${j}].subnet`, 'mixes IPv4 and IPv6 in one range set');
      }
      for (let k = 0; k < j; k++) {
        const other = ranges[k];
        if (other && rangesOverlap(r, other)) {
          throw invalid(`ipam.ranges[${i}][${j}]`, `overlaps ipam.ranges[${i}][${k}]`);
        }
      }
    });
    return ranges;
  });
  rangeSets.forEach((set, i) => {
    for (let k = 0; k < i; k++) {
      const other = rangeSets[k] ?? [];
      if (set.some((a) => other.some((b) => prefixesOverlap(a.subnet, b.subnet)))) {
        throw invalid(`ipam.ranges[${i}]`, `overlaps range set ipam.ranges[${k}]`);
      }
    }
  });
  if (
    ipam.dataDir !== undefined &&
    (typeof ipam.dataDir !== 'string' || !ipam.dataDir.startsWith('/'))
  ) {
    throw invalid('ipam.dataDir', `must be an absolute path: ${JSON.stringify(ipam.dataDir)}`);
  }
  if (ipam.resolvConf !== undefined && typeof ipam.resolvConf !== 'string') {
    throw invalid('ipam.resolvConf', 'must be a file path');
  }
  const config: IpamConfig = {
    type: ipam.type,
    rangeSets,
    routes: parseRoutes(ipam.routes),
    dataDir: ipam.dataDir ?? defaultDataDir,
  };
  if (typeof ipam.resolvConf === 'string') config.resolvConf = ipam.resolvConf;
  return config;
}

/** A range set as text for messages: `10.1.0.2-10.1.0.254`. */
export function describeRangeSet(set: AddressRange[], format: (ip: IpAddress) => string): string {
  return set.map((r) => `${format(r.rangeStart)}-${format(r.rangeEnd)}`).join(',');
}
