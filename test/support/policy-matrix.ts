/**
 * The NetworkPolicy truth table's expectations, pure: upstream's Reachability
 * (kubernetes test/e2e/network/netpol/reachability.go: a from × to grid of
 * pods, all true or all false to start, then `expectPeer`, `expectAllIngress`,
 * `expectAllEgress`), a reference evaluator of NetworkPolicy written here from
 * the Kubernetes documentation alone (no code of src/policy/), and the grid
 * upstream prints when a probe disagrees: `.` connected, `X` blocked.
 *
 * The evaluator gives every port and protocol's expected grid; a case's
 * hand-written Reachability (the truth table as upstream writes it) is held
 * against it, so a mistake in either shows before a packet is sent.
 */

export type Protocol = 'TCP' | 'UDP';

export interface ProbePort {
  port: number;
  protocol: Protocol;
}

/**
 * What every pod serves and every matrix probes, as upstream's model does
 * (ports 80 and 81; TCP, UDP and SCTP). No SCTP here: this kernel has no
 * CONFIG_IP_SCTP, so no SCTP socket can be opened to serve or probe.
 */
export const probePorts: readonly ProbePort[] = [
  { port: 80, protocol: 'TCP' },
  { port: 81, protocol: 'TCP' },
  { port: 80, protocol: 'UDP' },
  { port: 81, protocol: 'UDP' },
];

/** `tcp/80`. */
export function portLabel(port: ProbePort): string {
  return `${port.protocol.toLowerCase()}/${port.port}`;
}

/** A container port as the pod declares it (names for named-port rules). */
export interface ContainerPort {
  name: string;
  containerPort: number;
  protocol: Protocol;
}

/** Upstream's port names: serve-80-tcp, serve-81-udp, ... */
export function servedPorts(): ContainerPort[] {
  return probePorts.map(({ port, protocol }) => ({
    name: `serve-${port}-${protocol.toLowerCase()}`,
    containerPort: port,
    protocol,
  }));
}

export interface WorldPod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ip: string;
  node: string;
  ports: ContainerPort[];
}

export interface WorldNamespace {
  name: string;
  labels: Record<string, string>;
}

/** The pods and namespaces the policies are judged against, as the test made them. */
export interface World {
  namespaces: WorldNamespace[];
  pods: WorldPod[];
}

/** `x/a`. */
export function podKey(pod: Pick<WorldPod, 'namespace' | 'name'>): string {
  return `${pod.namespace}/${pod.name}`;
}

// NetworkPolicy as the test writes it, with upstream's field names.

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

export interface NetworkPolicyPort {
  protocol?: Protocol;
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicy {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata: { name: string; namespace: string };
  spec: {
    podSelector: LabelSelector;
    policyTypes?: ('Ingress' | 'Egress')[];
    ingress?: { from?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
    egress?: { to?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
  };
}

// The reference evaluator. Each rule is one sentence of the documentation
// (kubernetes.io/docs/concepts/services-networking/network-policies/ and the
// NetworkPolicy API reference), quoted where it is applied.

/**
 * "matchLabels ... The requirements are ANDed." Operators as
 * k8s.io/apimachinery labels.Selector: NotIn also matches an object
 * without the key (`!has(key) || value not in values`).
 */
export function selects(selector: LabelSelector, labels: Record<string, string>): boolean {
  const matchLabels = Object.entries(selector.matchLabels ?? {});
  if (!matchLabels.every(([key, value]) => labels[key] === value)) return false;
  return (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
    const value = labels[key];
    switch (operator) {
      case 'In':
        return value !== undefined && values.includes(value);
      case 'NotIn':
        return value === undefined || !values.includes(value);
      case 'Exists':
        return value !== undefined;
      case 'DoesNotExist':
        return value === undefined;
    }
  });
}

/**
 * "If no policyTypes are specified on a NetworkPolicy then by default
 * Ingress will always be set and Egress will be set if the NetworkPolicy
 * has any egress rules."
 */
function policyTypes(policy: NetworkPolicy): ('Ingress' | 'Egress')[] {
  if (policy.spec.policyTypes !== undefined) return policy.spec.policyTypes;
  return (policy.spec.egress ?? []).length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
}

function ipv4(text: string): number {
  return text.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base = '', bits = '32'] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipv4(ip) / size) === Math.floor(ipv4(base) / size);
}

