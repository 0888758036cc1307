/**
 * The NetworkPolicy model compiled to the nftables state of one node, as
 * docs/policy-enforcement.md section 7 recommends, and rendered as `nft -f`
 * transactions: the whole state (start-up, reconcile) or the difference
 * between two states (every later change).
 *
 *   table inet strata_policy
 *     prerouting  filter hook prerouting priority dstnat + 10: after Service
 *                 DNAT (and a mesh's DNAT), so it judges the real pod address
 *     output      filter hook output priority filter: what the node sends;
 *                 traffic from the node's own addresses is always allowed
 *     Both accept established/related first, then dispatch through the
 *     verdict maps {ingress,egress}_pods_v{4,6}, keyed by the addresses of
 *     this node's isolated pods, to one chain per pod and direction: the
 *     pod's own traffic, its node (egress), one lookup in a
 *     `peer . l4proto . port` interval set, then counted drops.
 *
 * Pods granted exactly the same rules share one set (`g_<hash>`), named
 * after their grants' ids: a namespace's pods that carry the same labels
 * cost one set, not one each. The per-packet cost is two map lookups and
 * two set lookups on a connection's first packet, whatever the number of
 * pods or policies; replies and later packets take the conntrack fast path.
 *
 * Drops are counted per pod (`<pod chain>_denied`) and per policy that
 * isolates the pod (`n_<policy>_<dir>_denied`), and optionally sent to
 * NFLOG with the pod's name as the prefix (rate-limited).
 */
import { createHash } from 'node:crypto';
import type { IpFamily } from '../netaddr/ip.js';
import type { Grant, PodPolicy, PolicyInput, PolicyModel } from './model.js';
import { PolicyModelCache, buildPolicyModel, protocolNumbers } from './model.js';
import { dropLogPrefix } from './drop-log.js';
import { type SetElement, disjointElements, formatAddressRange, prefixRange } from './ranges.js';

export const policyTable = 'strata_policy';
const t = `inet ${policyTable}`;

export type Direction = 'ingress' | 'egress';
const directions: readonly Direction[] = ['ingress', 'egress'];
const families: readonly IpFamily[] = [4, 6];
const ipKeyword: Record<IpFamily, string> = { 4: 'ip', 6: 'ip6' };
const addrType: Record<IpFamily, string> = { 4: 'ipv4_addr', 6: 'ipv6_addr' };
const short: Record<Direction, string> = { ingress: 'in', egress: 'eg' };
const protocolNames = new Map([
  [6, 'tcp'],
  [17, 'udp'],
  [132, 'sctp'],
]);
/** Elements per `add element` command: keeps single lines at a reasonable size. */
const chunk = 1000;

/** The base chains and their hooks; everything else is reached from them. */
const hookChains: Record<string, string> = {
  prerouting: 'type filter hook prerouting priority dstnat + 10; policy accept;',
  output: 'type filter hook output priority filter; policy accept;',
};

export interface CompileOptions {
  /**
   * NFLOG group that drops are logged to (rate-limited), for pods of the
   * namespaces the model marks as logged; no logging when absent.
   */
  logGroup?: number;
}

/** A node's policy objects as nft holds them; the unit both renderers work on. */
export interface PolicyState {
  /** Interval sets: name → their elements, as nft text. */
  sets: Map<string, { family: IpFamily; elements: ReadonlySet<string> }>;
  counters: Set<string>;
  /** Every chain, base chains included: name → its rules. */
  chains: Map<string, string[]>;
  /** Verdict maps: name → address → verdict. */
  maps: Map<string, Map<string, string>>;
}

/** The names of the objects a table holds (listed from the kernel when no state is known). */
export interface PolicyObjects {
  chains: string[];
  sets: string[];
  counters: string[];
}

/** Names are hashed on every compilation: remembered, up to a bound. */
const hashes = new Map<string, string>();

function hash(text: string, length = 10): string {
  const key = `${length}:${text}`;
  let digest = hashes.get(key);
  if (digest === undefined) {
    if (hashes.size > 50_000) hashes.clear();
    digest = createHash('sha256').update(text).digest('hex').slice(0, length);
    hashes.set(key, digest);
  }
  return digest;
}

/**
 * A stable nft identifier for a pod or policy key: readable, letters,
 * digits and `_` only, with a hash so that `a-b` and `a.b` do not collide.
 */
export function podObjectName(key: string): string {
  let name = objectNames.get(key);
  if (name === undefined) {
    if (objectNames.size > 50_000) objectNames.clear();
    name = `p_${key.replace(/[^a-zA-Z0-9]/g, '_').slice(0, 40)}_${hash(key)}`;
    objectNames.set(key, name);
  }
  return name;
}

const objectNames = new Map<string, string>();

