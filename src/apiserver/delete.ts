/**
 * DELETE of an object (handlers/delete.go, registry/generic Store.Delete and
 * rest.BeforeDelete), answering 200 with the object:
 *
 * - Pods are deleted gracefully: a grace period (DeleteOptions
 *   gracePeriodSeconds, else spec.terminationGracePeriodSeconds, else 30)
 *   sets metadata.deletionTimestamp (now + grace) and
 *   deletionGracePeriodSeconds and keeps the pod, for its node to stop it;
 *   a later DELETE may only shorten the period, and with 0 removes it. A pod
 *   not bound to a node, or already Succeeded/Failed, goes at once.
 * - An object with finalizers is only marked; it goes when an update
 *   empties them.
 * - Deleting a Namespace deletes everything in it first; `default`,
 *   `kube-system` and `kube-public` cannot be deleted.
 * - DeleteOptions preconditions (uid, resourceVersion) → 409 on mismatch.
 * - Dependents go in the background (their controllers delete what the
 *   object owned), so propagationPolicy may only be Background: Orphan,
 *   Foreground and orphanDependents=true are refused with 400 naming the
 *   field rather than ignored; an unknown policy, or both fields at once, is
 *   422 as upstream's ValidateDeleteOptions.
 */
import type { IncomingMessage } from 'node:http';
import type { KubeObject, ResourceType } from '../api/types.js';
import type { ApiContext } from './context.js';
import { isJsonObject } from './json-value.js';
import { undeletableNamespaces } from './namespaces.js';
import { mediaType, parseJson, readBody } from './request-body.js';
import { badRequest, conflict, forbidden, invalid, unsupportedMediaType } from './status.js';
import { guaranteedUpdate, mustGetObject } from './storage.js';
import { timestamp } from '../api/time.js';
import { finalizersDone } from './update.js';

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
}

const propagationPolicies = ['Foreground', 'Background', 'Orphan'];

function queryBoolean(name: string, value: string | null): boolean | undefined {
  if (value === null || value === '') return undefined;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw badRequest(`${name} must be true or false: got ${JSON.stringify(value)}`);
}

/**
 * How dependents go: only Background is served. Whatever else a client asks
 * for is refused, since deleting anyway would do something it did not ask.
 */
function checkPropagation(policy: unknown, orphanDependents: unknown): void {
  const given = (value: unknown): boolean => value !== undefined && value !== null;
  const options = { group: 'meta.k8s.io', kind: 'DeleteOptions' };
  if (given(policy) && given(orphanDependents)) {
    throw invalid(options, '', [
      {
        field: 'orphanDependents',
        type: 'Invalid',
        value: orphanDependents,
        detail: 'orphanDependents and deletionPropagation cannot be both set',
      },
    ]);
  }
  if (given(orphanDependents) && typeof orphanDependents !== 'boolean') {
    throw badRequest(`orphanDependents must be a boolean: got ${JSON.stringify(orphanDependents)}`);
  }
  if (orphanDependents === true) {
    throw badRequest(
      'orphanDependents is not supported by this server: strata deletes dependents in the background only (propagationPolicy Background)',
    );
  }
  if (!given(policy) || policy === 'Background') return;
  if (typeof policy !== 'string' || !propagationPolicies.includes(policy)) {
    throw invalid(options, '', [
      {
        field: 'propagationPolicy',
        type: 'NotSupported',
        value: policy,
        detail: `supported values: ${propagationPolicies.map((p) => `"${p}"`).join(', ')}`,
      },
    ]);
  }
  throw badRequest(
    `propagationPolicy ${policy} is not supported by this server: strata deletes dependents in the background only (propagationPolicy Background)`,
  );
}

function gracePeriod(value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) {
    throw badRequest(`gracePeriodSeconds must be an integer: got ${JSON.stringify(value)}`);
  }
  return n;
}

