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
 * A policy matches a connection when one of its rules does, in order; a
 * policy with no rules (absent or empty) matches nothing. Each rule is
 * converted as istiod converts it (authorization-conversion.ts) and matched
 * as ztunnel matches it (authorization-matching.ts); HTTP attributes, which
 * ztunnel cannot see, are handled as authorization-http.ts says, and each
 * policy they affect is named in the warnings.
 */
import { parseIp } from '../../netaddr/ip.js';
import type { SpiffeId } from '../identity/spiffe.js';
import { convertRule } from './authorization-conversion.js';
import { httpWarning } from './authorization-http.js';
import { type ConvertedRule, type Peer, ruleHolds } from './authorization-matching.js';
import {
  type AuthorizationAction,
  type MeshAuthorizationPolicy,
  type MeshPolicyOptions,
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
    applicable.push({ policy, rules });
    const http = httpWarning(policy, rules);
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
