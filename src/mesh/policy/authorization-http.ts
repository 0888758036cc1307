/**
 * HTTP attributes in AuthorizationPolicy rules, which ztunnel cannot see:
 * when keys other than the ones ztunnel understands (source.ip,
 * source.namespace, source.principal, destination.ip, destination.port), such
 * as request.*, remote.ip, connection.sni and experimental.*; and hosts,
 * methods, paths, requestPrincipals and remoteIpBlocks and their `not` forms.
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
 * convertRule (authorization-conversion.ts) omits or drops them; for a DENY
 * rule, ruleHolds (authorization-matching.ts) lets an entry left empty match.
 */
import { type Clause, type ConvertedRule, isEmpty } from './authorization-matching.js';
import type { MeshAuthorizationPolicy, Rule } from './types.js';

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

/** The HTTP attributes a rule uses: its HTTP fields and when keys, sorted. */
export function httpAttributes(rule: Rule): string[] {
  const http = new Set<string>();
  for (const { operation } of rule.to ?? []) {
    for (const field of httpOperationFields) {
      if ((operation[field] ?? []).length > 0) http.add(field);
    }
  }
  for (const { source } of rule.from ?? []) {
    for (const field of httpSourceFields) {
      if ((source[field] ?? []).length > 0) http.add(field);
    }
  }
  for (const condition of rule.when ?? []) {
    if (!l4WhenKeys.has(condition.key)) http.add(condition.key);
  }
  return [...http].sort();
}

/** Whether no connection can ever match: some clause has only empty entries. */
function neverHolds(clauses: readonly Clause[]): boolean {
  return clauses.some((clause) => clause.length > 0 && clause.every(isEmpty));
}

/** The warning for a policy whose rules use HTTP attributes; undefined when none does. */
export function httpWarning(
  policy: MeshAuthorizationPolicy,
  rules: readonly ConvertedRule[],
): string | undefined {
  const affected = rules.filter((r) => r.http.length > 0);
  if (affected.length === 0) return undefined;
  const found = [...new Set(affected.flatMap((r) => r.http))].sort().join(', ');
  const head = `AuthorizationPolicy ${policy.namespace}/${policy.name} (${policy.action}) uses HTTP attributes ztunnel cannot check (found: ${found})`;
  const tail = 'HTTP rules need a waypoint, which strata does not have yet';
  const list = (subset: ConvertedRule[]) => subset.map((r) => r.index).join(', ');
  if (policy.action !== 'DENY') {
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