/**
 * A peer, from the API reference: "If namespaceSelector is also set, then
 * the NetworkPolicyPeer as a whole selects the pods matching podSelector in
 * the Namespaces selected by NamespaceSelector. Otherwise it selects the
 * pods matching podSelector in the policy's own namespace." An ipBlock:
 * "The except entry describes CIDRs that should not be included within
 * this rule."
 */
function peerSelects(
  world: World,
  peer: NetworkPolicyPeer,
  policyNamespace: string,
  pod: WorldPod,
): boolean {
  if (peer.ipBlock) {
    const { cidr, except = [] } = peer.ipBlock;
    return inCidr(pod.ip, cidr) && !except.some((hole) => inCidr(pod.ip, hole));
  }
  const namespaceLabels = world.namespaces.find((ns) => ns.name === pod.namespace)?.labels ?? {};
  const namespaceMatches = peer.namespaceSelector
    ? selects(peer.namespaceSelector, namespaceLabels)
    : pod.namespace === policyNamespace;
  return namespaceMatches && (!peer.podSelector || selects(peer.podSelector, pod.labels));
}

/**
 * "If this field is empty or missing, this rule matches all sources"
 * (destinations for `to`); "Items in this list are combined using a
 * logical OR operation."
 */
function peersSelect(
  world: World,
  peers: NetworkPolicyPeer[] | undefined,
  policyNamespace: string,
  pod: WorldPod,
): boolean {
  if (peers === undefined || peers.length === 0) return true;
  return peers.some((peer) => peerSelects(world, peer, policyNamespace, pod));
}

/**
 * Ports: "If this field is empty or missing, this rule matches all ports";
 * each item is ORed. An item: "protocol ... If not specified, this field
 * defaults to TCP"; "port ... This can either be a numerical or named port
 * on a pod. If this field is not provided, this matches all port names and
 * numbers. If present, only traffic on the specified protocol AND port will
 * be matched"; "endPort indicates that the range of ports from port to
 * endPort if set, inclusive, should be allowed". A named port is the
 * destination pod's container port of that name (and protocol).
 */
function portsMatch(
  ports: NetworkPolicyPort[] | undefined,
  destination: WorldPod,
  probe: ProbePort,
): boolean {
  if (ports === undefined || ports.length === 0) return true;
  return ports.some(({ protocol = 'TCP', port, endPort }) => {
    if (protocol !== probe.protocol) return false;
    if (port === undefined) return true;
    if (typeof port === 'string') {
      return destination.ports.some(
        (p) => p.name === port && p.protocol === protocol && p.containerPort === probe.port,
      );
    }
    return probe.port >= port && probe.port <= (endPort ?? port);
  });
}

/**
 * Whether `from` may open a connection to `to` on `probe`:
 * - "a pod cannot block access to itself";
 * - "For a connection from a source pod to a destination pod to be allowed,
 *   both the egress policy on the source pod and the ingress policy on the
 *   destination pod need to allow the connection."
 * - "A pod is isolated for ingress if there is any NetworkPolicy that both
 *   selects the pod and has "Ingress" in its policyTypes" (egress alike);
 *   "When a pod is isolated for ingress, the only allowed connections into
 *   the pod are those ... allowed by the ingress list of some NetworkPolicy
 *   that applies to the pod for ingress" (egress alike); each rule "allows
 *   traffic which matches both the from and ports sections".
 */
export function allows(
  world: World,
  policies: readonly NetworkPolicy[],
  from: WorldPod,
  to: WorldPod,
  probe: ProbePort,
): boolean {
  if (from === to) return true;
  const applying = (pod: WorldPod, type: 'Ingress' | 'Egress'): NetworkPolicy[] =>
    policies.filter(
      (policy) =>
        policy.metadata.namespace === pod.namespace &&
        selects(policy.spec.podSelector, pod.labels) &&
        policyTypes(policy).includes(type),
    );
  const egress = applying(from, 'Egress');
  const egressAllows =
    egress.length === 0 ||
    egress.some((policy) =>
      (policy.spec.egress ?? []).some(
        (rule) =>
          peersSelect(world, rule.to, policy.metadata.namespace, to) &&
          portsMatch(rule.ports, to, probe),
      ),
    );
  const ingress = applying(to, 'Ingress');
  const ingressAllows =
    ingress.length === 0 ||
    ingress.some((policy) =>
      (policy.spec.ingress ?? []).some(
        (rule) =>
          peersSelect(world, rule.from, policy.metadata.namespace, from) &&
          portsMatch(rule.ports, to, probe),
      ),
    );
  return egressAllows && ingressAllows;
}

// Reachability, upstream's shape.

