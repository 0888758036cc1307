/**
 * The cluster DNS zone as data: every name the Kubernetes DNS-based service
 * discovery spec (https://github.com/kubernetes/dns/blob/master/docs/specification.md)
 * gives to v1 Services and their discovery.k8s.io/v1 EndpointSlices.
 * serviceRecords() is a pure function of one Service and its slices;
 * ZoneIndex keeps the whole zone, recomputing only the Services whose
 * objects changed. resolve.ts answers queries from it; nothing here
 * touches a socket.
 *
 * Where the spec leaves a choice, the answers are those of CoreDNS's
 * kubernetes plugin (plugin/kubernetes), the cluster DNS most clusters run:
 * - endpoints whose `conditions.ready` is false are left out (ready or unset
 *   count as ready), as EndpointSliceToEndpoints does;
 * - an endpoint without a hostname is named by its address with dots or
 *   colons turned into dashes (`endpoint_pod_names` off);
 * - SRV records have priority 0 and share a weight of 100 between the
 *   records of one name (plugin/backend_lookup.go), at least 1 each.
 */
import type { KubeObject } from '../api/types.js';
import { type IpAddress, formatIp, parseIp } from '../netaddr/ip.js';

/** The label that ties an EndpointSlice to its Service. */
export const serviceNameLabel = 'kubernetes.io/service-name';

export interface SrvRecord {
  priority: number;
  weight: number;
  port: number;
  /** A name in the zone, lower case, without the trailing dot. */
  target: string;
}

/** What one name holds; every name is lower case, without the trailing dot. */
export interface NameRecords {
  /** IPv4 addresses in dotted-quad text. */
  a: string[];
  /** IPv6 addresses in RFC 5952 text. */
  aaaa: string[];
  srv: SrvRecord[];
  ptr: string[];
  /** An ExternalName Service: the name it aliases. */
  cname?: string;
}

/** The objects the zone is built from: Services and EndpointSlices of every namespace. */
export interface ClusterObjects {
  services: readonly KubeObject[];
  endpointSlices: readonly KubeObject[];
}

/** Every record of the zone (and the reverse names of its addresses), by lower-case name. */
export interface ZoneRecords {
  /** The cluster domain, lower case, without the trailing dot: `cluster.local`. */
  readonly domain: string;
  /** The records of `name` (lower case, no trailing dot): names in the zone, and PTR names. */
  get(name: string): NameRecords | undefined;
  /**
   * Whether `name` exists: it has records, or names below it do (RFC 8020's
   * empty non-terminals: `svc.<zone>`, `<ns>.svc.<zone>`, `_tcp.<svc>...`),
   * so asking for it is NODATA rather than NXDOMAIN.
   */
  exists(name: string): boolean;
}

/** A zone ready to answer from: its records, the TTL of every answer and the SOA serial. */
export interface DnsZone {
  records: ZoneRecords;
  /** Seconds, for every record and as the SOA's negative-caching TTL. */
  ttl: number;
  serial: number;
  /**
   * False until the source's first complete listing: names in the zone are
   * then SERVFAIL (as CoreDNS before its informers sync), not NXDOMAIN that
   * clients would cache.
   */
  synced?: boolean;
}

/** Characters a label strata puts in a name may have; anything else is left out of the zone. */
const labelPattern = /^[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?$/;
/** Endpoint labels made from IPv6 text may end with a dash (`fd00--`). */
const addressLabelPattern = /^[a-z0-9][-a-z0-9]{0,62}$/;

function label(text: unknown): string | undefined {
  if (typeof text !== 'string') return undefined;
  const lower = text.toLowerCase();
  return labelPattern.test(lower) ? lower : undefined;
}

/** The cluster domain as the zone names it: lower case, no leading or trailing dot. */
export function normalizeDomain(domain: string): string {
  return domain.toLowerCase().replace(/^\.+|\.+$/g, '');
}

/** Whether `domain` can be the zone: one or more labels. */
export function isValidDomain(domain: string): boolean {
  const normalized = normalizeDomain(domain);
  return (
    normalized !== '' &&
    normalized.length <= 200 &&
    normalized.split('.').every((l) => labelPattern.test(l))
  );
}

/** `10.0.0.1` → `1.0.0.10.in-addr.arpa`; IPv6 by nibbles under `ip6.arpa` (RFC 3596 section 2.5). */
export function reverseName(ip: IpAddress): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return `${v & 255}.${(v >>> 8) & 255}.${(v >>> 16) & 255}.${(v >>> 24) & 255}.in-addr.arpa`;
  }
  const nibbles: string[] = [];
  let value = ip.value;
  for (let i = 0; i < 32; i++) {
    nibbles.push((value & 0xfn).toString(16));
    value >>= 4n;
  }
  return `${nibbles.join('.')}.ip6.arpa`;
}

