/**
 * AuthorizationPolicy at L4, as the destination's ztunnel evaluates it.
 *
 * Which policies apply (istiod, pilot/pkg/serviceregistry/kube/controller/
 * ambient: convertAuthorizationPolicy in authorization.go,
 * buildWorkloadPolicies in workloads.go; istio.io/latest/docs/ambient/usage/
 * l4-policy/):
 * - a policy with targetRef(s) is for a waypoint, "not intended for
 *   ztunnel": it is reported as not enforced (strata has no waypoints yet);
 * - without a selector, a policy in the root namespace applies to every
 *   workload, elsewhere to the workloads of its namespace;
 * - with a selector, to the workloads its matchLabels select, in its own
 *   namespace or, from the root namespace, in any. A selector without
 *   matchLabels attaches to no workload (istiod keeps only policies whose
 *   label selector is non-nil).
 *
 * The order (AuthorizationPolicy reference, istio.io/latest/docs/reference/
 * config/security/authorization-policy/): CUSTOM, then DENY, then ALLOW; no
 * ALLOW policy → allow; ALLOW policies but none matches → deny. AUDIT never
 * changes the verdict; its matches are recorded.
 *
 * CUSTOM needs an external authorizer, which strata cannot call yet. Upstream
 * ztunnel drops CUSTOM policies ("ztunnel does not support the CUSTOM
 * action"), which lets everything through; a sidecar whose provider cannot be
 * resolved gets a deny-all instead ("failed to parse CUSTOM action, will
 * generate a deny all config", pilot/pkg/security/authz/builder). strata
 * takes the sidecar's fail-closed path: a CUSTOM policy that applies denies
 * every connection, and the decision says why. ztunnel drops AUDIT policies
 * too; strata records their matches, which nothing audits yet.
 *
 * A rule is converted as istiod converts it (handleRule) and matched as
 * ztunnel matches it (src/rbac.rs Authorization::matches):
 * - its from entries, to entries and each when condition are clauses that
 *   must all hold; within a clause any entry may match; within an entry every
 *   field that is set must hold, a positive list by any value and a `not`
 *   list by none; a rule with nothing in it matches everything; a policy with
 *   no rules (absent or empty) matches nothing;
 * - principals, namespaces and when `source.principal`/`source.namespace`
 *   use Istio's string match: `*` any non-empty value, `*x` suffix, `x*`
 *   prefix, else exact; a principal is the SPIFFE ID without `spiffe://`.
 *   A plaintext connection has no principal and no namespace: positive
 *   matches on them fail, `not` matches on them hold;
 * - serviceAccounts (`ns/sa`, or `sa` in the policy's namespace) compare the
 *   identity's namespace and service account;
 * - ipBlocks compare the source address, when `destination.ip` the
 *   destination address, ports and when `destination.port` the destination
 *   port; an address without a length is a single address;
 * - when keys ztunnel understands: source.ip, source.namespace,
 *   source.principal, destination.ip, destination.port. Everything else
 *   (request.*, remote.ip, connection.sni, experimental.*) is HTTP, as are
 *   hosts, methods, paths, requestPrincipals and remoteIpBlocks and their
 *   `not` forms.
 *
 * HTTP attributes, which ztunnel cannot see:
 * - in an ALLOW policy a rule using any of them is omitted: it matches
 *   nothing, so the policy is stricter than written (an ALLOW policy whose
 *   rules are all omitted still exists, and denies everything else);
 * - in a DENY policy they are dropped from the rule. What is left is enforced
 *   and denies more than written. An entry or condition left empty matches
 *   every connection, so a DENY rule whose from or to entries are all HTTP,
 *   or with an HTTP when condition, denies on what is left: fail closed, as
 *   Istio documents ztunnel's handling of HTTP attributes. Here strata
 *   departs from ztunnel's code, which skips empty matches so that such a
 *   rule never denies anything (istio/istio#61126, acknowledged upstream as
 *   a gap; its fix changed only istiod's status message). Each such policy
 *   is named in the warnings.
 */
import {
  type IpAddress,
  type IpPrefix,
  parseIp,
  parsePrefix,
  prefixContains,
} from '../../netaddr/ip.js';
import type { SpiffeId } from '../identity/spiffe.js';
import {
  type AuthorizationAction,
  type Condition,
  type MeshAuthorizationPolicy,
  type MeshPolicyOptions,
  type Rule,
  defaultRootNamespace,
  selectsLabels,
} from './types.js';