/** The counter of packets a pod's `direction` policy dropped. */
export function podCounterName(podKey: string, direction: Direction): string {
  return `${podObjectName(podKey)}_${short[direction]}_denied`;
}

/** The counter of packets dropped at pods a policy isolates in `direction`. */
export function policyCounterName(policyKey: string, direction: Direction): string {
  return `n${podObjectName(policyKey).slice(1)}_${short[direction]}_denied`;
}

export function mapName(direction: Direction, family: IpFamily): string {
  return `${direction}_pods_v${family}`;
}

function podChain(pod: PodPolicy, direction: Direction): string {
  return `${podObjectName(pod.key)}_${short[direction]}`;
}

function toSetElements(grant: Grant, family: IpFamily): SetElement[] {
  const out: SetElement[] = [];
  for (const span of grant.ports) {
    const proto = span.protocol === 'any' ? undefined : protocolNumbers[span.protocol];
    const service = {
      protoFrom: proto ?? 0,
      protoTo: proto ?? 255,
      portFrom: span.ports[0],
      portTo: span.ports[1],
    };
    for (const prefix of grant.peers) {
      if (prefix.address.family !== family) continue;
      out.push({ address: prefixRange(prefix), service });
    }
  }
  return out;
}

function span(from: number, to: number, name?: string): string {
  if (from === to) return name ?? String(from);
  return `${from}-${to}`;
}

/** The `peer . l4proto . port` elements of some grants in one family, disjoint as the kernel needs. */
export function compileGrantElements(grants: readonly Grant[], family: IpFamily): string[] {
  return disjointElements(
    grants.flatMap((g) => toSetElements(g, family)),
    family,
  ).map(
    (e) =>
      `${formatAddressRange(e.address)} . ` +
      `${span(e.service.protoFrom, e.service.protoTo, protocolNames.get(e.service.protoFrom))} . ` +
      span(e.service.portFrom, e.service.portTo),
  );
}

function ownAddresses(pod: PodPolicy, family: IpFamily): string | undefined {
  const own = pod.pod.ips.filter((ip) => ip.includes(':') === (family === 6));
  if (own.length === 0) return undefined;
  return own.length === 1 ? (own[0] ?? '') : `{ ${own.join(', ')} }`;
}

function quote(text: string): string {
  return `"${text.replace(/["\\]/g, '')}"`;
}

/** The rules of one pod's chain; `sets` names its group's set per family, when not empty. */
function podRules(
  pod: PodPolicy,
  direction: Direction,
  sets: Partial<Record<IpFamily, string>>,
  options: CompileOptions,
  logged: boolean,
): string[] {
  const rules: string[] = [];
  const ingress = direction === 'ingress';
  const peerField = ingress ? 'saddr' : 'daddr';
  const allowed = ingress ? 'accept' : 'return';
  // Upstream: a pod cannot block traffic to or from itself.
  for (const f of families) {
    const own = ownAddresses(pod, f);
    if (own !== undefined) rules.push(`${ipKeyword[f]} ${peerField} ${own} ${allowed}`);
  }
  // Upstream: traffic between a pod and its own node is always allowed.
  if (!ingress) rules.push('fib daddr type local return');
  for (const f of families) {
    const set = sets[f];
    if (set)
      rules.push(`${ipKeyword[f]} ${peerField} . meta l4proto . th dport @${set} ${allowed}`);
  }
  for (const policy of pod[direction].policies) {
    rules.push(`counter name ${policyCounterName(policy, direction)}`);
  }
  if (options.logGroup !== undefined && logged) {
    rules.push(
      `limit rate 100/second burst 50 packets log group ${options.logGroup} prefix ${quote(dropLogPrefix(direction, pod.key))}`,
    );
  }
  rules.push(`counter name ${podCounterName(pod.key, direction)} drop`);
  return rules;
}

/**
 * Memo of group elements between compilations: a group's elements are
 * recomputed only when one of its grants changed content. Keyed by the
 * grants' ids and the identity of their peer lists (the model shares them).
 */
export class ElementCache {
  #entries = new Map<string, { grants: readonly Grant[]; elements: ReadonlySet<string> }>();
  #used = new Set<string>();

  /** The group's elements; the same Set object as last time when nothing changed. */
  elements(key: string, grants: readonly Grant[], family: IpFamily): ReadonlySet<string> {
    const cacheKey = `${key}|${family}`;
    this.#used.add(cacheKey);
    const hit = this.#entries.get(cacheKey);
    if (hit && sameGrants(hit.grants, grants)) return hit.elements;
    const elements = new Set(compileGrantElements(grants, family));
    this.#entries.set(cacheKey, { grants, elements });
    return elements;
  }