/** The label of an endpoint without a hostname: `10-244-1-5`, `fd00-10-244--5`. */
export function addressLabel(ip: IpAddress): string {
  return formatIp(ip).replace(/[.:]/g, '-');
}

/**
 * The address a pod name spells (`10-244-1-5`, `fd00--5`), as CoreDNS's
 * `pods insecure` mode reads it: dashes as dots for IPv4, else as colons.
 */
export function addressFromLabel(text: string): IpAddress | undefined {
  const v4 = parseIp(text.replace(/-/g, '.'));
  if (v4?.family === 4) return v4;
  const v6 = parseIp(text.replace(/-/g, ':'));
  return v6?.family === 6 ? v6 : undefined;
}

interface ServicePortSpec {
  name?: unknown;
  protocol?: unknown;
  port?: unknown;
}

interface EndpointSpec {
  addresses?: unknown;
  conditions?: { ready?: unknown };
  hostname?: unknown;
}

function listOf<T>(value: unknown): T[] {
  return Array.isArray(value) ? (value as T[]) : [];
}

function protocolLabel(protocol: unknown): string | undefined {
  const text = typeof protocol === 'string' ? protocol : 'TCP';
  return label(`_${text.toLowerCase()}`);
}

function validPort(port: unknown): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536;
}

/** The records of a zone while it is being built. */
class ZoneBuilder {
  readonly names = new Map<string, NameRecords>();

  at(name: string): NameRecords {
    let records = this.names.get(name);
    if (!records) {
      records = { a: [], aaaa: [], srv: [], ptr: [] };
      this.names.set(name, records);
    }
    return records;
  }

  address(name: string, ip: IpAddress): void {
    const records = this.at(name);
    const list = ip.family === 4 ? records.a : records.aaaa;
    const text = formatIp(ip);
    if (!list.includes(text)) list.push(text);
  }

  pointer(ip: IpAddress, target: string): void {
    const records = this.at(reverseName(ip));
    if (!records.ptr.includes(target)) records.ptr.push(target);
  }

  service(name: string, port: number, target: string): void {
    const records = this.at(name);
    if (!records.srv.some((r) => r.port === port && r.target === target)) {
      records.srv.push({ priority: 0, weight: 100, port, target });
    }
  }
}

function clusterIps(service: KubeObject): IpAddress[] {
  const spec = service.spec ?? {};
  const texts = listOf<unknown>(spec.clusterIPs);
  if (texts.length === 0 && typeof spec.clusterIP === 'string') texts.push(spec.clusterIP);
  const ips: IpAddress[] = [];
  for (const text of texts) {
    const ip = typeof text === 'string' ? parseIp(text) : undefined;
    if (ip && !ips.some((seen) => seen.family === ip.family && seen.value === ip.value)) {
      ips.push(ip);
    }
  }
  return ips;
}

function isHeadless(service: KubeObject): boolean {
  const spec = service.spec ?? {};
  return spec.clusterIP === 'None' || listOf<unknown>(spec.clusterIPs)[0] === 'None';
}

/** A ClusterIP Service: its cluster IPs, SRV per named port to itself, PTR per cluster IP. */
function addClusterIpService(zone: ZoneBuilder, service: KubeObject, serviceName: string): void {
  zone.at(serviceName);
  for (const ip of clusterIps(service)) {
    zone.address(serviceName, ip);
    zone.pointer(ip, serviceName);
  }
  for (const port of listOf<ServicePortSpec>(service.spec?.ports)) {
    const portName = label(typeof port.name === 'string' ? `_${port.name}` : undefined);
    const protocol = protocolLabel(port.protocol);
    if (!portName || !protocol || !validPort(port.port)) continue;
    zone.service(`${portName}.${protocol}.${serviceName}`, port.port, serviceName);
    zone.service(serviceName, port.port, serviceName);
  }
}

