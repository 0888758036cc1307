/**
 * Services and EndpointSlices reduced to what the data path needs, as
 * kube-proxy's ServiceChangeTracker and EndpointsChangeTracker reduce them
 * (pkg/proxy/servicechangetracker.go, endpointslicecache.go): one entry per
 * Service port with its virtual addresses, and the endpoints each port has,
 * merged from every slice of the Service.
 *
 * A Service is keyed `namespace/name`; one of its ports is a "service port
 * name", `namespace/name:portName` (kube-proxy's ServicePortName), which is
 * how a slice's ports find their Service port: by name and protocol.
 */
import type { KubeObject } from '../api/types.js';
import { familyOf, type IpFamily } from '../netaddr/ip.js';

export type ServiceProtocol = 'TCP' | 'UDP' | 'SCTP';
export type TrafficPolicy = 'Cluster' | 'Local';

export interface ServicePortInput {
  /** The port's name; '' for the only, unnamed port. */
  name: string;
  protocol: ServiceProtocol;
  port: number;
  /** Set on NodePort Services once the API server gave one. */
  nodePort?: number;
}

export interface ServiceInput {
  namespace: string;
  name: string;
  type: 'ClusterIP' | 'NodePort';
  /** The virtual addresses, one per family; empty for a headless Service (nothing to program). */
  clusterIps: string[];
  ports: ServicePortInput[];
  /** sessionAffinity ClientIP: how long a client stays with its endpoint, in seconds. */
  affinitySeconds?: number;
  internalTrafficPolicy: TrafficPolicy;
  externalTrafficPolicy: TrafficPolicy;
}

export interface EndpointInput {
  address: string;
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  nodeName?: string;
}

export const serviceNameLabel = 'kubernetes.io/service-name';

/** `namespace/name`. */
export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** kube-proxy's ServicePortName: `namespace/name:portName`, the unit endpoints belong to. */
export function servicePortKey(
  service: Pick<ServiceInput, 'namespace' | 'name'>,
  port: Pick<ServicePortInput, 'name' | 'protocol'>,
): string {
  return `${service.namespace}/${service.name}:${port.name}/${port.protocol}`;
}

function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function asInteger(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) ? value : undefined;
}

