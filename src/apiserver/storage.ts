/**
 * API objects in the datastore. Layout, as kube-apiserver's etcd3 storage:
 * `/registry/<group or "core">/<plural>/<namespace>/<name>`, cluster-scoped
 * kinds without the namespace segment. Objects are stored as JSON without
 * metadata.resourceVersion; on the way out it is the key's modRevision, so
 * the resourceVersion is the store revision of the write that produced it.
 */
import type { KubeObject, ResourceType } from '../api/types.js';
import {
  KeyExistsError,
  KeyNotFoundError,
  RevisionConflictError,
  type Store,
  type StoredValue,
} from '../store/store.js';
import { jsonEqual } from './json-value.js';
import { alreadyExists, internalError, notFound } from './status.js';

type Resource = Pick<ResourceType, 'group' | 'plural' | 'namespaced'>;

/** `/registry/core/pods/` or `/registry/core/pods/<namespace>/`: every key of a listing. */
export function storagePrefix(resource: Resource, namespace?: string): string {
  const base = `/registry/${resource.group || 'core'}/${resource.plural}/`;
  return resource.namespaced && namespace !== undefined ? `${base}${namespace}/` : base;
}

export function storageKey(
  resource: Resource,
  namespace: string | undefined,
  name: string,
): string {
  return `${storagePrefix(resource, resource.namespaced ? (namespace ?? '') : undefined)}${name}`;
}

/** The object a stored value holds, its resourceVersion set to `revision` (by default the write's). */
export function decodeObject(kv: StoredValue, revision = kv.modRevision): KubeObject {
  let object: KubeObject;
  try {
    object = JSON.parse(kv.value) as KubeObject;
  } catch (error) {
    throw internalError(`the stored value of ${kv.key} is not JSON: ${String(error)}`);
  }
  object.metadata.resourceVersion = String(revision);
  return object;
}

/** What is written: the object without its resourceVersion, which the store assigns. */
export function encodeObject(object: KubeObject): string {
  const metadata = { ...object.metadata };
  delete metadata.resourceVersion;
  return JSON.stringify({ ...object, metadata });
}

/** A stored object and the revision of its last write (the precondition for the next one). */
export interface StoredObject {
  object: KubeObject;
  modRevision: number;
}

export async function getObject(
  store: Store,
  resource: Resource,
  namespace: string | undefined,
  name: string,
): Promise<StoredObject | undefined> {
  const kv = await store.get(storageKey(resource, namespace, name));
  return kv ? { object: decodeObject(kv), modRevision: kv.modRevision } : undefined;
}

/** Like getObject, but 404 NotFound when absent. */
export async function mustGetObject(
  store: Store,
  resource: Resource,
  namespace: string | undefined,
  name: string,
): Promise<StoredObject> {
  const found = await getObject(store, resource, namespace, name);
  if (!found) throw notFound(resource, name);
  return found;
}

export async function listObjects(
  store: Store,
  resource: Resource,
  namespace?: string,
): Promise<{ items: KubeObject[]; revision: number }> {
  const listed = await store.list(storagePrefix(resource, namespace));
  return { items: listed.items.map((kv) => decodeObject(kv)), revision: listed.revision };
}

function objectName(object: KubeObject): string {
  return object.metadata.name ?? '';
}

/** Creates the object; 409 AlreadyExists when its key is taken. */
export async function createObject(
  store: Store,
  resource: Resource,
  object: KubeObject,
): Promise<KubeObject> {
  const name = objectName(object);
  try {
    const kv = await store.create(
      storageKey(resource, object.metadata.namespace, name),
      encodeObject(object),
    );
    return decodeObject(kv);
  } catch (error) {
    if (error instanceof KeyExistsError) throw alreadyExists(resource, name);
    throw error;
  }
}

/**
 * Writes the object if its key is still at `expectedModRevision`. Returns
 * undefined on a revision conflict, so the caller can re-read and retry;
 * 404 when the key is gone.
 */
export async function writeObject(
  store: Store,
  resource: Resource,
  object: KubeObject,
  expectedModRevision: number,
): Promise<KubeObject | undefined> {
  const name = objectName(object);
  try {
    const kv = await store.update(
      storageKey(resource, object.metadata.namespace, name),
      encodeObject(object),
      expectedModRevision,
    );
    return decodeObject(kv);
  } catch (error) {
    if (error instanceof RevisionConflictError) return undefined;
    if (error instanceof KeyNotFoundError) throw notFound(resource, name);
    throw error;
  }
}

/** Removes the object if its key is still at `expectedModRevision`; undefined on a conflict. */
export async function removeObject(
  store: Store,
  resource: Resource,
  object: KubeObject,
  expectedModRevision: number,
): Promise<KubeObject | undefined> {
  const name = objectName(object);
  try {
    const kv = await store.delete(
      storageKey(resource, object.metadata.namespace, name),
      expectedModRevision,
    );
    return decodeObject(kv);
  } catch (error) {
    if (error instanceof RevisionConflictError) return undefined;
    if (error instanceof KeyNotFoundError) throw notFound(resource, name);
    throw error;
  }
}

/**
 * Read-modify-write against the latest stored object, retried when another
 * write lands in between (storage.Interface.GuaranteedUpdate). `apply` sees
 * the current object and returns the one to store, `'delete'` to remove it,
 * or the current object unchanged to write nothing; a precondition it checks
 * (a resourceVersion the request carries) fails by throwing.
 *
 * As upstream, a write that loses the race is retried until it wins: every
 * lost race means another write was made, so the writers as a whole always
 * progress, and a store that refuses a write because of one not yet visible
 * answers only once it is (FileStore), so the retry reads what it lost to
 * rather than spinning on the value before it. Each retry also lets I/O run
 * first, so even a store that refuses at once cannot starve the sync it
 * waits for.
 */
export async function guaranteedUpdate(
  store: Store,
  resource: Resource,
  namespace: string | undefined,
  name: string,
  apply: (current: KubeObject) => KubeObject | 'delete',
): Promise<{ object: KubeObject; deleted: boolean }> {
  for (let attempt = 0; ; attempt++) {
    if (attempt > 0) {
      await new Promise<void>((resolve) => {
        setImmediate(resolve);
      });
    }
    const current = await mustGetObject(store, resource, namespace, name);
    const next = apply(structuredClone(current.object));
    if (next === 'delete') {
      const removed = await removeObject(store, resource, current.object, current.modRevision);
      if (removed) return { object: removed, deleted: true };
      continue;
    }
    next.metadata.resourceVersion = current.object.metadata.resourceVersion;
    if (jsonEqual(next, current.object)) return { object: current.object, deleted: false };
    const written = await writeObject(store, resource, next, current.modRevision);
    if (written) return { object: written, deleted: false };
  }
}
