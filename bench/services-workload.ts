/**
 * The Services of bench:services, as the agent hands them to NodeServiceCompiler
 * (ServiceInput, and endpoints per service port name), generated, not read from an API
 * server. Service i of N:
 * - ClusterIP 10.96.(4 + i / 256).(i % 256), namespace ns-(i % 25), name svc-i;
 * - one TCP port 80 → 8080; i % 10 = 3: two TCP ports (http 80, https 443); i % 10 = 7:
 *   the kube-dns shape, UDP 53 and TCP 53;
 * - i % 100 = 50: NodePort (30000 + i, and 31000 + i for a second port);
 * - i % 20 = 9: sessionAffinity ClientIP (5 %), as kube-proxy's per-endpoint chains;
 * - 10 pods as its endpoints, ready, on nodes n1-n4, addresses 10.244.1.2 onwards (250
 *   per /24), each an endpoint of every port of the Service.
 * 10.244.0.0/24 and 10.96.0.0/24 are left to the data-path topology.
 */
import type { ServiceNode } from '../src/services/compile.js';
import {
  type EndpointInput,
  type ServiceInput,
  type ServicePortInput,
  serviceKey,
  servicePortKey,
} from '../src/services/input.js';

export const benchNode: ServiceNode = { name: 'n1', clusterCidrs: ['10.244.0.0/16'] };
export const podsPerService = 10;

export interface WorkloadPod {
  address: string;
  ready: boolean;
  nodeName: string;
}

export interface WorkloadService {
  /** `namespace/name`, the compiler's key. */
  key: string;
  service: ServiceInput;
  /** Service port → the port its pods listen on. */
  targetPorts: number[];
  pods: WorkloadPod[];
}

export interface WorkloadShape {
  services: number;
  servicePorts: number;
  endpoints: number;
  twoPorts: number;
  udpPorts: number;
  nodePorts: number;
  affinity: number;
}

function podAddress(p: number): string {
  return `10.244.${1 + Math.floor(p / 250)}.${2 + (p % 250)}`;
}

function portsOf(i: number): { ports: ServicePortInput[]; targetPorts: number[] } {
  if (i % 10 === 3) {
    return {
      ports: [
        { name: 'http', protocol: 'TCP', port: 80 },
        { name: 'https', protocol: 'TCP', port: 443 },
      ],
      targetPorts: [8080, 8443],
    };
  }
  if (i % 10 === 7) {
    return {
      ports: [
        { name: 'dns', protocol: 'UDP', port: 53 },
        { name: 'dns-tcp', protocol: 'TCP', port: 53 },
      ],
      targetPorts: [53, 53],
    };
  }
  return { ports: [{ name: '', protocol: 'TCP', port: 80 }], targetPorts: [8080] };
}

/** Service i of the workload, its pods ready. */
export function workloadService(i: number): WorkloadService {
  const { ports, targetPorts } = portsOf(i);
  const nodePort = i % 100 === 50;
  if (nodePort) ports.forEach((port, n) => (port.nodePort = 30000 + n * 1000 + i));
  const service: ServiceInput = {
    namespace: `ns-${i % 25}`,
    name: `svc-${i}`,
    type: nodePort ? 'NodePort' : 'ClusterIP',
    clusterIps: [`10.96.${4 + Math.floor(i / 256)}.${i % 256}`],
    ports,
    internalTrafficPolicy: 'Cluster',
    externalTrafficPolicy: 'Cluster',
  };
  if (i % 20 === 9) service.affinitySeconds = 10800;
  const pods = Array.from({ length: podsPerService }, (_, k) => {
    const p = i * podsPerService + k;
    return { address: podAddress(p), ready: true, nodeName: `n${1 + (p % 4)}` };
  });
  return { key: serviceKey(service.namespace, service.name), service, targetPorts, pods };
}

/** The endpoints of every port of the Service, from its pods (endpointsOf's result shape). */
export function endpointsFor(ws: WorkloadService): Map<string, EndpointInput[]> {
  const map = new Map<string, EndpointInput[]>();
  ws.service.ports.forEach((port, n) => {
    map.set(
      servicePortKey(ws.service, port),
      ws.pods.map((pod) => ({
        address: pod.address,
        port: ws.targetPorts[n] ?? port.port,
        ready: pod.ready,
        serving: pod.ready,
        terminating: false,
        nodeName: pod.nodeName,
      })),
    );
  });
  return map;
}

export function serviceWorkload(count: number): WorkloadService[] {
  return Array.from({ length: count }, (_, i) => workloadService(i));
}

export function shapeOf(services: readonly WorkloadService[]): WorkloadShape {
  const ports = services.flatMap((s) => s.service.ports);
  return {
    services: services.length,
    servicePorts: ports.length,
    endpoints: services.reduce((n, s) => n + s.pods.length, 0),
    twoPorts: services.filter((s) => s.service.ports.length === 2).length,
    udpPorts: ports.filter((p) => p.protocol === 'UDP').length,
    nodePorts: ports.filter((p) => p.nodePort !== undefined).length,
    affinity: services.filter((s) => s.service.affinitySeconds !== undefined).length,
  };
}

/** One pod of one Service changes: it turns not ready, or is replaced by a pod at a new address. */
export interface EndpointChange {
  label: string;
  service: WorkloadService;
  /** The address that must no longer be a DNAT target once the change is applied. */
  gone: string;
  /** The new address that must be one (replacements only). */
  added?: string;
  /** The endpoints before and after. */
  before: Map<string, EndpointInput[]>;
  after: Map<string, EndpointInput[]>;
}

/**
 * Change j (0-based) of the run: Services spread over the workload (97 is prime to
 * 1,000), every other change a replacement. Mutates the Service's pods.
 */
export function endpointChange(services: readonly WorkloadService[], j: number): EndpointChange {
  const service = services[(j * 97 + 13) % services.length];
  if (!service) throw new Error('The workload has no Services');
  const k = j % podsPerService;
  const pod = service.pods[k];
  if (!pod) throw new Error(`${service.key} has no pod ${k}`);
  const before = endpointsFor(service);
  const gone = pod.address;
  let label: string;
  let added: string | undefined;
  if (j % 2 === 0) {
    pod.ready = false;
    label = `${service.key} ${gone} not ready`;
  } else {
    added = `10.244.200.${10 + j}`;
    pod.address = added;
    label = `${service.key} ${gone} → ${added}`;
  }
  return {
    label,
    service,
    gone,
    ...(added ? { added } : {}),
    before,
    after: endpointsFor(service),
  };
}
