/**
 * AuthorizationPolicy rules converted as istiod converts them for ztunnel
 * (pilot/pkg/serviceregistry/kube/controller/ambient/authorization.go,
 * handleRule), into the form authorization-matching.ts matches:
 * - a rule's from entries, to entries and each when condition are its
 *   clauses;
 * - principals, namespaces and when `source.principal`/`source.namespace`
 *   use Istio's string match: `*` any non-empty value, `*x` suffix, `x*`
 *   prefix, else exact;
 * - serviceAccounts are `ns/sa`, or `sa` in the policy's namespace;
 * - ipBlocks are source addresses, when `destination.ip` destination
 *   addresses, ports and when `destination.port` destination ports; an
 *   address without a length is a single address;
 * - HTTP attributes (authorization-http.ts) are dropped from a DENY rule and
 *   omit a rule of any other action.
 */
import { type IpPrefix, parseIp, parsePrefix } from '../../netaddr/ip.js';
import { httpAttributes } from './authorization-http.js';
import type {
  Clause,
  ConvertedRule,
  Match,
  ServiceAccountMatch,
  StringMatch,
} from './authorization-matching.js';
import type { AuthorizationAction, Condition, Rule } from './types.js';

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
export function convertRule(
  rule: Rule,
  index: number,
  action: AuthorizationAction,
  policyNamespace: string,
): ConvertedRule {
  const clauses: Clause[] = [];
  if (rule.to !== undefined) {
    clauses.push(
      rule.to.map(({ operation }) => ({
        ...emptyMatch(),
        destinationPorts: ports(operation.ports),
        notDestinationPorts: ports(operation.notPorts),
      })),
    );
  }
  if (rule.from !== undefined) {
    clauses.push(
      rule.from.map(({ source }) => ({
        ...emptyMatch(),
        sourceIps: prefixes(source.ipBlocks),
        notSourceIps: prefixes(source.notIpBlocks),
        namespaces: stringMatches(source.namespaces),
        notNamespaces: stringMatches(source.notNamespaces),
        serviceAccounts: serviceAccounts(source.serviceAccounts, policyNamespace),
        notServiceAccounts: serviceAccounts(source.notServiceAccounts, policyNamespace),
        principals: stringMatches(source.principals),
        notPrincipals: stringMatches(source.notPrincipals),
      })),
    );
  }
  for (const condition of rule.when ?? []) clauses.push([conditionMatch(condition)]);
  const http = httpAttributes(rule);
  const omitted = action !== 'DENY' && http.length > 0;
  return { index, clauses: omitted ? undefined : clauses, http };
}