/** The destination workload a connection is for. */
export interface AuthorizationWorkload {
  namespace: string;
  labels: Readonly<Record<string, string>>;
  serviceAccount?: string;
  /**
   * The Services of its namespace that select it. When given, only policies
   * whose targetRefs name one of them are reported as not enforced; when not,
   * every targetRefs policy of the namespace is.
   */
  services?: readonly string[];
}

/** What the destination's ztunnel knows about a connection. */
export interface MeshConnection {
  /** The source's identity from its certificate; absent for a plaintext connection. */
  sourceIdentity?: SpiffeId;
  sourceIp: string;
  destinationIp: string;
  destinationPort: number;
}

export interface PolicyRef {
  namespace: string;
  name: string;
  action: AuthorizationAction;
}

export interface RuleRef extends PolicyRef {
  /** The index in spec.rules of the rule that matched. */
  ruleIndex: number;
}

export type AuthorizationVerdict =
  | { verdict: 'allow'; reason: 'no-allow-policy' }
  | { verdict: 'allow'; reason: 'allow-rule'; decidedBy: RuleRef }
  | { verdict: 'deny'; reason: 'deny-rule'; decidedBy: RuleRef }
  | { verdict: 'deny'; reason: 'no-allow-rule-matched'; allowPolicies: PolicyRef[] }
  | { verdict: 'deny'; reason: 'custom-unsupported'; decidedBy: PolicyRef; unsupported: string };

export type AuthorizationDecision = AuthorizationVerdict & {
  /** AUDIT policies whose rules matched; they do not change the verdict. */
  audited: RuleRef[];
  /** Policies with targetRefs: a waypoint enforces them upstream, and strata has none yet. */
  notEnforced: PolicyRef[];
  /** Policies that do not act as written under ztunnel, one sentence each. */
  warnings: string[];
};

type StringMatch =
  | { type: 'exact'; value: string }
  | { type: 'prefix'; value: string }
  | { type: 'suffix'; value: string }
  | { type: 'presence' };

interface ServiceAccountMatch {
  namespace: string;
  serviceAccount: string;
}

/** One entry of a clause: istio's security.Match (workloadapi), every list optional. */
interface Match {
  namespaces: StringMatch[];
  notNamespaces: StringMatch[];
  serviceAccounts: ServiceAccountMatch[];
  notServiceAccounts: ServiceAccountMatch[];
  principals: StringMatch[];
  notPrincipals: StringMatch[];
  sourceIps: IpPrefix[];
  notSourceIps: IpPrefix[];
  destinationIps: IpPrefix[];
  notDestinationIps: IpPrefix[];
  destinationPorts: number[];
  notDestinationPorts: number[];
}

/** Entries of which any may match; an empty clause always holds. */
type Clause = Match[];

interface ConvertedRule {
  index: number;
  /** Undefined when the rule was omitted (an ALLOW or AUDIT rule with HTTP attributes). */
  clauses: Clause[] | undefined;
  /** The HTTP attributes found in the rule. */
  http: string[];
}

const l4WhenKeys = new Set([
  'source.ip',
  'source.namespace',
  'source.principal',
  'destination.ip',
  'destination.port',
]);
const httpSourceFields = [
  'remoteIpBlocks',
  'notRemoteIpBlocks',
  'requestPrincipals',
  'notRequestPrincipals',
] as const;
const httpOperationFields = [
  'hosts',
  'notHosts',
  'methods',
  'notMethods',
  'paths',
  'notPaths',
] as const;

function emptyMatch(): Match {
  return {
    namespaces: [],
    notNamespaces: [],
    serviceAccounts: [],
    notServiceAccounts: [],
    principals: [],
    notPrincipals: [],
    sourceIps: [],
    notSourceIps: [],
    destinationIps: [],
    notDestinationIps: [],
    destinationPorts: [],
    notDestinationPorts: [],
  };
}

function isEmpty(match: Match): boolean {
  return Object.values(match).every((list: unknown[]) => list.length === 0);
}

/** istiod stringToMatch. */
function stringMatches(values: readonly string[] = []): StringMatch[] {
  return values.map((v): StringMatch => {
    if (v === '*') return { type: 'presence' };
    if (v.startsWith('*')) return { type: 'suffix', value: v.slice(1) };
    if (v.endsWith('*')) return { type: 'prefix', value: v.slice(0, -1) };
    return { type: 'exact', value: v };
  });
}

