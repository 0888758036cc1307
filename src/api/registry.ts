/**
 * Every kind the API serves. The validation and defaulting of each kind
 * lives in src/api/validation/ (its table in kinds.ts); every kind also gets
 * the checks all objects share (metadata, envelope).
 */
import { type ResourceType, apiVersionOf } from './types.js';
import { type KindRules, ruleTable } from './validation/kinds.js';
import { validateObjectEnvelope } from './validation/meta.js';

/** Kind-specific rules, by `group/kind`. */
const rulesByKind = new Map<string, KindRules>(
  ruleTable.map(({ group, kind, rules }) => [`${group}/${kind}`, rules]),
);

function resource(
  group: string,
  version: string,
  kind: string,
  plural: string,
  options: { namespaced?: boolean; hasStatus?: boolean; shortNames?: string[] } = {},
): ResourceType {
  const type: ResourceType = {
    group,
    version,
    kind,
    plural,
    singular: kind.toLowerCase(),
    shortNames: options.shortNames ?? [],
    namespaced: options.namespaced ?? true,
    hasStatus: options.hasStatus ?? false,
    applyDefaults(object) {
      rulesByKind.get(`${group}/${kind}`)?.applyDefaults?.(object);
    },
    validate(object, old) {
      const errors = validateObjectEnvelope(type, object);
      const own = rulesByKind.get(`${group}/${kind}`)?.validate;
      return own ? [...errors, ...own(object, old)] : errors;
    },
  };
  return type;
}

export const resources: readonly ResourceType[] = [
  resource('', 'v1', 'Namespace', 'namespaces', {
    namespaced: false,
    hasStatus: true,
    shortNames: ['ns'],
  }),
  resource('', 'v1', 'Node', 'nodes', { namespaced: false, hasStatus: true, shortNames: ['no'] }),
  resource('', 'v1', 'Pod', 'pods', { hasStatus: true, shortNames: ['po'] }),
  resource('', 'v1', 'Service', 'services', { hasStatus: true, shortNames: ['svc'] }),
  resource('discovery.k8s.io', 'v1', 'EndpointSlice', 'endpointslices'),
  resource('apps', 'v1', 'Deployment', 'deployments', { hasStatus: true, shortNames: ['deploy'] }),
  resource('networking.k8s.io', 'v1', 'NetworkPolicy', 'networkpolicies', {
    shortNames: ['netpol'],
  }),
  resource('networking.istio.io', 'v1', 'VirtualService', 'virtualservices', {
    shortNames: ['vs'],
  }),
  resource('networking.istio.io', 'v1', 'DestinationRule', 'destinationrules', {
    shortNames: ['dr'],
  }),
  resource('networking.istio.io', 'v1', 'Gateway', 'gateways', { shortNames: ['gw'] }),
  resource('security.istio.io', 'v1', 'PeerAuthentication', 'peerauthentications', {
    shortNames: ['pa'],
  }),
  resource('security.istio.io', 'v1', 'AuthorizationPolicy', 'authorizationpolicies', {
    shortNames: ['ap'],
  }),
  resource('security.istio.io', 'v1', 'RequestAuthentication', 'requestauthentications', {
    shortNames: ['ra'],
  }),
  resource('gateway.networking.k8s.io', 'v1', 'Gateway', 'gateways', { hasStatus: true }),
  resource('gateway.networking.k8s.io', 'v1', 'HTTPRoute', 'httproutes', { hasStatus: true }),
];

/** The resource served at /api(s)/<group>/<version>/<plural>. */
export function findResource(
  group: string,
  version: string,
  plural: string,
): ResourceType | undefined {
  return resources.find((r) => r.group === group && r.version === version && r.plural === plural);
}

/** The resource of a manifest's apiVersion and kind. */
export function resourceForKind(apiVersion: string, kind: string): ResourceType | undefined {
  return resources.find((r) => apiVersionOf(r) === apiVersion && r.kind === kind);
}

/**
 * What a user typed on the command line (`pods`, `pod`, `po`, `deploy`,
 * `gateways.gateway.networking.k8s.io`): every resource it can mean, the
 * core and apps groups first as kubectl prefers them.
 */
export function resourcesForName(name: string): ResourceType[] {
  const lower = name.toLowerCase();
  const dot = lower.indexOf('.');
  const base = dot < 0 ? lower : lower.slice(0, dot);
  const group = dot < 0 ? undefined : lower.slice(dot + 1);
  return resources.filter(
    (r) =>
      (group === undefined || r.group === group) &&
      (r.plural === base ||
        r.singular === base ||
        r.shortNames.includes(base) ||
        r.kind.toLowerCase() === base),
  );
}