/** A headless Service: its ready endpoints' addresses, one name per endpoint, SRV per endpoint. */
function addHeadlessService(
  zone: ZoneBuilder,
  serviceName: string,
  slices: readonly KubeObject[],
): void {
  zone.at(serviceName);
  for (const slice of slices) {
    const ports = listOf<ServicePortSpec>(slice.ports).flatMap((port) => {
      const portName = label(typeof port.name === 'string' ? `_${port.name}` : undefined);
      const protocol = protocolLabel(port.protocol);
      return portName && protocol && validPort(port.port)
        ? [{ name: `${portName}.${protocol}.${serviceName}`, port: port.port }]
        : [];
    });
    for (const endpoint of listOf<EndpointSpec>(slice.endpoints)) {
      if (endpoint.conditions?.ready === false) continue;
      const hostname = label(endpoint.hostname);
      for (const text of listOf<unknown>(endpoint.addresses)) {
        const ip = typeof text === 'string' ? parseIp(text) : undefined;
        if (!ip) continue;
        const host = hostname ?? addressLabel(ip);
        if (!addressLabelPattern.test(host)) continue;
        const endpointName = `${host}.${serviceName}`;
        zone.address(serviceName, ip);
        zone.address(endpointName, ip);
        zone.pointer(ip, endpointName);
        for (const port of ports) {
          zone.service(port.name, port.port, endpointName);
          zone.service(serviceName, port.port, endpointName);
        }
      }
    }
  }
}

/** The ancestors of `name` down to the zone's apex (excluded): `a.b.<zone>` → `b.<zone>`. */
function ancestors(name: string, domain: string): string[] {
  const found: string[] = [];
  let rest = name;
  for (;;) {
    const dot = rest.indexOf('.');
    if (dot < 0) break;
    rest = rest.slice(dot + 1);
    if (rest.length <= domain.length) break;
    found.push(rest);
  }
  return found;
}

function byTarget(x: SrvRecord, y: SrvRecord): number {
  return x.target < y.target ? -1 : x.target > y.target ? 1 : x.port - y.port;
}

/**
 * Sorted, so the same objects in another order give the same answers; SRV
 * weights as CoreDNS gives them: 100 shared between the records of one name,
 * at least 1 each.
 */
function settle(records: NameRecords): void {
  records.a.sort();
  records.aaaa.sort();
  records.ptr.sort();
  records.srv.sort(byTarget);
  const weight = Math.max(1, Math.floor(100 / Math.max(1, records.srv.length)));
  for (const srv of records.srv) srv.weight = weight;
}

/** The names one Service (and its EndpointSlices) gives the zone, with their records. */
export function serviceRecords(
  service: KubeObject,
  slices: readonly KubeObject[],
  domain: string,
): Map<string, NameRecords> {
  const zone = new ZoneBuilder();
  const name = label(service.metadata.name);
  const namespace = label(service.metadata.namespace);
  if (!name || !namespace) return zone.names;
  const serviceName = `${name}.${namespace}.svc.${domain}`;
  const spec = service.spec ?? {};
  if (spec.type === 'ExternalName') {
    // CoreDNS answers an ExternalName Service with a CNAME to spec.externalName.
    const target = typeof spec.externalName === 'string' ? normalizeDomain(spec.externalName) : '';
    if (target !== '' && target.split('.').every((l) => l !== '' && l.length < 64)) {
      zone.at(serviceName).cname = target;
    }
  } else if (isHeadless(service)) {
    addHeadlessService(zone, serviceName, slices);
  } else {
    addClusterIpService(zone, service, serviceName);
  }
  for (const records of zone.names.values()) settle(records);
  return zone.names;
}

interface Contribution {
  service: KubeObject;
  slices: readonly KubeObject[];
  names: Map<string, NameRecords>;
  /** The records as text, to tell a change that touches no record (a status update) from one that does. */
  text: string;
}

function sameObjects(a: readonly KubeObject[], b: readonly KubeObject[]): boolean {
  return a.length === b.length && a.every((object, i) => object === b[i]);
}

