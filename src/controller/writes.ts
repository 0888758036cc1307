/**
 * Optimistic writes from a cached object, retried on a fresh read when they
 * conflict: client-go's retry.RetryOnConflict with DefaultRetry (5 attempts,
 * 10 ms apart), the way upstream controllers update what they own.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeObject } from '../api/types.js';
import { type ApiClient, type ResourceRef, isConflict, isNotFound } from '../client/index.js';

const attempts = 5;
const retryDelayMs = 10;

export type WriteKind = 'update' | 'status';

/**
 * Writes `change(current)` (a copy it may modify), starting from `start`
 * (usually the cached object, carrying its resourceVersion). On a conflict
 * it reads the object again and recomputes. `change` returns undefined when
 * nothing needs writing; then the object as read is returned. Resolves
 * undefined when the object is gone.
 */
export async function writeWithRetry<T extends KubeObject>(
  client: ApiClient,
  resource: ResourceRef,
  start: T,
  change: (current: T) => T | undefined,
  kind: WriteKind = 'update',
): Promise<T | undefined> {
  const name = start.metadata.name ?? '';
  const namespace = start.metadata.namespace;
  let current = start;
  for (let attempt = 1; ; attempt++) {
    const next = change(structuredClone(current));
    if (!next) return current;
    try {
      return kind === 'status' ? await client.updateStatus(next) : await client.update(next);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      if (!isConflict(error) || attempt >= attempts) throw error;
    }
    await sleep(retryDelayMs);
    try {
      current = await client.get<T>(resource, name, { namespace });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }
}

/** Deletes the object; a 404 is success (it is gone either way). */
export async function deleteIfPresent(
  client: ApiClient,
  resource: ResourceRef,
  object: KubeObject,
): Promise<KubeObject | undefined> {
  try {
    const answer = await client.delete(resource, object.metadata.name ?? '', {
      namespace: object.metadata.namespace,
      preconditions: object.metadata.uid ? { uid: object.metadata.uid } : undefined,
    });
    return answer.kind === 'Status' ? undefined : (answer as KubeObject);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    // The uid precondition failed: a new object of that name, not ours to delete.
    if (isConflict(error)) return undefined;
    throw error;
  }
}
