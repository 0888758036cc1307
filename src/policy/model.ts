/**
 * The NetworkPolicy model: from policies, pods, namespaces and nodes, which
 * pods are isolated in which direction and exactly which peer . protocol .
 * port combinations each policy rule allows them. The nftables compiler and
 * `strata explain` (decide.ts) both read this model, so what the kernel
 * enforces and what strata explains cannot drift apart.
 *
 * Semantics follow networking.k8s.io/v1 (the NetworkPolicy API reference and
 * the "Network Policies" concepts page):
 * - a policy selects pods of its own namespace with spec.podSelector ({} = all);
 * - a pod is isolated for a direction when any policy selecting it has that
 *   policyType; policies are additive (the union of their rules);
 * - in one peer, podSelector and namespaceSelector are ANDed; separate peers
 *   are ORed; namespaceSelector alone means every pod of matching namespaces;
 *   podSelector alone means pods of the policy's namespace;
 * - an ipBlock applies to any address (pod IPs included) minus its excepts;
 * - a rule without from/to allows every peer; without ports every port of
 *   every protocol; a port without a number every port of its protocol;
 * - a named port is resolved against the destination pod's container ports.
 */
import {
  type LabelSelector,
  labelSelectorFromSpec,
  matchesLabels,
} from '../apiserver/selectors.js';
import {
  type IpPrefix,
  defaultRoute,
  familyBits,
  parseIp,
  parsePrefix,
  prefixContains,
} from '../netaddr/ip.js';
import { subtractPrefixes } from './ranges.js';
import type {
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  PolicyNamespace,
  PolicyNode,
  PolicyPod,
  PolicyType,
  Protocol,
} from './types.js';

/** Which rule of which policy: `policy` is `namespace/name`, `rule` the index in spec.ingress or spec.egress. */
export interface RuleRef {
  policy: string;
  rule: number;
}

/** A protocol and a port range: `any` is every IP protocol (a rule without ports). */
export interface PortSpan {
  protocol: Protocol | 'any';
  ports: readonly [number, number];
}

/**
 * What one rule allows one pod: every peer in `peers` on every port span in
 * `ports`. Grants are shared between the pods a rule applies to alike, and
 * `id` is stable across model builds (direction, policy, rule and how its
 * ports resolved), so the compiler can share kernel sets between pods with
 * the same grants and tell what changed from one build to the next.
 */
export interface Grant extends RuleRef {
  id: string;
  /** CIDRs: pod IPs as /32 or /128, or the pieces of an ipBlock minus its excepts. */
  peers: readonly IpPrefix[];
  ports: readonly PortSpan[];
}

export interface DirectionPolicy {
  isolated: boolean;
  /** The policies that select the pod with this policyType (`namespace/name`). */
  policies: string[];
  grants: Grant[];
}

export interface PodPolicy {
  /** `namespace/name`. */
  key: string;
  pod: PolicyPod;
  ingress: DirectionPolicy;
  egress: DirectionPolicy;
}

export interface PolicyModel {
  pods: Map<string, PodPolicy>;
  nodes: Map<string, PolicyNode>;
  /** Per policy (`namespace/name`), the pods it selects: what `get networkpolicies -o wide` shows. */
  selected: Map<string, string[]>;
}

export interface PolicyInput {
  policies: readonly NetworkPolicy[];
  pods: readonly PolicyPod[];
  namespaces: readonly PolicyNamespace[];
  nodes: readonly PolicyNode[];
}

export const protocolNumbers: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };

export function podKey(pod: Pick<PolicyPod, 'namespace' | 'name'>): string {
  return `${pod.namespace}/${pod.name}`;
}

export function policyKey(policy: NetworkPolicy): string {
  return `${policy.metadata.namespace ?? 'default'}/${policy.metadata.name ?? ''}`;
}

/**
 * spec.policyTypes, defaulted as SetDefaults_NetworkPolicy does when the API
 * server has not already: Ingress always, Egress when there are egress rules.
 */
export function effectivePolicyTypes(policy: NetworkPolicy): PolicyType[] {
  const given = policy.spec.policyTypes;
  if (given && given.length > 0) return given;
  return (policy.spec.egress ?? []).length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
}

/** A selector that does not parse matches nothing (the API server rejects it anyway). */
function compileSelector(spec: NetworkPolicyPeer['podSelector']): LabelSelector | undefined {
  if (!spec) return undefined;
  try {
    return labelSelectorFromSpec(spec);
  } catch {
    return undefined;
  }
}

const everything: IpPrefix[] = [4, 6].map((f) => parsePrefix(defaultRoute(f as 4 | 6)) as IpPrefix);

function hostPrefix(ip: string): IpPrefix | undefined {
  const address = parseIp(ip);
  return address ? { address, length: familyBits(address.family) } : undefined;
}

