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
  /** Namespaces whose pods' drops are logged. */
  loggedNamespaces: ReadonlySet<string>;
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
  readonly namespaceLabels = new Map<string, Record<string, string>>();
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

  /** What `policy` does: the pods it selects and the grants it gives each, per direction. */
  contribution(policy: NetworkPolicy): Contribution {
    const key = policyKey(policy);
    const namespace = policy.metadata.namespace ?? 'default';
    const selector = compileSelector(policy.spec.podSelector);
    const targets = selector
      ? (this.podsByNamespace.get(namespace) ?? []).filter((p) => matchesLabels(selector, p.labels))
      : [];
    const out: Contribution = { selected: targets.map(podKey), isolations: [] };
    if (targets.length === 0) return out;
    const types = effectivePolicyTypes(policy);
    if (types.includes('Ingress')) this.addIngress(policy, key, namespace, targets, out.isolations);
    if (types.includes('Egress')) this.addEgress(policy, key, namespace, targets, out.isolations);
    return out;
  }

  build(cache?: PolicyModelCache): PolicyModel {
    const pods = new Map<string, PodPolicy>();
    for (const pod of this.input.pods) {
      const empty = (): DirectionPolicy => ({ isolated: false, policies: [], grants: [] });
      pods.set(podKey(pod), { key: podKey(pod), pod, ingress: empty(), egress: empty() });
    }
    const reuse = cache?.prepare(this.input, this.namespaceLabels);
    const selected = new Map<string, string[]>();
    for (const policy of this.input.policies) {
      const key = policyKey(policy);
      const contribution = reuse?.(policy) ?? this.contribution(policy);
      cache?.store(policy, contribution);
      selected.set(key, contribution.selected);
      for (const { pod, direction, grants } of contribution.isolations) {
        const side = pods.get(pod)?.[direction];
        if (!side) continue;
        side.isolated = true;
        side.policies.push(key);
        side.grants.push(...grants);
      }
    }
    cache?.finish();
    return {
      pods,
      nodes: new Map(this.input.nodes.map((n) => [n.name, n])),
      selected,
      loggedNamespaces: new Set(this.input.namespaces.filter((n) => n.logDrops).map((n) => n.name)),
    };
  }

  private addIngress(
    policy: NetworkPolicy,
    key: string,
    namespace: string,
    targets: readonly PolicyPod[],
    out: Isolation[],
  ): void {
    const rules = (policy.spec.ingress ?? []).map((rule) => ({
      peers: this.rulePeers(rule.from, namespace),
      ports: rule.ports,
      // Named ports resolve per target pod: pods that resolve alike share one grant.
      grants: new Map<string, Grant>(),
    }));
    for (const target of targets) {
      const grants: Grant[] = [];
      rules.forEach((rule, i) => {
        const ports = ModelBuilder.portSpans(rule.ports, target);
        if (ports.length === 0 || rule.peers.length === 0) return;
        const portsKey = spansKey(ports);
        let grant = rule.grants.get(portsKey);
        if (!grant) {
          const id = `in|${key}|${i}|${portsKey}`;
          grant = { policy: key, rule: i, id, peers: rule.peers, ports };
          rule.grants.set(portsKey, grant);
        }
        grants.push(grant);
      });
      out.push({ pod: podKey(target), direction: 'ingress', grants });
    }
  }

  private addEgress(
    policy: NetworkPolicy,
    key: string,
    namespace: string,
    targets: readonly PolicyPod[],
    out: Isolation[],
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
        const cidrs = peers.filter((q) => q.length < familyBits(q.address.family));
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
    for (const target of targets) out.push({ pod: podKey(target), direction: 'egress', grants });
  }
}

/** One policy's effect on one pod in one direction. */
interface Isolation {
  pod: string;
  direction: 'ingress' | 'egress';
  grants: Grant[];
}

/** One policy's effect on the model. */
interface Contribution {
  selected: string[];
  isolations: Isolation[];
}

interface CachedPolicy {
  text: string;
  contribution: Contribution;
  /** Selectors that decide which pods the policy depends on. */
  dependsOn: { namespace: string; targets: LabelSelector | undefined; peers: PeerMatcher[] };
  /**
   * Egress rules with named ports depend on the container ports of the pods
   * they reach: `any` when a rule reaches every address, else the ipBlocks
   * whose pods they depend on (pod selector peers are in dependsOn).
   */
  namedEgress: 'any' | IpPrefix[];
  namespaceSelectors: boolean;
}

interface PeerMatcher {
  pods: LabelSelector | undefined;
  /** Undefined: the policy's own namespace. */
  namespaces: LabelSelector | undefined;
}

/**
 * Keeps each policy's contribution between builds, so that one changed
 * policy, pod or namespace costs the policies it touches rather than all
 * of them. A policy is recomputed when its text changed, when a pod that
 * changed (before or after) is one it selects or names as a peer, or when
 * namespace labels changed and it has a namespace selector.
 */
export class PolicyModelCache {
  #pods = new Map<string, { text: string; pod: PolicyPod }>();
  #namespaces = new Map<string, string>();
  #policies = new Map<string, CachedPolicy>();
  #seen = new Set<string>();
  #changedPods: PolicyPod[] = [];
  #namespacesChanged = false;
  #namespaceLabels: ReadonlyMap<string, Record<string, string>> = new Map();

