/**
 * AuthorizationPolicy rules matched as ztunnel matches them (src/rbac.rs
 * Authorization::matches), in the form istiod sends them (istio's workloadapi
 * security.Match), which authorization-conversion.ts produces:
 * - a rule's clauses must all hold; within a clause any entry may match;
 *   within an entry every field that is set must hold, a positive list by any
 *   value and a `not` list by none; a rule with nothing in it matches
 *   everything;
 * - a principal is the SPIFFE ID without `spiffe://`. A plaintext connection
 *   has no principal and no namespace: positive matches on them fail, `not`
 *   matches on them hold;
 * - service accounts compare the identity's namespace and service account,
 *   prefixes the source or destination address, ports the destination port.
 */
import { type IpAddress, type IpPrefix, prefixContains } from '../../netaddr/ip.js';
import type { SpiffeId } from '../identity/spiffe.js';

export type StringMatch =
  | { type: 'exact'; value: string }
  | { type: 'prefix'; value: string }
  | { type: 'suffix'; value: string }
  | { type: 'presence' };

export interface ServiceAccountMatch {
  namespace: string;
  serviceAccount: string;
}

/** One entry of a clause: istio's security.Match (workloadapi), every list optional. */
export interface Match {
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
export type Clause = Match[];

/** A policy's rule in that form, with the HTTP attributes the conversion found in it. */
export interface ConvertedRule {
  /** Its index in spec.rules. */
  index: number;
  /** Undefined when the rule was omitted (an ALLOW or AUDIT rule with HTTP attributes). */
  clauses: Clause[] | undefined;
  /** The HTTP attributes found in the rule. */
  http: string[];
}

/** Whether an entry has no field set. */
export function isEmpty(match: Match): boolean {
  return Object.values(match).every((list: unknown[]) => list.length === 0);
}

/** What ztunnel knows of the source, derived once per connection. */
export interface Peer {
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
export function ruleHolds(clauses: readonly Clause[], peer: Peer, emptyMatches: boolean): boolean {
  return clauses.every(
    (clause) =>
      clause.length === 0 || clause.some((m) => (isEmpty(m) ? emptyMatches : matchHolds(m, peer))),
  );
}
