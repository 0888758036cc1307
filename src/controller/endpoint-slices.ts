/**
 * The EndpointSlices a Service should have, as a pure function of the
 * Service and its namespace's pods: upstream's endpointslice reconciler
 * (pkg/controller/endpointslice, staging/.../endpointslice/utils.go):
 *
 * - pods selected by `spec.selector` that have an address and are not
 *   Succeeded/Failed (ShouldPodBeInEndpoints, terminating pods included);
 * - conditions (podToEndpoint): serving = the pod is Ready, whether or not
 *   it is terminating; terminating = it has a deletionTimestamp; ready =
 *   serving and not terminating, or true whatever the pod's state when the
 *   Service has publishNotReadyAddresses (serving still tells the truth);
 * - ports per pod: each Service port with its targetPort resolved in that
 *   pod (FindPort: a name looks up a container port of that name and
 *   protocol; a pod without it gets no such port), so pods resolving a name
 *   differently land in different slices;
 * - one slice per address type and port set, at most 100 endpoints each,
 *   and with no endpoints a placeholder slice per address type.
 *
 * Slices are named `<service>-<hash of address type and ports>` (plus
 * `-<n>` past the first 100 endpoints) rather than generated, so a lagging
 * cache can never create a second slice for the same endpoints.
 */
import type { KubeObject } from '../api/types.js';
import { labelSelectorFromSpec, matchesLabels } from '../apiserver/selectors.js';
import { familyOf, parseIp } from '../netaddr/ip.js';
import { objectHash } from './object-hash.js';
import {
  controllerReference,
  isPodReady,
  isPodTerminal,
  isTerminating,
  nodeNameOf,
  podIps,
} from './object-state.js';

export const serviceNameLabel = 'kubernetes.io/service-name';
export const managedByLabel = 'endpointslice.kubernetes.io/managed-by';
export const managedBy = 'endpointslice-controller.strata.dev';
export const headlessLabel = 'service.kubernetes.io/headless';
/** --max-endpoints-per-slice's default. */
export const maxEndpointsPerSlice = 100;

export type AddressType = 'IPv4' | 'IPv6';

interface ServicePort {
  name?: string;
  protocol?: string;
  port?: number;
  targetPort?: number | string;
  appProtocol?: string;
}

interface ContainerPort {
  name?: string;
  containerPort?: number;
  protocol?: string;
}

export interface EndpointPort {
  name: string;
  protocol: string;
  port: number;
  appProtocol?: string;
}

export interface Endpoint {
  addresses: string[];
  conditions: { ready: boolean; serving: boolean; terminating: boolean };
  hostname?: string;
  nodeName?: string;
  targetRef: { kind: 'Pod'; namespace: string; name: string; uid: string };
}

function listOf<T>(value: unknown): T[] {
  return Array.isArray(value) ? (value as T[]) : [];
}

/** The Service's selector; undefined when it has none (then it gets no slices from here). */
export function serviceSelector(service: KubeObject): Record<string, string> | undefined {
  const selector = service.spec?.selector;
  if (selector === null || typeof selector !== 'object') return undefined;
  const labels = selector as Record<string, string>;
  return Object.keys(labels).length === 0 ? undefined : labels;
}

/** Whether the Service selects the pod (a Service's selector is a plain label map). */
export function selectsPod(service: KubeObject, pod: KubeObject): boolean {
  const selector = serviceSelector(service);
  if (!selector) return false;
  return matchesLabels(labelSelectorFromSpec({ matchLabels: selector }), pod.metadata.labels);
}

/** podutil.FindPort: the port number a Service port's targetPort means in this pod. */
export function findPort(pod: KubeObject, servicePort: ServicePort): number | undefined {
  const target = servicePort.targetPort ?? servicePort.port;
  if (typeof target === 'number') return target;
  const protocol = servicePort.protocol ?? 'TCP';
  for (const container of listOf<{ ports?: unknown }>(pod.spec?.containers)) {
    for (const port of listOf<ContainerPort>(container.ports)) {
      if (port.name === target && (port.protocol ?? 'TCP') === protocol) return port.containerPort;
    }
  }
  return undefined;
}

/** getEndpointPorts: the Service's ports as this pod serves them. */
export function endpointPorts(service: KubeObject, pod: KubeObject): EndpointPort[] {
  const ports: EndpointPort[] = [];
  for (const servicePort of listOf<ServicePort>(service.spec?.ports)) {
    const port = findPort(pod, servicePort);
    if (port === undefined) continue;
    const endpointPort: EndpointPort = {
      name: servicePort.name ?? '',
      protocol: servicePort.protocol ?? 'TCP',
      port,
    };
    if (servicePort.appProtocol !== undefined) endpointPort.appProtocol = servicePort.appProtocol;
    ports.push(endpointPort);
  }
  return ports;
}

/**
 * The address types the Service gets slices for: its ipFamilies, else its
 * cluster IP's family, else (no cluster IP in strata without a service
 * CIDR, or headless) the families its pods have addresses in, IPv4 if none.
 */