/** istiod stringToPort: values that are not ports are dropped. */
function ports(values: readonly string[] = []): number[] {
  return values.flatMap((v) => (/^\d+$/.test(v) && Number(v) <= 65535 ? [Number(v)] : []));
}

/** istiod stringToIP: a CIDR, or an address as a full-length prefix; others are dropped. */
function prefixes(values: readonly string[] = []): IpPrefix[] {
  return values.flatMap((v) => {
    if (v.includes('/')) return parsePrefix(v) ?? [];
    const address = parseIp(v);
    return address ? [{ address, length: address.family === 4 ? 32 : 128 }] : [];
  });
}

/** istiod stringToServiceAccountMatch: `ns/sa`, or `sa` in the policy's namespace. */
function serviceAccounts(values: readonly string[] = [], namespace: string): ServiceAccountMatch[] {
  return values.map((v) => {
    const slash = v.indexOf('/');
    return slash < 0
      ? { namespace, serviceAccount: v }
      : { namespace: v.slice(0, slash), serviceAccount: v.slice(slash + 1) };
  });
}

/** istiod whenMatch: one condition as an entry; an HTTP key leaves it empty. */
function conditionMatch(condition: Condition): Match {
  const values = condition.values ?? [];
  const notValues = condition.notValues ?? [];
  const m = emptyMatch();
  switch (condition.key) {
    case 'source.ip':
      m.sourceIps = prefixes(values);
      m.notSourceIps = prefixes(notValues);
      break;
    case 'source.namespace':
      m.namespaces = stringMatches(values);
      m.notNamespaces = stringMatches(notValues);
      break;
    case 'source.principal':
      m.principals = stringMatches(values);
      m.notPrincipals = stringMatches(notValues);
      break;
    case 'destination.ip':
      m.destinationIps = prefixes(values);
      m.notDestinationIps = prefixes(notValues);
      break;
    case 'destination.port':
      m.destinationPorts = ports(values);
      m.notDestinationPorts = ports(notValues);
      break;
  }
  return m;
}

/** istiod handleRule: a rule as ztunnel receives it. */
function convertRule(
  rule: Rule,
  index: number,
  action: AuthorizationAction,
  policyNamespace: string,
): ConvertedRule {
  const http = new Set<string>();
  const clauses: Clause[] = [];
  if (rule.to !== undefined) {
    clauses.push(
      rule.to.map(({ operation }) => {
        for (const field of httpOperationFields) {
          if ((operation[field] ?? []).length > 0) http.add(field);
        }
        return {
          ...emptyMatch(),
          destinationPorts: ports(operation.ports),
          notDestinationPorts: ports(operation.notPorts),
        };
      }),
    );
  }
  if (rule.from !== undefined) {
    clauses.push(
      rule.from.map(({ source }) => {
        for (const field of httpSourceFields) {
          if ((source[field] ?? []).length > 0) http.add(field);
        }
        return {
          ...emptyMatch(),
          sourceIps: prefixes(source.ipBlocks),
          notSourceIps: prefixes(source.notIpBlocks),
          namespaces: stringMatches(source.namespaces),
          notNamespaces: stringMatches(source.notNamespaces),
          serviceAccounts: serviceAccounts(source.serviceAccounts, policyNamespace),
          notServiceAccounts: serviceAccounts(source.notServiceAccounts, policyNamespace),
          principals: stringMatches(source.principals),
          notPrincipals: stringMatches(source.notPrincipals),
        };
      }),
    );
  }
  for (const condition of rule.when ?? []) {
    if (!l4WhenKeys.has(condition.key)) http.add(condition.key);
    clauses.push([conditionMatch(condition)]);
  }
  const omitted = action !== 'DENY' && http.size > 0;
  return { index, clauses: omitted ? undefined : clauses, http: [...http].sort() };
}

/** What ztunnel knows of the source, derived once per connection. */
interface Peer {
  /** The SPIFFE ID without `spiffe://`, or undefined for plaintext. */
  principal: string | undefined;
  /** The identity's namespace, or '' for plaintext (ztunnel's unwrap_or_default). */
  namespace: string;
  identity: SpiffeId | undefined;
  sourceIp: IpAddress | undefined;
  destinationIp: IpAddress | undefined;
  destinationPort: number;
}

