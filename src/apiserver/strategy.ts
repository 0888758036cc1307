/**
 * What the server itself decides about an object, whatever its kind
 * (k8s.io/apiserver/pkg/registry/rest: BeforeCreate, BeforeUpdate, and each
 * kind's PrepareForCreate/PrepareForUpdate): the envelope a request must
 * carry, the system fields the server owns (uid, creationTimestamp,
 * generation, deletion fields), and how status is kept apart from spec.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { type KubeObject, type ResourceType, apiVersionOf } from '../api/types.js';
import { isJsonObject, jsonEqual } from './json-value.js';
import { keepNodePorts } from './node-ports.js';
import { badRequest } from './status.js';

import { timestamp } from '../api/time.js';

/** Where a request addresses an object: the namespace from the path (if any) and the name. */
export interface ObjectTarget {
  namespace?: string;
  name?: string;
}

/**
 * Checks a request body is an object of `resource` for `target` and fills
 * what it may omit: apiVersion and kind, the namespace from the path. 400
 * BadRequest on a mismatch, as upstream (a namespace or name differing from
 * the URL's, another kind).
 */
export function admitObject(
  body: unknown,
  resource: ResourceType,
  target: ObjectTarget,
): KubeObject {
  if (!isJsonObject(body)) throw badRequest(`the body must be a ${resource.kind} object`);
  const apiVersion = apiVersionOf(resource);
  if (body.apiVersion === undefined || body.apiVersion === '') body.apiVersion = apiVersion;
  if (body.kind === undefined || body.kind === '') body.kind = resource.kind;
  if (body.apiVersion !== apiVersion || body.kind !== resource.kind) {
    throw badRequest(
      `the object provided is unrecognized (must be of type ${resource.kind}, apiVersion ${apiVersion}): got ${JSON.stringify(body.kind)}, apiVersion ${JSON.stringify(body.apiVersion)}`,
    );
  }
  if (body.metadata === undefined || body.metadata === null) body.metadata = {};
  const metadata = body.metadata;
  if (!isJsonObject(metadata)) throw badRequest('metadata must be an object');
  if (resource.namespaced) {
    if (metadata.namespace === undefined || metadata.namespace === '') {
      metadata.namespace = target.namespace;
    } else if (metadata.namespace !== target.namespace) {
      throw badRequest(
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    }
  } else {
    // rest.BeforeCreate clears a namespace given to a cluster-scoped kind.
    delete metadata.namespace;
  }
  if (target.name !== undefined && metadata.name !== target.name) {
    throw badRequest(
      `the name of the object (${typeof metadata.name === 'string' ? metadata.name : ''}) does not match the name on the URL (${target.name})`,
    );
  }
  // apiVersion, kind and metadata first, as upstream serializes objects.
  const ordered: Record<string, unknown> = { apiVersion, kind: resource.kind, metadata };
  return Object.assign(ordered, body) as KubeObject;
}

/** names.SimpleNameGenerator: the prefix (at most 58 characters) and 5 random characters. */
export function generateName(prefix: string): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let suffix = '';
  for (let i = 0; i < 5; i++) suffix += alphabet.charAt(randomInt(alphabet.length));
  return prefix.slice(0, 58) + suffix;
}

/** The status a new object starts with: each kind's PrepareForCreate resets it. */
const statusOnCreate: Record<string, (given: unknown) => unknown> = {
  '/Namespace': () => ({ phase: 'Active' }),
  '/Pod': () => ({ phase: 'Pending' }),
  // A kubelet registers its Node with the status it observed.
  '/Node': (given) => given,
  '/Service': () => ({ loadBalancer: {} }),
  'apps/Deployment': () => ({}),
};

function setStatus(object: KubeObject, status: unknown): void {
  if (isJsonObject(status)) object.status = status;
  else delete object.status;
}

