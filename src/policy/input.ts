/**
 * API objects reduced to what the NetworkPolicy model reads. The node agent
 * (enforcement) and the CLI (`get networkpolicies -o wide`, `explain`) both
 * build their model through these functions, so they see the same pods.
 */
import type { KubeObject } from '../api/types.js';
import type { PolicyInput } from './model.js';
import type {
  ContainerPort,
  NetworkPolicy,
  PolicyNamespace,
  PolicyNode,
  PolicyPod,
  Protocol,
} from './types.js';

const protocols = new Set<string>(['TCP', 'UDP', 'SCTP']);

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** spec.containers[].ports, as NetworkPolicy's named ports resolve against them. */
function containerPorts(pod: KubeObject): ContainerPort[] {
  const out: ContainerPort[] = [];
  for (const container of list(pod.spec?.containers)) {
    for (const port of list(record(container).ports)) {
      const { name, containerPort, protocol } = record(port);
      if (typeof containerPort !== 'number') continue;
      out.push({
        ...(typeof name === 'string' ? { name } : {}),
        port: containerPort,
        protocol:
          typeof protocol === 'string' && protocols.has(protocol) ? (protocol as Protocol) : 'TCP',
      });
    }
  }
  return out;
}

/** status.podIPs (or the older status.podIP). */
export function podAddresses(pod: KubeObject): string[] {
  const ips = list(pod.status?.podIPs)
    .map((entry) => record(entry).ip)
    .filter((ip): ip is string => typeof ip === 'string' && ip !== '');
  if (ips.length > 0) return ips;
  const single = pod.status?.podIP;
  return typeof single === 'string' && single !== '' ? [single] : [];
}

/**
 * A pod as NetworkPolicy sees it, or undefined for a pod that takes no part:
 * not scheduled, or finished (phase Succeeded or Failed: its address may
 * already belong to another pod). `ips` overrides status.podIPs, for the
 * agent, which knows its own pods' addresses before the API does.
 */
export function policyPod(pod: KubeObject, ips?: readonly string[]): PolicyPod | undefined {
  const node = pod.spec?.nodeName;
  if (typeof node !== 'string' || node === '') return undefined;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return undefined;
  return {
    namespace: pod.metadata.namespace ?? 'default',
    name: pod.metadata.name ?? '',
    labels: { ...(pod.metadata.labels ?? {}) },
    ips: ips ? [...ips] : podAddresses(pod),
    node,
    containerPorts: containerPorts(pod),
  };
}

/** The namespace annotation that turns on drop logging for its pods, as Antrea's enable-np-logging. */
export const logDropsAnnotation = 'strata.io/log-policy-drops';

export function policyNamespace(namespace: KubeObject): PolicyNamespace {
  const logDrops = namespace.metadata.annotations?.[logDropsAnnotation] === 'true';
  return {
    name: namespace.metadata.name ?? '',
    labels: { ...(namespace.metadata.labels ?? {}) },
    ...(logDrops ? { logDrops } : {}),
  };
}

/** A Node's own addresses (status.addresses of type InternalIP or ExternalIP). */
export function policyNode(node: KubeObject): PolicyNode {
  const ips = list(node.status?.addresses)
    .map(record)
    .filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP')
    .map((a) => a.address)
    .filter((ip): ip is string => typeof ip === 'string' && ip !== '');
  return { name: node.metadata.name ?? '', ips };
}

export function networkPolicy(object: KubeObject): NetworkPolicy {
  return object as unknown as NetworkPolicy;
}

/** The model's input from lists of API objects. */
export function policyInputFromObjects(objects: {
  policies: readonly KubeObject[];
  pods: readonly KubeObject[];
  namespaces: readonly KubeObject[];
  nodes: readonly KubeObject[];
}): PolicyInput {
  return {
    policies: objects.policies.map(networkPolicy),
    pods: objects.pods.flatMap((pod) => policyPod(pod) ?? []),
    namespaces: objects.namespaces.map(policyNamespace),
    nodes: objects.nodes.map(policyNode),
  };
}
