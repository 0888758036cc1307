/**
 * Why a connection is allowed or denied: the answer `strata explain` prints,
 * computed from the same model the nftables compiler reads.
 *
 * Upstream rules applied here (NetworkPolicy concepts page):
 * - a connection needs both the source's egress and the destination's
 *   ingress to allow it; a side that is not isolated allows everything;
 * - a pod cannot block traffic to or from itself;
 * - traffic between a pod and the node it runs on is always allowed.
 * Replies to allowed connections are allowed too; they are conntrack's job
 * and are not asked about here.
 */
import type { MeshDecision } from '../mesh/decide.js';
import { type IpAddress, ipEqual, parseIp, prefixContains } from '../netaddr/ip.js';
import type { Grant, PodPolicy, PolicyModel, RuleRef } from './model.js';
import type { Protocol } from './types.js';

/** A pod (`namespace/name`) or a bare address (which may still belong to a pod). */
export type Endpoint = { pod: string } | { ip: string };

/** One direction's answer. */
export type SideDecision =
  | { result: 'allow'; reason: 'rules'; by: RuleRef[] }
  | { result: 'allow'; reason: 'not-isolated' }
  | { result: 'allow'; reason: 'not-a-pod' }
  | { result: 'allow'; reason: 'self' }
  | { result: 'allow'; reason: 'node' }
  | { result: 'deny'; reason: 'no-rule-allows'; isolatedBy: string[] }
  | { result: 'deny'; reason: 'unknown-endpoint' };

export interface NetworkPolicyDecision {
  layer: 'networkpolicy';
  verdict: 'allow' | 'deny';
  egress: SideDecision;
  ingress: SideDecision;
  /**
   * Set when this is the verdict on the mesh's HBONE tunnel that carries the
   * connection: TCP from the source pod to the destination pod on this port
   * (15008), judged by the same policies as any other connection.
   */
  tunnelPort?: number;
}

/** One layer's answer: the kernel's NetworkPolicy, or the mesh's (src/mesh/decide.ts). */
export type LayerDecision = NetworkPolicyDecision | MeshDecision;

/**
 * The overall verdict: denied when any layer denies. The NetworkPolicy
 * layer's sides are also at the top level for convenience.
 */
export type Decision = Omit<NetworkPolicyDecision, 'verdict'> & {
  verdict: 'allow' | 'deny';
  layers: LayerDecision[];
};

/** The decision with one more layer: denied when that layer denies too. */
export function withLayer(decision: Decision, layer: LayerDecision): Decision {
  const verdict = decision.verdict === 'deny' || layer.verdict === 'deny' ? 'deny' : 'allow';
  return { ...decision, verdict, layers: [...decision.layers, layer] };
}

interface Resolved {
  pod: PodPolicy | undefined;
  addresses: IpAddress[];
}

function resolve(model: PolicyModel, endpoint: Endpoint): Resolved | undefined {
  if ('pod' in endpoint) {
    const pod = model.pods.get(endpoint.pod);
    if (!pod) return undefined;
    return { pod, addresses: pod.pod.ips.flatMap((ip) => parseIp(ip) ?? []) };
  }
  const address = parseIp(endpoint.ip);
  if (!address) return undefined;
  for (const pod of model.pods.values()) {
    if (pod.pod.ips.some((ip) => sameAddress(ip, address))) {
      return { pod, addresses: [address] };
    }
  }
  return { pod: undefined, addresses: [address] };
}

function matches(grant: Grant, peer: IpAddress, protocol: Protocol, port: number): boolean {
  return (
    grant.ports.some(
      (span) =>
        (span.protocol === 'any' || span.protocol === protocol) &&
        port >= span.ports[0] &&
        port <= span.ports[1],
    ) && grant.peers.some((prefix) => prefixContains(prefix, peer))
  );
}

function judge(
  side: PodPolicy['ingress'],
  peer: IpAddress,
  protocol: Protocol,
  port: number,
): SideDecision {
  if (!side.isolated) return { result: 'allow', reason: 'not-isolated' };
  const by: RuleRef[] = [];
  for (const grant of side.grants) {
    if (!matches(grant, peer, protocol, port)) continue;
    if (!by.some((r) => r.policy === grant.policy && r.rule === grant.rule)) {
      by.push({ policy: grant.policy, rule: grant.rule });
    }
  }
  if (by.length > 0) return { result: 'allow', reason: 'rules', by };
  return { result: 'deny', reason: 'no-rule-allows', isolatedBy: [...side.policies] };
}

function sameAddress(text: string, address: IpAddress): boolean {
  const parsed = parseIp(text);
  return parsed !== undefined && ipEqual(parsed, address);
}

function nodeHas(model: PolicyModel, nodeName: string, address: IpAddress): boolean {
  return (model.nodes.get(nodeName)?.ips ?? []).some((ip) => sameAddress(ip, address));
}

/** Whether `from` may open a connection to `to` on `protocol`/`port`, and why. */
export function decide(
  model: PolicyModel,
  from: Endpoint,
  to: Endpoint,
  protocol: Protocol,
  port: number,
): Decision {
  const source = resolve(model, from);
  const destination = resolve(model, to);
  let egress: SideDecision;
  let ingress: SideDecision;
  if (!source || !destination) {
    egress = ingress = { result: 'deny', reason: 'unknown-endpoint' };
  } else {
    // Use one address family for both ends: the first the two share.
    const src = source.addresses.find((a) =>
      destination.addresses.some((d) => d.family === a.family),
    );
    const dst = destination.addresses.find((d) => d.family === src?.family);
    if (!src || !dst) {
      egress = ingress = { result: 'deny', reason: 'unknown-endpoint' };
    } else if (source.pod && source.pod === destination.pod) {
      egress = ingress = { result: 'allow', reason: 'self' };
    } else {
      egress = !source.pod
        ? { result: 'allow', reason: 'not-a-pod' }
        : nodeHas(model, source.pod.pod.node, dst)
          ? { result: 'allow', reason: 'node' }
          : judge(source.pod.egress, dst, protocol, port);
      ingress = !destination.pod
        ? { result: 'allow', reason: 'not-a-pod' }
        : nodeHas(model, destination.pod.pod.node, src)
          ? { result: 'allow', reason: 'node' }
          : judge(destination.pod.ingress, src, protocol, port);
    }
  }
  const verdict = egress.result === 'allow' && ingress.result === 'allow' ? 'allow' : 'deny';
  const layer: NetworkPolicyDecision = { layer: 'networkpolicy', verdict, egress, ingress };
  return { ...layer, layers: [layer] };
}