function textOf(names: Map<string, NameRecords>): string {
  return JSON.stringify([...names].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
}

/** The records of several Services at one name (PTR names are shared: an address may be in two). */
function merge(parts: readonly NameRecords[]): NameRecords {
  if (parts.length === 1 && parts[0]) return parts[0];
  const merged: NameRecords = { a: [], aaaa: [], srv: [], ptr: [] };
  for (const part of parts) {
    for (const a of part.a) if (!merged.a.includes(a)) merged.a.push(a);
    for (const a of part.aaaa) if (!merged.aaaa.includes(a)) merged.aaaa.push(a);
    for (const p of part.ptr) if (!merged.ptr.includes(p)) merged.ptr.push(p);
    for (const srv of part.srv) {
      if (!merged.srv.some((r) => r.port === srv.port && r.target === srv.target)) {
        merged.srv.push({ ...srv });
      }
    }
    merged.cname ??= part.cname;
  }
  settle(merged);
  return merged;
}

/**
 * The zone's records, kept up to date one Service at a time: update() is
 * handed every object each time, finds the Services whose objects changed
 * (by identity: an informer replaces an object when it changes), and
 * recomputes only those, so a change costs a pass over the objects plus
 * the changed Services' records, not a rebuild of the whole zone.
 */
export class ZoneIndex implements ZoneRecords {
  readonly domain: string;
  /** Per Service (`namespace/name`): what it contributes. */
  readonly #services = new Map<string, Contribution>();
  /** Per name: the Services contributing to it. */
  readonly #contributors = new Map<string, Set<string>>();
  /** Per name: the records answered (the contributions merged). */
  readonly #records = new Map<string, NameRecords>();
  /** Per name in the zone: how many names with records lie below it. */
  readonly #below = new Map<string, number>();
  /** Names that always exist: the apex's neighbours `svc`, `pod`, `dns` and the NS name. */
  readonly #fixed: ReadonlySet<string>;

  constructor(domain: string) {
    this.domain = normalizeDomain(domain);
    this.#fixed = new Set(
      ['svc', 'pod', 'dns', 'ns.dns'].map((prefix) => `${prefix}.${this.domain}`),
    );
  }

  get(name: string): NameRecords | undefined {
    return this.#records.get(name);
  }

  exists(name: string): boolean {
    return this.#records.has(name) || this.#below.has(name) || this.#fixed.has(name);
  }

  /** Every name with records (for tests and debugging). */
  names(): string[] {
    return [...this.#records.keys()];
  }

  /** Makes the records those of `objects`; true when any record changed. */
  update(objects: ClusterObjects): boolean {
    const slicesByService = new Map<string, KubeObject[]>();
    for (const slice of objects.endpointSlices) {
      const serviceName = slice.metadata.labels?.[serviceNameLabel];
      const namespace = slice.metadata.namespace;
      if (!serviceName || !namespace) continue;
      const key = `${namespace}/${serviceName}`;
      const list = slicesByService.get(key);
      if (list) list.push(slice);
      else slicesByService.set(key, [slice]);
    }
    let changed = false;
    const seen = new Set<string>();
    for (const service of objects.services) {
      const key = `${service.metadata.namespace ?? ''}/${service.metadata.name ?? ''}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const slices = slicesByService.get(key) ?? [];
      const before = this.#services.get(key);
      if (before && before.service === service && sameObjects(before.slices, slices)) continue;
      const names = serviceRecords(service, slices, this.domain);
      const text = textOf(names);
      if (before?.text === text) {
        this.#services.set(key, { ...before, service, slices });
        continue;
      }
      if (before) this.#withdraw(key, before);
      this.#contribute(key, { service, slices, names, text });
      changed = true;
    }
    for (const [key, before] of [...this.#services]) {
      if (seen.has(key)) continue;
      this.#withdraw(key, before);
      changed = true;
    }
    return changed;
  }

  #contribute(key: string, contribution: Contribution): void {
    this.#services.set(key, contribution);
    for (const name of contribution.names.keys()) {
      let contributors = this.#contributors.get(name);
      if (!contributors) {
        contributors = new Set();
        this.#contributors.set(name, contributors);
        this.#countBelow(name, 1);
      }
      contributors.add(key);
      this.#remerge(name, contributors);
    }
  }

  #withdraw(key: string, contribution: Contribution): void {
    this.#services.delete(key);
    for (const name of contribution.names.keys()) {
      const contributors = this.#contributors.get(name);
      if (!contributors) continue;
      contributors.delete(key);
      if (contributors.size > 0) {
        this.#remerge(name, contributors);
        continue;
      }
      this.#contributors.delete(name);
      this.#records.delete(name);
      this.#countBelow(name, -1);
    }
  }

  #remerge(name: string, contributors: ReadonlySet<string>): void {
    const parts: NameRecords[] = [];
    for (const key of contributors) {
      const part = this.#services.get(key)?.names.get(name);
      if (part) parts.push(part);
    }
    this.#records.set(name, merge(parts));
  }

  /** Counts a name with records in (or out of) each of its ancestors in the zone. */
  #countBelow(name: string, delta: 1 | -1): void {
    if (name.endsWith('.arpa')) return;
    for (const ancestor of ancestors(name, this.domain)) {
      const count = (this.#below.get(ancestor) ?? 0) + delta;
      if (count > 0) this.#below.set(ancestor, count);
      else this.#below.delete(ancestor);
    }
  }
}

/** The zone's records for these Services and EndpointSlices, built at once. */
export function buildZoneRecords(objects: ClusterObjects, domain: string): ZoneIndex {
  const index = new ZoneIndex(domain);
  index.update(objects);
  return index;
}