function stringMatch(m: StringMatch, value: string): boolean {
  switch (m.type) {
    case 'exact':
      return value === m.value;
    case 'prefix':
      return value.startsWith(m.value);
    case 'suffix':
      return value.endsWith(m.value);
    case 'presence':
      return value !== '';
  }
}

/** ztunnel matches_internal: any positive value (when listed) and no negative one. */
function holds<T>(positive: readonly T[], negative: readonly T[], test: (v: T) => boolean) {
  return (
    (positive.length === 0 || positive.some(test)) &&
    (negative.length === 0 || !negative.some(test))
  );
}

function contains(prefix: IpPrefix, address: IpAddress | undefined): boolean {
  return address !== undefined && prefixContains(prefix, address);
}

function matchHolds(m: Match, peer: Peer): boolean {
  return (
    holds(m.destinationIps, m.notDestinationIps, (p) => contains(p, peer.destinationIp)) &&
    holds(m.sourceIps, m.notSourceIps, (p) => contains(p, peer.sourceIp)) &&
    holds(m.destinationPorts, m.notDestinationPorts, (p) => p === peer.destinationPort) &&
    holds(
      m.serviceAccounts,
      m.notServiceAccounts,
      (sa) =>
        peer.identity !== undefined &&
        peer.identity.namespace === sa.namespace &&
        peer.identity.serviceAccount === sa.serviceAccount,
    ) &&
    holds(
      m.principals,
      m.notPrincipals,
      (sm) => peer.principal !== undefined && stringMatch(sm, peer.principal),
    ) &&
    holds(m.namespaces, m.notNamespaces, (sm) => stringMatch(sm, peer.namespace))
  );
}

/**
 * Whether every clause of the rule holds. `emptyMatches`: an entry left
 * empty by dropped HTTP attributes matches (DENY: fail closed) rather than
 * never matching (ALLOW rules with HTTP attributes are omitted beforehand).
 */
function ruleHolds(clauses: readonly Clause[], peer: Peer, emptyMatches: boolean): boolean {
  return clauses.every(
    (clause) =>
      clause.length === 0 || clause.some((m) => (isEmpty(m) ? emptyMatches : matchHolds(m, peer))),
  );
}

/** Whether no connection can ever match: some clause has only empty entries. */
function neverHolds(clauses: readonly Clause[]): boolean {
  return clauses.some((clause) => clause.length > 0 && clause.every(isEmpty));
}

interface Applicable {
  policy: MeshAuthorizationPolicy;
  rules: ConvertedRule[];
}

function policyKey(policy: MeshAuthorizationPolicy): string {
  return `${policy.namespace}/${policy.name}`;
}

function ref(policy: MeshAuthorizationPolicy): PolicyRef {
  return { namespace: policy.namespace, name: policy.name, action: policy.action };
}

/** The first rule of `entry` that the connection matches, as ztunnel orders rules. */
function firstMatch(entry: Applicable, peer: Peer): RuleRef | undefined {
  for (const rule of entry.rules) {
    const failClosed = entry.policy.action === 'DENY';
    if (rule.clauses !== undefined && ruleHolds(rule.clauses, peer, failClosed)) {
      return { ...ref(entry.policy), ruleIndex: rule.index };
    }
  }
  return undefined;
}

function httpWarning(entry: Applicable): string | undefined {
  const affected = entry.rules.filter((r) => r.http.length > 0);
  if (affected.length === 0) return undefined;
  const found = [...new Set(affected.flatMap((r) => r.http))].sort().join(', ');
  const head = `AuthorizationPolicy ${policyKey(entry.policy)} (${entry.policy.action}) uses HTTP attributes ztunnel cannot check (found: ${found})`;
  const tail = 'HTTP rules need a waypoint, which strata does not have yet';
  const list = (rules: ConvertedRule[]) => rules.map((r) => r.index).join(', ');
  if (entry.policy.action !== 'DENY') {
    return `${head}: rule ${list(affected)} is omitted and matches nothing, which is stricter than written; ${tail}`;
  }
  const dead = affected.filter((r) => r.clauses !== undefined && neverHolds(r.clauses));
  const enforced = affected.filter((r) => !dead.includes(r));
  const parts: string[] = [];
  if (enforced.length > 0) {
    parts.push(`rule ${list(enforced)} is enforced without them and denies more than written`);
  }
  if (dead.length > 0) {
    parts.push(
      `rule ${list(dead)} has nothing left to match once they are dropped and denies every connection its other conditions allow: fail closed (ztunnel's code would never deny, istio/istio#61126)`,
    );
  }
  return `${head}: ${parts.join('; ')}; ${tail}`;
}

