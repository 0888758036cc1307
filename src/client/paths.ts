/** URL paths of resources and objects, as the API server lays them out (see src/apiserver/routes.ts). */
import type { ResourceType } from '../api/types.js';

/** What the client needs to know of a kind to address it. */
export type ResourceRef = Pick<
  ResourceType,
  'group' | 'version' | 'plural' | 'namespaced' | 'kind'
>;

export interface PathParts {
  namespace?: string;
  name?: string;
  subresource?: 'status' | 'binding';
}

/** `/api/v1/namespaces/default/pods/web/status`; a namespaced kind without a namespace spans all of them. */
export function resourcePath(resource: ResourceRef, parts: PathParts = {}): string {
  let path =
    resource.group === ''
      ? `/api/${resource.version}`
      : `/apis/${resource.group}/${resource.version}`;
  if (resource.namespaced && parts.namespace !== undefined) {
    path += `/namespaces/${encodeURIComponent(parts.namespace)}`;
  }
  path += `/${resource.plural}`;
  if (parts.name !== undefined) path += `/${encodeURIComponent(parts.name)}`;
  if (parts.subresource !== undefined) path += `/${parts.subresource}`;
  return path;
}

/** A selector as text: `app=web,tier!=db`, or a map of labels that must all equal. */
export type Selector = string | Readonly<Record<string, string>>;

export function selectorText(selector: Selector): string {
  return typeof selector === 'string'
    ? selector
    : Object.entries(selector)
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
}

export function withQuery(path: string, query: Record<string, string | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, value);
  const text = params.toString();
  return text === '' ? path : `${path}?${text}`;
}