export function addressTypes(service: KubeObject, pods: readonly KubeObject[]): AddressType[] {
  const families = listOf<string>(service.spec?.ipFamilies).filter(
    (f): f is AddressType => f === 'IPv4' || f === 'IPv6',
  );
  if (families.length > 0) return families;
  const clusterIp = service.spec?.clusterIP;
  const family = typeof clusterIp === 'string' ? parseIp(clusterIp)?.family : undefined;
  if (family !== undefined) return [family === 4 ? 'IPv4' : 'IPv6'];
  const seen = new Set<AddressType>();
  for (const pod of pods) {
    for (const ip of podIps(pod)) seen.add(familyOf(ip) === 6 ? 'IPv6' : 'IPv4');
  }
  return seen.size === 0 ? ['IPv4'] : (['IPv4', 'IPv6'] as const).filter((t) => seen.has(t));
}

/** ShouldPodBeInEndpoints with terminating pods included, as the EndpointSlice controller asks. */
export function isEndpointPod(pod: KubeObject): boolean {
  return podIps(pod).length > 0 && !isPodTerminal(pod);
}

function endpointFor(service: KubeObject, pod: KubeObject, address: string): Endpoint {
  const serving = isPodReady(pod);
  const terminating = isTerminating(pod);
  // Never ready while terminating, unless the Service publishes not-ready addresses.
  const ready = service.spec?.publishNotReadyAddresses === true || (serving && !terminating);
  const endpoint: Endpoint = {
    addresses: [address],
    conditions: { ready, serving, terminating },
    targetRef: {
      kind: 'Pod',
      namespace: pod.metadata.namespace ?? '',
      name: pod.metadata.name ?? '',
      uid: pod.metadata.uid ?? '',
    },
  };
  const hostname = pod.spec?.hostname;
  if (
    typeof hostname === 'string' &&
    hostname !== '' &&
    pod.spec?.subdomain === service.metadata.name
  ) {
    endpoint.hostname = hostname;
  }
  const node = nodeNameOf(pod);
  if (node !== '') endpoint.nodeName = node;
  return endpoint;
}

/** The labels every slice of the Service carries: the Service's own, then the controller's. */
function sliceLabels(service: KubeObject): Record<string, string> {
  const labels = Object.fromEntries(
    Object.entries(service.metadata.labels ?? {}).filter(([key]) => key !== headlessLabel),
  );
  labels[serviceNameLabel] = service.metadata.name ?? '';
  labels[managedByLabel] = managedBy;
  if (service.spec?.clusterIP === 'None') labels[headlessLabel] = '';
  return labels;
}

function slice(
  service: KubeObject,
  name: string,
  addressType: AddressType,
  endpoints: Endpoint[],
  ports: EndpointPort[],
): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: service.metadata.namespace,
      labels: sliceLabels(service),
      ownerReferences: [controllerReference(service)],
    },
    addressType,
    endpoints,
    ports,
  };
}

/** Every slice the Service should have, by name. */
export function desiredSlices(
  service: KubeObject,
  candidates: readonly KubeObject[],
): KubeObject[] {
  const selector = serviceSelector(service);
  if (!selector) return [];
  const requirements = labelSelectorFromSpec({ matchLabels: selector });
  const selected = candidates
    .filter((pod) => matchesLabels(requirements, pod.metadata.labels) && isEndpointPod(pod))
    .sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
  const serviceName = service.metadata.name ?? '';
  const slices: KubeObject[] = [];
  for (const addressType of addressTypes(service, selected)) {
    const groups = new Map<string, { ports: EndpointPort[]; endpoints: Endpoint[] }>();
    for (const pod of selected) {
      const address = podIps(pod).find((ip) => familyOf(ip) === (addressType === 'IPv4' ? 4 : 6));
      if (address === undefined) continue;
      const ports = endpointPorts(service, pod);
      const suffix = objectHash([addressType, ports]);
      let group = groups.get(suffix);
      if (!group) {
        group = { ports, endpoints: [] };
        groups.set(suffix, group);
      }
      group.endpoints.push(endpointFor(service, pod, address));
    }
    if (groups.size === 0) {
      // A placeholder: the Service is known to have no endpoints of this type.
      const name = `${serviceName}-${objectHash([addressType, []])}`;
      slices.push(slice(service, name, addressType, [], []));
    }
    for (const [suffix, group] of groups) {
      for (let i = 0; i * maxEndpointsPerSlice < group.endpoints.length; i++) {
        const chunk = group.endpoints.slice(
          i * maxEndpointsPerSlice,
          (i + 1) * maxEndpointsPerSlice,
        );
        const name = `${serviceName}-${suffix}${i === 0 ? '' : `-${i + 1}`}`;
        slices.push(slice(service, name, addressType, chunk, group.ports));
      }
    }
  }
  return slices;
}
