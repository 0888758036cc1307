/**
 * Namespaces' lifecycle (kube-apiserver's NamespaceLifecycle admission and
 * the namespace controller, in one place): objects are created only in a
 * namespace that exists and is not being deleted, deleting a namespace
 * deletes everything in it, and the namespaces every cluster has exist from
 * the start.
 */
import { resourceForKind, resources } from '../api/registry.js';
import type { KubeObject, ResourceType } from '../api/types.js';
import { KeyNotFoundError, type Store } from '../store/store.js';
import { createObject, getObject, storageKey, storagePrefix } from './storage.js';
import { ApiStatusError, forbidden, internalError, notFound } from './status.js';
import { prepareForCreate } from './strategy.js';

function namespaceType(): ResourceType {
  const type = resourceForKind('v1', 'Namespace');
  if (!type) throw internalError('the registry has no v1 Namespace');
  return type;
}

/** Upstream refuses to delete these (pkg/registry/core/namespace). */
export const undeletableNamespaces: ReadonlySet<string> = new Set([
  'default',
  'kube-system',
  'kube-public',
]);

export class NamespaceLifecycle {
  readonly #terminating = new Set<string>();
  readonly #inFlight = new Map<string, number>();
  readonly #drainWaiters = new Map<string, (() => void)[]>();

  constructor(private readonly store: Store) {}

  /**
   * Runs `create`, a write of a new `resource` object named `name` into
   * `namespace`: 404 NotFound when the namespace does not exist, 403
   * Forbidden while it is being deleted. A namespace deletion waits for the
   * creations already admitted, so none lands after its sweep.
   */
  async admitCreate<T>(
    namespace: string,
    resource: ResourceType,
    name: string,
    create: () => Promise<T>,
  ): Promise<T> {
    const type = namespaceType();
    const found = await getObject(this.store, type, undefined, namespace);
    if (!found) throw notFound(type, namespace);
    if (this.#terminating.has(namespace) || found.object.metadata.deletionTimestamp) {
      throw forbidden(
        resource,
        name,
        `unable to create new content in namespace ${namespace} because it is being terminated`,
      );
    }
    this.#inFlight.set(namespace, (this.#inFlight.get(namespace) ?? 0) + 1);
    try {
      return await create();
    } finally {
      const left = (this.#inFlight.get(namespace) ?? 1) - 1;
      if (left > 0) {
        this.#inFlight.set(namespace, left);
      } else {
        this.#inFlight.delete(namespace);
        for (const wake of this.#drainWaiters.get(namespace) ?? []) wake();
        this.#drainWaiters.delete(namespace);
      }
    }
  }

  /**
   * Deletes every object in `namespace`, then runs `finish` (which deletes
   * the Namespace itself) while new content is still refused.
   */
  async terminate<T>(namespace: string, finish: () => Promise<T>): Promise<T> {
    this.#terminating.add(namespace);
    try {
      if (this.#inFlight.has(namespace)) {
        await new Promise<void>((resolve) => {
          const waiters = this.#drainWaiters.get(namespace) ?? [];
          waiters.push(resolve);
          this.#drainWaiters.set(namespace, waiters);
        });
      }
      await this.#deleteContents(namespace);
      return await finish();
    } finally {
      this.#terminating.delete(namespace);
    }
  }

  /**
   * Everything in the namespace goes at once, pods included: nothing waits
   * for graceful termination (upstream's namespace controller deletes pods
   * gracefully and keeps the namespace Terminating until they are gone).
   */
  async #deleteContents(namespace: string): Promise<void> {
    for (const resource of resources.filter((r) => r.namespaced)) {
      const listed = await this.store.list(storagePrefix(resource, namespace));
      for (const kv of listed.items) {
        try {
          await this.store.delete(kv.key);
        } catch (error) {
          if (!(error instanceof KeyNotFoundError)) throw error;
        }
      }
    }
  }
}

/** Creates the namespaces every cluster starts with, when missing. */
export async function ensureNamespaces(store: Store, names: readonly string[]): Promise<void> {
  const type = namespaceType();
  for (const name of names) {
    if (await store.get(storageKey(type, undefined, name))) continue;
    const namespace: KubeObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
    type.applyDefaults(namespace);
    prepareForCreate(type, namespace);
    try {
      await createObject(store, type, namespace);
    } catch (error) {
      // Another server sharing the store made it first.
      if (!(error instanceof ApiStatusError && error.status.reason === 'AlreadyExists'))
        throw error;
    }
  }
}