  /** Compares the input with the last build's; returns the lookup for reusable contributions. */
  prepare(
    input: PolicyInput,
    namespaceLabels: ReadonlyMap<string, Record<string, string>>,
  ): (policy: NetworkPolicy) => Contribution | undefined {
    this.#namespaceLabels = namespaceLabels;
    const pods = new Map<string, { text: string; pod: PolicyPod }>();
    this.#changedPods = [];
    for (const pod of input.pods) {
      const key = podKey(pod);
      const text = JSON.stringify([pod.labels, pod.ips, pod.containerPorts]);
      pods.set(key, { text, pod });
      const before = this.#pods.get(key);
      if (before?.text !== text) {
        this.#changedPods.push(pod);
        if (before) this.#changedPods.push(before.pod);
      }
    }
    for (const [key, before] of this.#pods) if (!pods.has(key)) this.#changedPods.push(before.pod);
    this.#pods = pods;
    const namespaces = new Map([...namespaceLabels].map(([n, l]) => [n, JSON.stringify(l)]));
    this.#namespacesChanged =
      namespaces.size !== this.#namespaces.size ||
      [...namespaces].some(([n, text]) => this.#namespaces.get(n) !== text);
    this.#namespaces = namespaces;
    this.#seen.clear();
    return (policy) => {
      const cached = this.#policies.get(policyKey(policy));
      if (!cached || cached.text !== policyText(policy) || this.#affects(cached)) return undefined;
      return cached.contribution;
    };
  }

  #affects(cached: CachedPolicy): boolean {
    if (this.#namespacesChanged && cached.namespaceSelectors) return true;
    if (this.#changedPods.length === 0) return false;
    if (cached.namedEgress === 'any') return true;
    const { namespace, targets, peers } = cached.dependsOn;
    const cidrs = cached.namedEgress;
    return this.#changedPods.some((pod) => {
      if (pod.namespace === namespace && (!targets || matchesLabels(targets, pod.labels))) {
        return true;
      }
      // Named egress ports resolve against the pods inside ipBlocks too.
      for (const ip of pod.ips) {
        const address = parseIp(ip);
        if (address && cidrs.some((c) => prefixContains(c, address))) return true;
      }
      const labels = this.#namespaceLabels.get(pod.namespace) ?? {};
      return peers.some(
        (peer) =>
          (peer.namespaces
            ? matchesLabels(peer.namespaces, labels)
            : pod.namespace === namespace) &&
          (!peer.pods || matchesLabels(peer.pods, pod.labels)),
      );
    });
  }

  store(policy: NetworkPolicy, contribution: Contribution): void {
    const key = policyKey(policy);
    this.#seen.add(key);
    const cached = this.#policies.get(key);
    if (cached?.contribution === contribution) return;
    const peers: PeerMatcher[] = [];
    let namespaceSelectors = false;
    for (const rule of [...(policy.spec.ingress ?? []), ...(policy.spec.egress ?? [])]) {
      const list = 'from' in rule ? rule.from : 'to' in rule ? rule.to : undefined;
      for (const peer of list ?? []) {
        if (peer.ipBlock || (!peer.podSelector && !peer.namespaceSelector)) continue;
        if (peer.namespaceSelector) namespaceSelectors = true;
        peers.push({
          pods: peer.podSelector ? compileSelector(peer.podSelector) : undefined,
          namespaces: peer.namespaceSelector ? compileSelector(peer.namespaceSelector) : undefined,
        });
      }
    }
    let namedEgress: CachedPolicy['namedEgress'] = [];
    for (const rule of policy.spec.egress ?? []) {
      if (!(rule.ports ?? []).some((p) => typeof p.port === 'string')) continue;
      if (namedEgress === 'any' || !rule.to || rule.to.length === 0) {
        namedEgress = 'any';
        continue;
      }
      for (const peer of rule.to) {
        const cidr = peer.ipBlock ? parsePrefix(peer.ipBlock.cidr) : undefined;
        if (cidr) namedEgress.push(cidr);
      }
    }
    this.#policies.set(key, {
      text: policyText(policy),
      contribution,
      dependsOn: {
        namespace: policy.metadata.namespace ?? 'default',
        targets: compileSelector(policy.spec.podSelector),
        peers,
      },
      namedEgress,
      namespaceSelectors,
    });
  }

  /** Forgets policies the last build did not have. */
  finish(): void {
    for (const key of this.#policies.keys()) if (!this.#seen.has(key)) this.#policies.delete(key);
  }
}

const policyTexts = new WeakMap<NetworkPolicy, string>();

/** A policy's spec as text, to tell whether it changed; objects are not mutated once built. */
function policyText(policy: NetworkPolicy): string {
  let text = policyTexts.get(policy);
  if (text === undefined) {
    text = JSON.stringify(policy.spec);
    policyTexts.set(policy, text);
  }
  return text;
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
export function buildPolicyModel(input: PolicyInput, cache?: PolicyModelCache): PolicyModel {
  return new ModelBuilder(input).build(cache);
}
