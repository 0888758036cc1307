// Services, EndpointSlices and DNS queries for the cluster DNS tests (unit
// and e2e): hand-made objects in the shapes the API server stores and the
// EndpointSlice controller writes, and queries encoded with dns-packet.
import { type DecodedPacket, type Packet, type RecordType, decode, encode } from 'dns-packet';
import type { KubeObject } from '../../src/api/types.js';

export interface PortSpec {
  name?: string;
  port: number;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
}

/** A ClusterIP Service with `clusterIPs` (the first also as clusterIP). */
export function clusterIpService(
  name: string,
  namespace: string,
  clusterIPs: string[],
  ports: PortSpec[] = [],
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { type: 'ClusterIP', clusterIP: clusterIPs[0], clusterIPs, ports },
  };
}

export function headlessService(
  name: string,
  namespace: string,
  ports: PortSpec[] = [],
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { type: 'ClusterIP', clusterIP: 'None', clusterIPs: ['None'], ports },
  };
}

export function externalNameService(name: string, namespace: string, target: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { type: 'ExternalName', externalName: target },
  };
}

export interface EndpointSpec {
  addresses: string[];
  /** Absent: no conditions.ready field at all (which counts as ready). */
  ready?: boolean;
  hostname?: string;
}

/** An EndpointSlice of Service `service`, as the EndpointSlice controller writes one. */
export function endpointSlice(
  name: string,
  namespace: string,
  service: string,
  addressType: 'IPv4' | 'IPv6',
  endpoints: EndpointSpec[],
  ports: PortSpec[] = [],
): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace,
      labels: {
        'kubernetes.io/service-name': service,
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.strata.dev',
      },
    },
    addressType,
    endpoints: endpoints.map((e) => ({
      addresses: e.addresses,
      conditions:
        e.ready === undefined ? {} : { ready: e.ready, serving: e.ready, terminating: false },
      ...(e.hostname === undefined ? {} : { hostname: e.hostname }),
    })),
    ports: ports.map((p) => ({ name: p.name ?? '', port: p.port, protocol: p.protocol ?? 'TCP' })),
  };
}

/** `count` ready endpoints 10.244.<third>.2 onwards. */
export function manyEndpoints(count: number, third = 9): EndpointSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    addresses: [`10.244.${third}.${i + 2}`],
    ready: true,
  }));
}

export interface QueryOptions {
  id?: number;
  /** Adds an OPT record advertising this UDP payload size. */
  edns?: number;
  ednsVersion?: number;
  recursionDesired?: boolean;
}

/** One question, encoded as a stub resolver sends it. */
export function query(
  name: string,
  type: RecordType | `UNKNOWN_${number}`,
  options: QueryOptions = {},
): Buffer {
  const packet: Packet = {
    type: 'query',
    id: options.id ?? 4242,
    flags: options.recursionDesired === false ? 0 : 256,
    questions: [{ name, type: type as RecordType, class: 'IN' }],
    additionals:
      options.edns === undefined
        ? []
        : [
            {
              name: '.',
              type: 'OPT',
              udpPayloadSize: options.edns,
              extendedRcode: 0,
              ednsVersion: options.ednsVersion ?? 0,
              flags: 0,
              flag_do: false,
              options: [],
            },
          ],
  };
  return encode(packet);
}

export interface DecodedResponse {
  packet: DecodedPacket;
  rcode: string;
  /** `TYPE data` of every answer, as text: `A 10.96.0.10`, `SRV 0 100 80 web...`. */
  answers: string[];
  authorities: string[];
  additionals: string[];
  size: number;
}

function recordText(record: NonNullable<Packet['answers']>[number]): string {
  switch (record.type) {
    case 'SRV':
      return `${record.name} SRV ${record.data.priority ?? 0} ${record.data.weight ?? 0} ${record.data.port} ${record.data.target}`;
    case 'SOA':
      return `${record.name} SOA ${record.data.mname} ${record.data.rname} ${record.data.minimum ?? 0}`;
    case 'OPT':
      return `OPT ${record.udpPayloadSize}`;
    case 'A':
    case 'AAAA':
    case 'PTR':
    case 'CNAME':
    case 'NS':
      return `${record.name} ${record.type} ${record.data}`;
    default:
      return `${record.name} ${record.type}`;
  }
}

/** A response in a form tests compare easily. */
export function decodeResponse(response: Buffer): DecodedResponse {
  const packet = decode(response);
  const header = response.readUInt16BE(2);
  const rcodes = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
  return {
    packet,
    rcode: rcodes[header & 0xf] ?? String(header & 0xf),
    answers: (packet.answers ?? []).map(recordText),
    authorities: (packet.authorities ?? []).map(recordText),
    additionals: (packet.additionals ?? []).map(recordText),
    size: response.length,
  };
}