function asList(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function asRecord(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
}

function protocolOf(value: unknown): ServiceProtocol | undefined {
  const protocol = value === undefined ? 'TCP' : value;
  return protocol === 'TCP' || protocol === 'UDP' || protocol === 'SCTP' ? protocol : undefined;
}

function trafficPolicy(value: unknown): TrafficPolicy {
  return value === 'Local' ? 'Local' : 'Cluster';
}

/**
 * The Service as the data path sees it, or undefined for a kind of Service
 * nothing is programmed for (ExternalName, or one without a namespace).
 */
export function serviceInput(service: KubeObject): ServiceInput | undefined {
  const namespace = service.metadata.namespace;
  const name = service.metadata.name;
  const spec = asRecord(service.spec);
  const type = spec.type ?? 'ClusterIP';
  if (!namespace || !name || (type !== 'ClusterIP' && type !== 'NodePort')) return undefined;
  const ips = asList(spec.clusterIPs).map(asString);
  if (ips.length === 0) ips.push(asString(spec.clusterIP));
  const clusterIps = ips.filter(
    (ip): ip is string => ip !== undefined && familyOf(ip) !== undefined,
  );
  const ports: ServicePortInput[] = [];
  for (const item of asList(spec.ports)) {
    const port = asRecord(item);
    const number = asInteger(port.port);
    const protocol = protocolOf(port.protocol);
    if (number === undefined || protocol === undefined) continue;
    const entry: ServicePortInput = { name: asString(port.name) ?? '', protocol, port: number };
    const nodePort = asInteger(port.nodePort);
    if (type === 'NodePort' && nodePort !== undefined && nodePort > 0) entry.nodePort = nodePort;
    ports.push(entry);
  }
  const input: ServiceInput = {
    namespace,
    name,
    type,
    clusterIps,
    ports,
    internalTrafficPolicy: trafficPolicy(spec.internalTrafficPolicy),
    externalTrafficPolicy: trafficPolicy(spec.externalTrafficPolicy),
  };
  if (spec.sessionAffinity === 'ClientIP') {
    const clientIp = asRecord(asRecord(spec.sessionAffinityConfig).clientIP);
    input.affinitySeconds = asInteger(clientIp.timeoutSeconds) ?? 10800;
  }
  return input;
}

/** The Service (`namespace/name`) an EndpointSlice belongs to, by its service-name label. */
export function sliceServiceKey(slice: KubeObject): string | undefined {
  const service = slice.metadata.labels?.[serviceNameLabel];
  const namespace = slice.metadata.namespace;
  return service && namespace ? serviceKey(namespace, service) : undefined;
}

/**
 * Every endpoint of the Service's slices, per service port name
 * (servicePortKey). An endpoint in two slices (a pod moving between slices)
 * counts once, ready if either says so, as endpointslicecache merges them.
 */
export function endpointsOf(
  namespace: string,
  name: string,
  slices: Iterable<KubeObject>,
): Map<string, EndpointInput[]> {
  const byPort = new Map<string, Map<string, EndpointInput>>();
  for (const slice of slices) {
    const addressType = asString(slice.addressType);
    if (addressType !== 'IPv4' && addressType !== 'IPv6') continue;
    for (const item of asList(slice.ports)) {
      const port = asRecord(item);
      const number = asInteger(port.port);
      const protocol = protocolOf(port.protocol);
      if (number === undefined || protocol === undefined) continue;
      const key = servicePortKey(
        { namespace, name },
        { name: asString(port.name) ?? '', protocol },
      );
      let endpoints = byPort.get(key);
      if (!endpoints) byPort.set(key, (endpoints = new Map<string, EndpointInput>()));
      for (const raw of asList(slice.endpoints)) {
        const endpoint = asRecord(raw);
        // kube-proxy uses an endpoint's first address only.
        const address = asString(asList(endpoint.addresses)[0]);
        if (!address || familyOf(address) !== (addressType === 'IPv4' ? 4 : 6)) continue;
        const conditions = asRecord(endpoint.conditions);
        // An unset ready condition means ready (the EndpointSlice API's rule).
        const ready = conditions.ready !== false;
        const entry: EndpointInput = {
          address,
          port: number,
          ready,
          serving: conditions.serving === undefined ? ready : conditions.serving === true,
          terminating: conditions.terminating === true,
        };
        const nodeName = asString(endpoint.nodeName);
        if (nodeName) entry.nodeName = nodeName;
        const id = `${address}:${number}`;
        const seen = endpoints.get(id);
        if (!seen || (!seen.ready && entry.ready)) endpoints.set(id, entry);
      }
    }
  }
  const result = new Map<string, EndpointInput[]>();
  for (const [key, endpoints] of byPort) result.set(key, [...endpoints.values()]);
  return result;
}

/**
 * The endpoints new connections may go to (kube-proxy's CategorizeEndpoints):
 * the ready ones; when none is ready, the ones still serving while they
 * terminate, so a rolling update whose old pods are all terminating does not
 * black-hole the Service. `local` keeps only endpoints on the given node
 * (trafficPolicy Local).
 */
export function usableEndpoints(
  endpoints: readonly EndpointInput[],
  family: IpFamily,
  localNode?: string,
): EndpointInput[] {
  const ofFamily = endpoints.filter(
    (e) => familyOf(e.address) === family && (localNode === undefined || e.nodeName === localNode),
  );
  const ready = ofFamily.filter((e) => e.ready);
  if (ready.length > 0) return ready;
  return ofFamily.filter((e) => e.serving && e.terminating);
}