/** Fills the system fields of an object about to be created. */
export function prepareForCreate(resource: ResourceType, object: KubeObject): void {
  const metadata = object.metadata;
  metadata.uid = randomUUID();
  metadata.creationTimestamp = timestamp();
  metadata.generation = 1;
  delete metadata.deletionTimestamp;
  delete metadata.deletionGracePeriodSeconds;
  if (resource.hasStatus) {
    const reset = statusOnCreate[`${resource.group}/${resource.kind}`];
    setStatus(object, reset ? reset(object.status) : undefined);
  }
}

/** Everything but metadata, and but status where status is a subresource: what bumps generation. */
function desiredState(resource: ResourceType, object: KubeObject): Record<string, unknown> {
  const state: Record<string, unknown> = { ...object };
  delete state.metadata;
  if (resource.hasStatus) delete state.status;
  return state;
}

/**
 * The object a PUT or PATCH of the main resource stores: the user's fields,
 * the server's system fields from `current`, and (for kinds with a status
 * subresource) `current`'s status, since only /status changes it. The
 * generation goes up when the desired state changed.
 */
export function prepareForUpdate(
  resource: ResourceType,
  incoming: KubeObject,
  current: KubeObject,
): KubeObject {
  const was = current.metadata;
  const next: KubeObject = { ...incoming, metadata: { ...incoming.metadata } };
  const metadata = next.metadata;
  metadata.name = was.name;
  metadata.namespace = was.namespace;
  metadata.uid = was.uid;
  metadata.creationTimestamp = was.creationTimestamp;
  metadata.resourceVersion = was.resourceVersion;
  metadata.deletionTimestamp = was.deletionTimestamp;
  metadata.deletionGracePeriodSeconds = was.deletionGracePeriodSeconds;
  if (metadata.deletionTimestamp === undefined) delete metadata.deletionTimestamp;
  if (metadata.deletionGracePeriodSeconds === undefined) delete metadata.deletionGracePeriodSeconds;
  if (!resource.namespaced) delete metadata.namespace;
  if (resource.hasStatus) setStatus(next, current.status);
  if (resource.group === '' && resource.kind === 'Service') keepAllocatedValues(next, current);
  const generation = was.generation ?? 1;
  metadata.generation = jsonEqual(desiredState(resource, next), desiredState(resource, current))
    ? generation
    : generation + 1;
  return next;
}

function isUnset(value: unknown): boolean {
  return (
    value === undefined ||
    value === null ||
    value === '' ||
    (Array.isArray(value) && value.length === 0)
  );
}

/**
 * patchAllocatedValues: an update of a Service that leaves out its cluster
 * IPs keeps the ones it has, and then the families they are of, as
 * upstream (kubectl replace and apply send what the user wrote, without
 * what the server allocated); its node ports likewise, or they are cleared
 * when it stops being a NodePort Service (node-ports.ts).
 */
function keepAllocatedValues(next: KubeObject, current: KubeObject): void {
  const was = current.spec;
  if (!isJsonObject(next.spec) || !isJsonObject(was) || next.spec.type === 'ExternalName') return;
  const spec = { ...next.spec };
  next.spec = spec;
  keepNodePorts(spec, was);
  for (const field of ['clusterIP', 'clusterIPs']) {
    if (isUnset(spec[field]) && !isUnset(was[field])) spec[field] = was[field];
  }
  if (!jsonEqual(spec.clusterIPs, was.clusterIPs)) return;
  for (const field of ['ipFamilies', 'ipFamilyPolicy']) {
    if (isUnset(spec[field]) && !isUnset(was[field])) spec[field] = was[field];
  }
}

/** The object a PUT or PATCH of /status stores: `current` with the incoming status only. */
export function prepareForStatusUpdate(incoming: KubeObject, current: KubeObject): KubeObject {
  const next = structuredClone(current);
  setStatus(next, incoming.status);
  return next;
}

/** The resourceVersion a request carries, as a store revision; 400 when it is not a number. */
export function parseResourceVersion(value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'string' && /^\d+$/.test(value)) return Number(value);
  throw badRequest(`invalid resourceVersion ${JSON.stringify(value)}: must be a decimal number`);
}