/** DeleteOptions from the body (if any) and the query, the query's gracePeriodSeconds winning. */
export async function readDeleteOptions(
  req: IncomingMessage,
  query: URLSearchParams,
): Promise<DeleteOptions> {
  const text = await readBody(req);
  let options: DeleteOptions = {};
  // From the query and from the body alike: a policy is never ignored for coming from the other.
  checkPropagation(
    query.get('propagationPolicy') ?? undefined,
    queryBoolean('orphanDependents', query.get('orphanDependents')),
  );
  if (text.trim() !== '') {
    const type = mediaType(req);
    if (type !== '' && type !== 'application/json')
      throw unsupportedMediaType(type, ['application/json']);
    const body = parseJson(text);
    if (!isJsonObject(body)) throw badRequest('DeleteOptions must be an object');
    const preconditions = body.preconditions;
    if (preconditions !== undefined && preconditions !== null && !isJsonObject(preconditions)) {
      throw badRequest('DeleteOptions preconditions must be an object');
    }
    options = {
      gracePeriodSeconds: gracePeriod(body.gracePeriodSeconds),
      preconditions: preconditions ?? undefined,
    };
    checkPropagation(body.propagationPolicy, body.orphanDependents);
  }
  const fromQuery = gracePeriod(query.get('gracePeriodSeconds') ?? undefined);
  if (fromQuery !== undefined) options.gracePeriodSeconds = fromQuery;
  return options;
}

/** pkg/registry/core/pod/strategy.go CheckGracefulDelete. */
function podGracePeriod(pod: KubeObject, options: DeleteOptions): number {
  const spec = pod.spec ?? {};
  const fromSpec = spec.terminationGracePeriodSeconds;
  let period = options.gracePeriodSeconds ?? (typeof fromSpec === 'number' ? fromSpec : 30);
  if (!spec.nodeName) period = 0;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') period = 0;
  return period < 0 ? 1 : period;
}

function checkPreconditions(
  resource: ResourceType,
  object: KubeObject,
  options: DeleteOptions,
): void {
  const { uid, resourceVersion } = options.preconditions ?? {};
  const name = object.metadata.name ?? '';
  if (uid !== undefined && uid !== object.metadata.uid) {
    throw conflict(
      resource,
      name,
      `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${object.metadata.uid ?? ''}`,
    );
  }
  if (resourceVersion !== undefined && resourceVersion !== object.metadata.resourceVersion) {
    throw conflict(
      resource,
      name,
      `Precondition failed: ResourceVersion in precondition: ${resourceVersion}, ResourceVersion in object meta: ${object.metadata.resourceVersion ?? ''}`,
    );
  }
}

/** rest.BeforeDelete: marks the object for deletion, or returns it as it is when nothing changes. */
function markForDeletion(
  resource: ResourceType,
  object: KubeObject,
  options: DeleteOptions,
): KubeObject {
  const metadata = object.metadata;
  const graceful = resource.group === '' && resource.kind === 'Pod';
  const period = graceful ? podGracePeriod(object, options) : 0;
  if (metadata.deletionTimestamp !== undefined) {
    // Already being deleted: only a shorter grace period changes anything.
    const current = metadata.deletionGracePeriodSeconds;
    if (current !== undefined && options.gracePeriodSeconds !== undefined && period < current) {
      const start = Date.parse(metadata.deletionTimestamp) - current * 1000;
      metadata.deletionTimestamp = timestamp(new Date(start + period * 1000));
      metadata.deletionGracePeriodSeconds = period;
    }
    return object;
  }
  metadata.deletionTimestamp = timestamp(new Date(Date.now() + period * 1000));
  metadata.deletionGracePeriodSeconds = period;
  return object;
}

export async function handleDelete(
  ctx: ApiContext,
  resource: ResourceType,
  namespace: string | undefined,
  name: string,
  options: DeleteOptions,
): Promise<KubeObject> {
  const remove = async (): Promise<KubeObject> => {
    const result = await guaranteedUpdate(ctx.store, resource, namespace, name, (current) => {
      checkPreconditions(resource, current, options);
      const next = markForDeletion(resource, current, options);
      return finalizersDone(next) ? 'delete' : next;
    });
    return result.object;
  };
  if (resource.group !== '' || resource.kind !== 'Namespace') return remove();
  if (undeletableNamespaces.has(name))
    throw forbidden(resource, name, 'this namespace may not be deleted');
  // Check before the sweep, which cannot be undone.
  const { object } = await mustGetObject(ctx.store, resource, undefined, name);
  checkPreconditions(resource, object, options);
  return ctx.namespaces.terminate(name, remove);
}