  /** Forgets groups no compilation used since the last sweep. */
  sweep(): void {
    for (const key of this.#entries.keys()) if (!this.#used.has(key)) this.#entries.delete(key);
    this.#used.clear();
  }
}

function sameGrants(a: readonly Grant[], b: readonly Grant[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((g, i) => {
    const h = b[i];
    return h !== undefined && g.id === h.id && samePeers(g, h) && samePorts(g, h);
  });
}

function samePeers(a: Grant, b: Grant): boolean {
  if (a.peers === b.peers) return true;
  if (a.peers.length !== b.peers.length) return false;
  return a.peers.every((p, i) => {
    const q = b.peers[i];
    return (
      q !== undefined &&
      p.length === q.length &&
      p.address.family === q.address.family &&
      p.address.value === q.address.value
    );
  });
}

function samePorts(a: Grant, b: Grant): boolean {
  return (
    a.ports.length === b.ports.length &&
    a.ports.every((s, i) => {
      const r = b.ports[i];
      return (
        r !== undefined &&
        r.protocol === s.protocol &&
        r.ports[0] === s.ports[0] &&
        r.ports[1] === s.ports[1]
      );
    })
  );
}

/** The objects `node` needs for `model`. */
export function compilePolicyState(
  model: PolicyModel,
  node: string,
  options: CompileOptions = {},
  cache: ElementCache = new ElementCache(),
): PolicyState {
  const state: PolicyState = {
    sets: new Map(),
    counters: new Set(),
    chains: new Map(),
    maps: new Map(),
  };
  for (const direction of directions) {
    for (const f of families) state.maps.set(mapName(direction, f), new Map());
  }
  const local = [...model.pods.values()]
    .filter((p) => p.pod.node === node && p.pod.ips.length > 0)
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const direction of directions) {
    const verb = direction === 'ingress' ? 'goto' : 'jump';
    for (const pod of local) {
      const side = pod[direction];
      if (!side.isolated) continue;
      const grants = [...side.grants].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const groupKey = grants.map((g) => g.id).join('\n');
      const group = `g_${hash(`${direction}\n${groupKey}`, 12)}_${short[direction]}`;
      const sets: Partial<Record<IpFamily, string>> = {};
      for (const f of families) {
        const name = `${group}_v${f}`;
        const existing = state.sets.get(name);
        if (existing) {
          if (existing.elements.size > 0) sets[f] = name;
          continue;
        }
        const elements = cache.elements(`${direction}\n${groupKey}`, grants, f);
        if (elements.size === 0) continue;
        state.sets.set(name, { family: f, elements });
        sets[f] = name;
      }
      const chain = podChain(pod, direction);
      const logged = model.loggedNamespaces.has(pod.pod.namespace);
      state.chains.set(chain, podRules(pod, direction, sets, options, logged));
      state.counters.add(podCounterName(pod.key, direction));
      for (const policy of side.policies) state.counters.add(policyCounterName(policy, direction));
      for (const ip of pod.pod.ips) {
        const f: IpFamily = ip.includes(':') ? 6 : 4;
        state.maps.get(mapName(direction, f))?.set(ip, `${verb} ${chain}`);
      }
    }
  }
  cache.sweep();
  // Replies and established flows first: the policy costs once per connection.
  state.chains.set('prerouting', ['ct state established,related accept', 'goto pod_policy']);
  state.chains.set('output', [
    'ct state established,related accept',
    'fib saddr type local accept',
    'goto pod_policy',
  ]);
  // Egress chains are jumped to and return when allowed, so the destination's ingress still runs.
  state.chains.set('pod_policy', [
    ...families.map((f) => `${ipKeyword[f]} saddr vmap @${mapName('egress', f)}`),
    ...families.map((f) => `${ipKeyword[f]} daddr vmap @${mapName('ingress', f)}`),
  ]);
  return state;
}

function setType(family: IpFamily): string {
  return `{ type ${addrType[family]} . inet_proto . inet_service; flags interval; }`;
}

function pushChunked(lines: string[], verb: string, target: string, items: readonly string[]) {
  for (let i = 0; i < items.length; i += chunk) {
    lines.push(`${verb} element ${t} ${target} { ${items.slice(i, i + chunk).join(', ')} }`);
  }
}

function declareChain(lines: string[], name: string): void {
  const hook = hookChains[name];
  lines.push(hook ? `add chain ${t} ${name} { ${hook} }` : `add chain ${t} ${name}`);
}

function mapElements(map: Map<string, string>): string[] {
  return [...map].map(([key, verdict]) => `${key} : ${verdict}`);
}

/**
 * The whole state as one transaction, whatever the table holds now:
 * `existing` names the objects found in the kernel, which are flushed and
 * refilled or deleted. The kernel swaps old for new at commit with no gap;
 * named counters keep their values.
 */
export function renderPolicyRuleset(state: PolicyState, existing?: PolicyObjects): string {
  const lines = [`add table ${t}`];
  for (const name of state.maps.keys()) {
    const family = name.endsWith('v6') ? 6 : 4;
    lines.push(
      `add map ${t} ${name} { type ${addrType[family]} : verdict; }`,
      `flush map ${t} ${name}`,
    );
  }
  const had = {
    chains: new Set(existing?.chains ?? []),
    sets: new Set(existing?.sets ?? []),
    counters: new Set(existing?.counters ?? []),
  };
  for (const name of state.chains.keys()) declareChain(lines, name);
  for (const name of had.chains) lines.push(`flush chain ${t} ${name}`);
  // Nothing refers to the old chains and sets any more: those not needed go.
  for (const name of had.chains)
    if (!state.chains.has(name)) lines.push(`delete chain ${t} ${name}`);
  for (const name of had.sets) if (!state.sets.has(name)) lines.push(`delete set ${t} ${name}`);
  for (const name of had.counters) {
    if (!state.counters.has(name)) lines.push(`delete counter ${t} ${name}`);
  }
  for (const [name, set] of state.sets) {
    // Deleting and declaring again costs far less than flushing a big interval set.
    if (had.sets.has(name)) lines.push(`delete set ${t} ${name}`);
    lines.push(`add set ${t} ${name} ${setType(set.family)}`);
    pushChunked(lines, 'add', name, [...set.elements]);
  }
  for (const name of state.counters) lines.push(`add counter ${t} ${name}`);
  for (const [name, rules] of state.chains) {
    for (const rule of rules) lines.push(`add rule ${t} ${name} ${rule}`);
  }
  for (const [name, map] of state.maps) pushChunked(lines, 'add', name, mapElements(map));
  return lines.join('\n') + '\n';
}

function sameRules(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((rule, i) => rule === b[i]);
}

/**
 * The transaction that moves the kernel from `old` (what was applied last)
 * to `next`, touching only what differs: set elements added and removed,
 * changed chains rewritten, map entries swapped, and objects no longer
 * needed deleted once nothing refers to them. Empty when nothing changed.
 */
export function renderPolicyChange(old: PolicyState, next: PolicyState): string {
  const lines: string[] = [];
  for (const [name, set] of next.sets) {
    const before = old.sets.get(name);
    if (!before) {
      lines.push(`add set ${t} ${name} ${setType(set.family)}`);
      pushChunked(lines, 'add', name, [...set.elements]);
      continue;
    }
    if (before.elements === set.elements) continue;
    const removed = [...before.elements].filter((e) => !set.elements.has(e));
    const added = [...set.elements].filter((e) => !before.elements.has(e));
    pushChunked(lines, 'delete', name, removed);
    pushChunked(lines, 'add', name, added);
  }
  for (const name of next.counters) {
    if (!old.counters.has(name)) lines.push(`add counter ${t} ${name}`);
  }
  for (const [name, rules] of next.chains) {
    const before = old.chains.get(name);
    if (before && sameRules(before, rules)) continue;
    if (before) lines.push(`flush chain ${t} ${name}`);
    else declareChain(lines, name);
    for (const rule of rules) lines.push(`add rule ${t} ${name} ${rule}`);
  }
  for (const [name, map] of next.maps) {
    const before = old.maps.get(name) ?? new Map<string, string>();
    const removed = [...before].filter(([key, verdict]) => map.get(key) !== verdict);
    const added = [...map].filter(([key, verdict]) => before.get(key) !== verdict);
    pushChunked(
      lines,
      'delete',
      name,
      removed.map(([key]) => key),
    );
    pushChunked(
      lines,
      'add',
      name,
      added.map(([key, verdict]) => `${key} : ${verdict}`),
    );
  }
  for (const name of old.chains.keys()) {
    if (!next.chains.has(name)) lines.push(`delete chain ${t} ${name}`);
  }
  for (const name of old.sets.keys())
    if (!next.sets.has(name)) lines.push(`delete set ${t} ${name}`);
  for (const name of old.counters) {
    if (!next.counters.has(name)) lines.push(`delete counter ${t} ${name}`);
  }
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

/** The whole ruleset for `node` in one step (tests, `strata` tooling). */
export function compilePolicyRuleset(
  model: PolicyModel,
  node: string,
  options: CompileOptions = {},
): string {
  return renderPolicyRuleset(compilePolicyState(model, node, options));
}

/**
 * One node's compiler across changes: the model rebuilt from each input,
 * set elements reused for the groups whose grants did not change.
 */
export class NodePolicyCompiler {
  readonly #cache = new ElementCache();
  readonly #models = new PolicyModelCache();

  constructor(
    readonly node: string,
    private readonly options: CompileOptions = {},
  ) {}

  compile(input: PolicyInput): PolicyState {
    return compilePolicyState(
      buildPolicyModel(input, this.#models),
      this.node,
      this.options,
      this.#cache,
    );
  }
}
