/**
 * GET of an object and of a collection (list). A list's resourceVersion is
 * the store revision it was read at: a watch from there misses nothing.
 * `limit` and `continue` are ignored and every match is returned in one
 * page, which the API conventions allow a server to do. A list is always
 * of the latest state, which any resourceVersion up to it allows; one beyond
 * it is 504 "Too large resource version", as upstream.
 */
import type { KubeList, KubeObject, ResourceType } from '../api/types.js';
import { apiVersionOf } from '../api/types.js';
import type { ApiContext } from './context.js';
import { type FieldSelector, matchesFields, parseFieldSelector } from './field-selectors.js';
import {
  LabelSelectorError,
  type LabelSelector,
  matchesLabels,
  parseLabelSelector,
} from './selectors.js';
import { badRequest, tooLargeResourceVersion } from './status.js';
import { listObjects, mustGetObject } from './storage.js';
import { parseResourceVersion } from './strategy.js';

export function handleGet(
  ctx: ApiContext,
  resource: ResourceType,
  namespace: string | undefined,
  name: string,
): Promise<KubeObject> {
  return mustGetObject(ctx.store, resource, namespace, name).then((found) => found.object);
}

/** The selectors of a list or watch request; 400 BadRequest when one does not parse. */
export interface ListFilter {
  labels: LabelSelector;
  fields: FieldSelector;
}

export function parseListFilter(query: URLSearchParams, resource: ResourceType): ListFilter {
  let labels: LabelSelector;
  try {
    labels = parseLabelSelector(query.get('labelSelector') ?? '');
  } catch (error) {
    if (error instanceof LabelSelectorError) {
      throw badRequest(`unable to parse requirement: ${error.message}`);
    }
    throw error;
  }
  return { labels, fields: parseFieldSelector(query.get('fieldSelector') ?? '', resource) };
}

export function matchesFilter(
  filter: ListFilter,
  resource: ResourceType,
  object: KubeObject,
): boolean {
  return (
    matchesLabels(filter.labels, object.metadata.labels) &&
    matchesFields(filter.fields, resource, object)
  );
}

export async function handleList(
  ctx: ApiContext,
  resource: ResourceType,
  namespace: string | undefined,
  query: URLSearchParams,
): Promise<KubeList> {
  const filter = parseListFilter(query, resource);
  const { items, revision } = await listObjects(ctx.store, resource, namespace);
  const atLeast = parseResourceVersion(query.get('resourceVersion') ?? undefined);
  if (atLeast !== undefined && atLeast > revision) {
    throw tooLargeResourceVersion(atLeast, revision);
  }
  return {
    apiVersion: apiVersionOf(resource),
    kind: `${resource.kind}List`,
    metadata: { resourceVersion: String(revision) },
    items: items.filter((o) => matchesFilter(filter, resource, o)),
  };
}