/** `x/a`, `x/*` (a namespace), `*\/a` (a name everywhere), `*\/*`, or several. */
export type PodPattern = string | readonly string[];

function matches(pattern: PodPattern, key: string): boolean {
  if (typeof pattern !== 'string') return pattern.some((one) => matches(one, key));
  const [namespace = '', name = ''] = pattern.split('/');
  const [keyNamespace = '', keyName = ''] = key.split('/');
  return (namespace === '*' || namespace === keyNamespace) && (name === '*' || name === keyName);
}

/** Who may connect to whom, over a fixed list of pods (`x/a` ...). */
export class Reachability {
  readonly #connected = new Map<string, boolean>();

  constructor(
    readonly pods: readonly string[],
    connected: boolean,
  ) {
    for (const from of pods) for (const to of pods) this.#connected.set(`${from}>${to}`, connected);
  }

  /** The expected grid of `probe` by the reference evaluator. */
  static evaluate(
    world: World,
    policies: readonly NetworkPolicy[],
    probe: ProbePort,
  ): Reachability {
    const reachability = new Reachability(world.pods.map(podKey), true);
    for (const from of world.pods) {
      for (const to of world.pods) {
        reachability.expect(podKey(from), podKey(to), allows(world, policies, from, to, probe));
      }
    }
    return reachability;
  }

  get(from: string, to: string): boolean {
    const value = this.#connected.get(`${from}>${to}`);
    if (value === undefined) throw new Error(`Reachability has no pair ${from} → ${to}`);
    return value;
  }

  expect(from: string, to: string, connected: boolean): this {
    this.get(from, to);
    this.#connected.set(`${from}>${to}`, connected);
    return this;
  }

  /** Every pair from a pod matching `from` to one matching `to`. */
  expectPeer(from: PodPattern, to: PodPattern, connected: boolean): this {
    for (const f of this.pods.filter((key) => matches(from, key))) {
      for (const t of this.pods.filter((key) => matches(to, key))) this.expect(f, t, connected);
    }
    return this;
  }

  /** Everything into the pods matching `to`. */
  expectAllIngress(to: PodPattern, connected: boolean): this {
    return this.expectPeer('*/*', to, connected);
  }

  /** Everything out of the pods matching `from`. */
  expectAllEgress(from: PodPattern, connected: boolean): this {
    return this.expectPeer(from, '*/*', connected);
  }

  /**
   * Every pod reaches itself: "a pod cannot block access to itself". Call
   * it last, as upstream's AllowLoopback.
   */
  allowLoopback(): this {
    for (const pod of this.pods) this.expect(pod, pod, true);
    return this;
  }

  /** The pairs where `other` says otherwise, `from → to`. */
  differences(other: Reachability): { from: string; to: string }[] {
    const found: { from: string; to: string }[] = [];
    for (const from of this.pods) {
      for (const to of this.pods) {
        if (this.get(from, to) !== other.get(from, to)) found.push({ from, to });
      }
    }
    return found;
  }

  /** Upstream's grid: a row per source, a column per destination, `.` connected, `X` blocked. */
  grid(
    cell: (from: string, to: string) => string = (f, t) => (this.get(f, t) ? '.' : 'X'),
  ): string[] {
    const width = Math.max(...this.pods.map((pod) => pod.length)) + 1;
    const header = ['from\\to'.padEnd(width + 4), ...this.pods.map((p) => p.padEnd(width))].join(
      '',
    );
    const rows = this.pods.map((from) =>
      [from.padEnd(width + 4), ...this.pods.map((to) => cell(from, to).padEnd(width))].join(''),
    );
    return [header, ...rows];
  }
}

/**
 * Expected, observed and the comparison (`X` where they differ) side by
 * side, as upstream prints a failed probe round.
 */
export function renderComparison(
  title: string,
  expected: Reachability,
  observed: Reachability,
): string {
  const grids = [
    ['expected', expected.grid()],
    ['observed', observed.grid()],
    [
      'comparison',
      expected.grid((f, t) => (expected.get(f, t) === observed.get(f, t) ? '.' : 'X')),
    ],
  ] as const;
  const width = Math.max(...grids.flatMap(([, lines]) => lines.map((line) => line.length))) + 3;
  const lines = [grids.map(([name]) => name.padEnd(width)).join('')];
  for (let i = 0; i < grids[0][1].length; i++) {
    lines.push(grids.map(([, rows]) => (rows[i] ?? '').padEnd(width)).join(''));
  }
  return [title, ...lines.map((line) => line.trimEnd())].join('\n');
}