function isWaypointPolicyFor(
  policy: MeshAuthorizationPolicy,
  workload: AuthorizationWorkload,
): boolean {
  if (policy.namespace !== workload.namespace) return false;
  if (workload.services === undefined) return true;
  const services = workload.services;
  return policy.targetRefs.some(
    (t) => (t.group ?? '') === '' && t.kind === 'Service' && services.includes(t.name),
  );
}

function byKey(a: MeshAuthorizationPolicy, b: MeshAuthorizationPolicy): number {
  const x = policyKey(a);
  const y = policyKey(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function peerOf(connection: MeshConnection): Peer {
  const id = connection.sourceIdentity;
  return {
    principal:
      id === undefined ? undefined : `${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`,
    namespace: id?.namespace ?? '',
    identity: id,
    sourceIp: parseIp(connection.sourceIp),
    destinationIp: parseIp(connection.destinationIp),
    destinationPort: connection.destinationPort,
  };
}

/** Whether the destination's ztunnel lets `connection` reach `workload`, and which policy decided. */
export function authorize(
  workload: AuthorizationWorkload,
  connection: MeshConnection,
  policies: readonly MeshAuthorizationPolicy[],
  options: MeshPolicyOptions = {},
): AuthorizationDecision {
  const root = options.rootNamespace ?? defaultRootNamespace;
  const warnings: string[] = [];
  const notEnforced: PolicyRef[] = [];
  const applicable: Applicable[] = [];
  for (const policy of [...policies].sort(byKey)) {
    if (policy.targetRefs.length > 0) {
      if (isWaypointPolicyFor(policy, workload)) notEnforced.push(ref(policy));
      continue;
    }
    const inScope = policy.namespace === root || policy.namespace === workload.namespace;
    if (!inScope) continue;
    if (policy.selector !== undefined) {
      const labels = policy.selector.matchLabels;
      if (labels === undefined) {
        warnings.push(
          `AuthorizationPolicy ${policyKey(policy)} has a selector without matchLabels; istiod attaches such a policy to no workload in ambient mode, so it has no effect`,
        );
        continue;
      }
      if (!selectsLabels(labels, workload.labels)) continue;
    }
    const rules = (policy.rules ?? []).map((rule, i) =>
      convertRule(rule, i, policy.action, policy.namespace),
    );
    const entry = { policy, rules };
    applicable.push(entry);
    const http = httpWarning(entry);
    if (http !== undefined) warnings.push(http);
  }

  const peer = peerOf(connection);
  const audited: RuleRef[] = [];
  for (const entry of applicable.filter((e) => e.policy.action === 'AUDIT')) {
    warnings.push(
      `AuthorizationPolicy ${policyKey(entry.policy)} (AUDIT): ztunnel does not audit; strata records its matches and nothing more`,
    );
    const match = firstMatch(entry, peer);
    if (match) audited.push(match);
  }
  const findings = { audited, notEnforced, warnings };

  const custom = applicable.find((e) => e.policy.action === 'CUSTOM');
  if (custom) {
    const provider = custom.policy.provider?.name ?? '(none)';
    const unsupported = `AuthorizationPolicy ${policyKey(custom.policy)} uses the CUSTOM action (provider ${provider}), which strata does not support yet: as a sidecar does when it cannot reach the provider, every connection to this workload is denied`;
    warnings.push(unsupported);
    return {
      verdict: 'deny',
      reason: 'custom-unsupported',
      decidedBy: ref(custom.policy),
      unsupported,
      ...findings,
    };
  }
  for (const entry of applicable.filter((e) => e.policy.action === 'DENY')) {
    const match = firstMatch(entry, peer);
    if (match) return { verdict: 'deny', reason: 'deny-rule', decidedBy: match, ...findings };
  }
  const allows = applicable.filter((e) => e.policy.action === 'ALLOW');
  if (allows.length === 0) return { verdict: 'allow', reason: 'no-allow-policy', ...findings };
  for (const entry of allows) {
    const match = firstMatch(entry, peer);
    if (match) return { verdict: 'allow', reason: 'allow-rule', decidedBy: match, ...findings };
  }
  return {
    verdict: 'deny',
    reason: 'no-allow-rule-matched',
    allowPolicies: allows.map((e) => ref(e.policy)),
    ...findings,
  };
}
