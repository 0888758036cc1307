/**
 * URL paths to what they address, in kube-apiserver's layout:
 *
 *   /api/v1/...                 the core group
 *   /apis/<group>/<version>/... every other group
 *     /namespaces/<ns>/<plural>[/<name>[/status]]   namespaced kinds
 *     /namespaces/<ns>/pods/<name>/binding            a pod's binding (POST)
 *     /<plural>                                       every namespace (namespaced kinds)
 *     /<plural>[/<name>[/status]]                     cluster-scoped kinds
 *     /watch/...                                      the same, as a watch
 *
 * plus discovery (/api, /apis, /api/v1, /apis/<group>[/<version>]),
 * /openapi/v3[/<group version>], /healthz, /livez, /readyz and /version.
 */
import { findResource, resources } from '../api/registry.js';
import type { ResourceType } from '../api/types.js';

export type Subresource = 'status' | 'binding';

/** Whether the kind has the subresource: /status where status is kept apart, /binding on pods. */
function hasSubresource(resource: ResourceType, subresource: string): subresource is Subresource {
  if (subresource === 'status') return resource.hasStatus;
  return subresource === 'binding' && resource.group === '' && resource.kind === 'Pod';
}

export type Route =
  | { type: 'health' }
  | { type: 'version' }
  | { type: 'apiVersions' }
  | { type: 'apiGroups' }
  | { type: 'apiGroup'; group: string }
  | { type: 'apiResources'; group: string; version: string }
  /** /openapi/v3 (no path) or /openapi/v3/<path>. */
  | { type: 'openapi'; path?: string }
  | {
      type: 'collection';
      resource: ResourceType;
      /** Undefined for cluster-scoped kinds, and for a namespaced kind listed across namespaces. */
      namespace?: string;
      watchPath: boolean;
    }
  | {
      type: 'object';
      resource: ResourceType;
      namespace?: string;
      name: string;
      subresource?: Subresource;
      watchPath: boolean;
    }
  | { type: 'notFound' }
  | { type: 'badRequest'; message: string };

const notFound: Route = { type: 'notFound' };

/** rest.IsValidPathSegmentName: a name that cannot be a path segment. */
function badSegment(segment: string): string | undefined {
  if (segment === '.' || segment === '..') return `may not be '${segment}'`;
  if (segment.includes('/')) return "may not contain '/'";
  if (segment.includes('%')) return "may not contain '%'";
  return undefined;
}

function servesGroupVersion(group: string, version: string): boolean {
  return resources.some((r) => r.group === group && r.version === version);
}

function resourceRoute(group: string, version: string, segments: string[]): Route {
  let watchPath = false;
  if (segments[0] === 'watch') {
    watchPath = true;
    segments = segments.slice(1);
  }
  if (segments.length === 0) {
    return watchPath ? notFound : { type: 'apiResources', group, version };
  }
  let namespace: string | undefined;
  let rest: string[];
  let resource: ResourceType | undefined;
  const namespaced =
    segments[0] === 'namespaces' && segments.length >= 3
      ? findResource(group, version, segments[2] ?? '')
      : undefined;
  if (namespaced?.namespaced) {
    namespace = segments[1];
    resource = namespaced;
    rest = segments.slice(3);
  } else {
    resource = findResource(group, version, segments[0] ?? '');
    rest = segments.slice(1);
    if (resource?.namespaced && rest.length > 0) return notFound;
  }
  if (!resource || rest.length > 2) return notFound;
  for (const [what, segment] of [
    ['namespace', namespace],
    ['name', rest[0]],
  ] as const) {
    const problem = segment === undefined ? undefined : badSegment(segment);
    if (problem) return { type: 'badRequest', message: `${what} ${problem}` };
  }
  const [name, subresource] = rest;
  if (name === undefined) return { type: 'collection', resource, namespace, watchPath };
  if (subresource === undefined) return { type: 'object', resource, namespace, name, watchPath };
  if (!hasSubresource(resource, subresource) || watchPath) return notFound;
  return { type: 'object', resource, namespace, name, subresource, watchPath };
}

/** What `pathname` (still percent-encoded) addresses. */
export function parseRoute(pathname: string): Route {
  const trimmed = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname;
  let segments: string[];
  try {
    segments = trimmed.split('/').slice(1).map(decodeURIComponent);
  } catch {
    return { type: 'badRequest', message: `the path ${pathname} is not correctly percent-encoded` };
  }
  const [root, second, third] = segments;
  switch (root) {
    case 'healthz':
    case 'livez':
    case 'readyz':
      return segments.length === 1 ? { type: 'health' } : notFound;
    case 'version':
      return segments.length === 1 ? { type: 'version' } : notFound;
    case 'openapi':
      if (second !== 'v3') return notFound;
      return segments.length === 2
        ? { type: 'openapi' }
        : { type: 'openapi', path: segments.slice(2).join('/') };
    case 'api':
      if (second === undefined) return { type: 'apiVersions' };
      return servesGroupVersion('', second)
        ? resourceRoute('', second, segments.slice(2))
        : notFound;
    case 'apis':
      if (second === undefined) return { type: 'apiGroups' };
      if (second === '' || !resources.some((r) => r.group === second)) return notFound;
      if (third === undefined) return { type: 'apiGroup', group: second };
      return servesGroupVersion(second, third)
        ? resourceRoute(second, third, segments.slice(3))
        : notFound;
    default:
      return notFound;
  }
}