class ModelBuilder {
  private readonly podsByNamespace = new Map<string, PolicyPod[]>();
  private readonly namespaceLabels = new Map<string, Record<string, string>>();
  private readonly podPrefixes = new Map<PolicyPod, IpPrefix[]>();
  private readonly peerCache = new Map<string, IpPrefix[]>();

  constructor(private readonly input: PolicyInput) {
    for (const ns of input.namespaces) {
      // The API server always sets kubernetes.io/metadata.name (NamespaceDefaultLabelName).
      this.namespaceLabels.set(ns.name, { 'kubernetes.io/metadata.name': ns.name, ...ns.labels });
    }
    for (const pod of input.pods) {
      const list = this.podsByNamespace.get(pod.namespace) ?? [];
      list.push(pod);
      this.podsByNamespace.set(pod.namespace, list);
      this.podPrefixes.set(
        pod,
        pod.ips.flatMap((ip) => hostPrefix(ip) ?? []),
      );
      if (!this.namespaceLabels.has(pod.namespace)) {
        this.namespaceLabels.set(pod.namespace, { 'kubernetes.io/metadata.name': pod.namespace });
      }
    }
  }

  /** The addresses one peer stands for, seen from a policy in `namespace`; cached per selector. */
  peerPrefixes(peer: NetworkPolicyPeer, namespace: string): IpPrefix[] {
    const key = `${namespace}\0${JSON.stringify(peer)}`;
    let prefixes = this.peerCache.get(key);
    if (!prefixes) {
      prefixes = this.computePeer(peer, namespace);
      this.peerCache.set(key, prefixes);
    }
    return prefixes;
  }

  private computePeer(peer: NetworkPolicyPeer, namespace: string): IpPrefix[] {
    if (peer.ipBlock) {
      const cidr = parsePrefix(peer.ipBlock.cidr);
      if (!cidr) return [];
      const except = (peer.ipBlock.except ?? []).flatMap((e) => parsePrefix(e) ?? []);
      return subtractPrefixes(cidr, except);
    }
    if (!peer.podSelector && !peer.namespaceSelector) return [];
    const podSelector = peer.podSelector ? compileSelector(peer.podSelector) : [];
    if (!podSelector) return [];
    let namespaces: string[];
    if (peer.namespaceSelector) {
      const nsSelector = compileSelector(peer.namespaceSelector);
      if (!nsSelector) return [];
      namespaces = [...this.namespaceLabels]
        .filter(([, labels]) => matchesLabels(nsSelector, labels))
        .map(([name]) => name);
    } else {
      namespaces = [namespace];
    }
    const out: IpPrefix[] = [];
    for (const ns of namespaces) {
      for (const pod of this.podsByNamespace.get(ns) ?? []) {
        if (matchesLabels(podSelector, pod.labels)) out.push(...(this.podPrefixes.get(pod) ?? []));
      }
    }
    return out;
  }

  /** The peers of a rule: every address when it names none. */
  rulePeers(peers: readonly NetworkPolicyPeer[] | undefined, namespace: string): IpPrefix[] {
    if (!peers || peers.length === 0) return everything;
    const out = peers.flatMap((p) => this.peerPrefixes(p, namespace));
    return peers.length === 1 ? out : dedupePrefixes(out);
  }

  /** Port ranges a policy port allows on `pod`'s container ports; [] for an unknown name. */
  static resolvePort(port: NetworkPolicyPort, pod: PolicyPod | undefined): [number, number][] {
    const protocol = port.protocol ?? 'TCP';
    if (port.port === undefined) return [[0, 65535]];
    if (typeof port.port === 'number') return [[port.port, port.endPort ?? port.port]];
    const name = port.port;
    return (pod?.containerPorts ?? [])
      .filter((c) => c.name === name && (c.protocol ?? 'TCP') === protocol)
      .map((c) => [c.port, c.port]);
  }

  /** The port spans of a rule's ports on `destination`; a rule without ports allows all. */
  static portSpans(
    ports: readonly NetworkPolicyPort[] | undefined,
    destination: PolicyPod | undefined,
  ): PortSpan[] {
    if (!ports || ports.length === 0) return [{ protocol: 'any', ports: [0, 65535] }];
    return ports.flatMap((port) =>
      ModelBuilder.resolvePort(port, destination).map((range) => ({
        protocol: port.protocol ?? 'TCP',
        ports: range,
      })),
    );
  }

