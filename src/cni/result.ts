/**
 * The CNI result, held in the 1.1.0 shape and converted to the version the
 * runtime asked for when printed (CNI spec 1.1.0, "Success"; 0.4.0 adds a
 * `version` to each IP and knows no route or interface extras).
 */
import { CniError, CniErrorCode } from './errors.js';
import { versionAtLeast, type CniVersion } from './version.js';

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface CniIpConfig {
  /** CIDR notation: the address and the prefix length of its subnet. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: CniRoute[];
  dns: CniDns;
  /**
   * The JSON a plugin printed, when the result was decoded from one: passed
   * on verbatim (as the next plugin's prevResult, into the cache) so fields
   * this model does not hold (socketPath, pciID, a plugin's own) are not lost.
   */
  raw?: Record<string, unknown>;
}

export function emptyResult(): CniResult {
  return { interfaces: [], ips: [], routes: [], dns: {} };
}

function isDnsEmpty(dns: CniDns): boolean {
  return (
    (dns.nameservers?.length ?? 0) === 0 &&
    !dns.domain &&
    (dns.search?.length ?? 0) === 0 &&
    (dns.options?.length ?? 0) === 0
  );
}

/** The result as the JSON object of the requested spec version. */
export function encodeResult(result: CniResult, version: CniVersion): Record<string, unknown> {
  if (result.raw && result.raw.cniVersion === version) return result.raw;
  const modern = versionAtLeast(version, '1.1.0');
  const legacy = !versionAtLeast(version, '1.0.0');
  const out: Record<string, unknown> = { cniVersion: version };
  if (result.interfaces.length > 0) {
    out.interfaces = result.interfaces.map((i) => {
      const iface: Record<string, unknown> = { name: i.name };
      if (i.mac !== undefined) iface.mac = i.mac;
      if (modern && i.mtu !== undefined) iface.mtu = i.mtu;
      if (i.sandbox !== undefined) iface.sandbox = i.sandbox;
      return iface;
    });
  }
  if (result.ips.length > 0) {
    out.ips = result.ips.map((ip) => {
      const entry: Record<string, unknown> = {};
      if (legacy) entry.version = ip.address.includes(':') ? '6' : '4';
      entry.address = ip.address;
      if (ip.gateway !== undefined) entry.gateway = ip.gateway;
      if (ip.interface !== undefined) entry.interface = ip.interface;
      return entry;
    });
  }
  if (result.routes.length > 0) {
    out.routes = result.routes.map((r) => {
      const route: Record<string, unknown> = { dst: r.dst };
      if (r.gw !== undefined) route.gw = r.gw;
      if (modern) {
        for (const key of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
          if (r[key] !== undefined) route[key] = r[key];
        }
      }
      return route;
    });
  }
  if (!isDnsEmpty(result.dns)) out.dns = result.dns;
  return out;
}

function fail(field: string, why: string): never {
  throw new CniError(CniErrorCode.DecodingFailure, `cannot decode ${field}: ${why}`);
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') fail(field, `expected a string, got ${JSON.stringify(value)}`);
  return value;
}

function optionalNumber(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    fail(field, `expected an integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function stringList(value: unknown, field: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    fail(field, 'expected a list of strings');
  }
  return value as string[];
}

function objectList(value: unknown, field: string): Record<string, unknown>[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) fail(field, 'expected a list');
  return value.map((v, i) => {
    if (typeof v !== 'object' || v === null) fail(`${field}[${i}]`, 'expected an object');
    return v as Record<string, unknown>;
  });
}

/** Reads a result of any supported version (a prevResult, or a delegated IPAM plugin's output). */
export function decodeResult(raw: unknown, field = 'prevResult'): CniResult {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    fail(field, 'expected an object');
  }
  const obj = raw as Record<string, unknown>;
  const result = emptyResult();
  result.interfaces = objectList(obj.interfaces, `${field}.interfaces`).map((i, n) => {
    const name = optionalString(i.name, `${field}.interfaces[${n}].name`);
    if (name === undefined) fail(`${field}.interfaces[${n}].name`, 'missing');
    const iface: CniInterface = { name };
    const mac = optionalString(i.mac, `${field}.interfaces[${n}].mac`);
    if (mac !== undefined) iface.mac = mac;
    const mtu = optionalNumber(i.mtu, `${field}.interfaces[${n}].mtu`);
    if (mtu !== undefined) iface.mtu = mtu;
    const sandbox = optionalString(i.sandbox, `${field}.interfaces[${n}].sandbox`);
    if (sandbox !== undefined) iface.sandbox = sandbox;
    return iface;
  });
  result.ips = objectList(obj.ips, `${field}.ips`).map((ip, n) => {
    const address = optionalString(ip.address, `${field}.ips[${n}].address`);
    if (address === undefined) fail(`${field}.ips[${n}].address`, 'missing');
    const entry: CniIpConfig = { address };
    const gateway = optionalString(ip.gateway, `${field}.ips[${n}].gateway`);
    if (gateway !== undefined) entry.gateway = gateway;
    const iface = optionalNumber(ip.interface, `${field}.ips[${n}].interface`);
    if (iface !== undefined) entry.interface = iface;
    return entry;
  });
  result.routes = objectList(obj.routes, `${field}.routes`).map((r, n) => {
    const dst = optionalString(r.dst, `${field}.routes[${n}].dst`);
    if (dst === undefined) fail(`${field}.routes[${n}].dst`, 'missing');
    const route: CniRoute = { dst };
    const gw = optionalString(r.gw, `${field}.routes[${n}].gw`);
    if (gw !== undefined) route.gw = gw;
    for (const key of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
      const v = optionalNumber(r[key], `${field}.routes[${n}].${key}`);
      if (v !== undefined) route[key] = v;
    }
    return route;
  });
  result.dns = decodeDns(obj.dns, `${field}.dns`);
  // Not enumerable: the model's own fields are what a reader compares and prints.
  Object.defineProperty(result, 'raw', { value: obj, enumerable: false, writable: true });
  return result;
}

/** Reads a `dns` object (network configuration or result). */
export function decodeDns(raw: unknown, field: string): CniDns {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) fail(field, 'expected an object');
  const obj = raw as Record<string, unknown>;
  const dns: CniDns = {};
  const nameservers = stringList(obj.nameservers, `${field}.nameservers`);
  if (nameservers) dns.nameservers = nameservers;
  const domain = optionalString(obj.domain, `${field}.domain`);
  if (domain) dns.domain = domain;
  const search = stringList(obj.search, `${field}.search`);
  if (search) dns.search = search;
  const options = stringList(obj.options, `${field}.options`);
  if (options) dns.options = options;
  return dns;
}