  build(): PolicyModel {
    const pods = new Map<string, PodPolicy>();
    for (const pod of this.input.pods) {
      const empty = (): DirectionPolicy => ({ isolated: false, policies: [], grants: [] });
      pods.set(podKey(pod), { key: podKey(pod), pod, ingress: empty(), egress: empty() });
    }
    const selected = new Map<string, string[]>();
    for (const policy of this.input.policies) {
      const key = policyKey(policy);
      const namespace = policy.metadata.namespace ?? 'default';
      const selector = compileSelector(policy.spec.podSelector);
      const targets = selector
        ? (this.podsByNamespace.get(namespace) ?? []).filter((p) =>
            matchesLabels(selector, p.labels),
          )
        : [];
      selected.set(key, targets.map(podKey));
      if (targets.length === 0) continue;
      const types = effectivePolicyTypes(policy);
      if (types.includes('Ingress')) this.addIngress(policy, key, namespace, targets, pods);
      if (types.includes('Egress')) this.addEgress(policy, key, namespace, targets, pods);
    }
    return { pods, nodes: new Map(this.input.nodes.map((n) => [n.name, n])), selected };
  }

  private addIngress(
    policy: NetworkPolicy,
    key: string,
    namespace: string,
    targets: readonly PolicyPod[],
    pods: Map<string, PodPolicy>,
  ): void {
    const rules = (policy.spec.ingress ?? []).map((rule) => ({
      peers: this.rulePeers(rule.from, namespace),
      ports: rule.ports,
      // Named ports resolve per target pod: pods that resolve alike share one grant.
      grants: new Map<string, Grant>(),
    }));
    for (const target of targets) {
      const side = pods.get(podKey(target))?.ingress;
      if (!side) continue;
      side.isolated = true;
      side.policies.push(key);
      rules.forEach((rule, i) => {
        const ports = ModelBuilder.portSpans(rule.ports, target);
        if (ports.length === 0 || rule.peers.length === 0) return;
        const portsKey = spansKey(ports);
        let grant = rule.grants.get(portsKey);
        if (!grant) {
          grant = {
            policy: key,
            rule: i,
            id: `in|${key}|${i}|${portsKey}`,
            peers: rule.peers,
            ports,
          };
          rule.grants.set(portsKey, grant);
        }
        side.grants.push(grant);
      });
    }
  }

  private addEgress(
    policy: NetworkPolicy,
    key: string,
    namespace: string,
    targets: readonly PolicyPod[],
    pods: Map<string, PodPolicy>,
  ): void {
    // Computed once per policy: egress grants do not depend on the selected pod.
    const grants: Grant[] = [];
    (policy.spec.egress ?? []).forEach((rule, i) => {
      const peers = this.rulePeers(rule.to, namespace);
      if (peers.length === 0) return;
      const ports = rule.ports ?? [];
      const numeric = ports.filter((p) => typeof p.port !== 'string');
      if (ports.length === 0 || numeric.length > 0) {
        const spans = ModelBuilder.portSpans(ports.length === 0 ? undefined : numeric, undefined);
        grants.push({ policy: key, rule: i, id: `eg|${key}|${i}`, peers, ports: spans });
      }
      // A named port resolves per destination pod: one grant per port number it resolves to.
      ports.forEach((port, p) => {
        if (typeof port.port !== 'string') return;
        const byPort = new Map<string, { ports: PortSpan[]; peers: IpPrefix[] }>();
        // Pod peers are the pods' own prefix objects; only CIDRs need a containment test.
        const named = new Set(peers);
        const cidrs = peers.filter((p) => p.length < familyBits(p.address.family));
        for (const pod of this.input.pods) {
          const spans = ModelBuilder.portSpans([port], pod);
          if (spans.length === 0) continue;
          const inside = (this.podPrefixes.get(pod) ?? []).filter(
            (host) =>
              named.has(host) || cidrs.some((prefix) => prefixContains(prefix, host.address)),
          );
          if (inside.length === 0) continue;
          const k = spansKey(spans);
          const entry = byPort.get(k) ?? { ports: spans, peers: [] };
          entry.peers.push(...inside);
          byPort.set(k, entry);
        }
        for (const [k, entry] of byPort) {
          grants.push({
            policy: key,
            rule: i,
            id: `eg|${key}|${i}|${p}|${k}`,
            peers: entry.peers,
            ports: entry.ports,
          });
        }
      });
    });
    for (const target of targets) {
      const side = pods.get(podKey(target))?.egress;
      if (!side) continue;
      side.isolated = true;
      side.policies.push(key);
      side.grants.push(...grants);
    }
  }
}

function spansKey(spans: readonly PortSpan[]): string {
  return spans.map((s) => `${s.protocol}:${s.ports[0]}-${s.ports[1]}`).join(',');
}

/** The same prefix named by two peers (two selectors matching one pod) counted once. */
function dedupePrefixes(prefixes: readonly IpPrefix[]): IpPrefix[] {
  const seen = new Set<IpPrefix>();
  return prefixes.filter((p) => (seen.has(p) ? false : (seen.add(p), true)));
}

/** Computes the model; inputs are trusted to have passed API validation, but bad values match nothing. */
export function buildPolicyModel(input: PolicyInput): PolicyModel {
  return new ModelBuilder(input).build();
}
