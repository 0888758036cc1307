/**
 * An informer, as client-go's SharedIndexInformer: one list + watch of a kind
 * (the client's ResourceWatch, which resumes and re-lists by itself), a cache
 * of every object by key and by namespace, and handlers told of each change.
 * Handlers run synchronously in event order and only enqueue keys, as
 * upstream's event handlers do; controllers read the cache, never the
 * events.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeObject } from '../api/types.js';
import type { ApiClient } from './client.js';
import type { ResourceRef } from './paths.js';
import type { ResourceWatch, WatchEvent } from './watch.js';

export interface InformerHandlers<T extends KubeObject> {
  added?(object: T): void;
  updated?(old: T, object: T): void;
  deleted?(object: T): void;
}

/** `namespace/name`, or `name` for a cluster-scoped object (cache.MetaNamespaceKeyFunc). */
export function objectKey(object: KubeObject): string {
  const { namespace, name } = object.metadata;
  return namespace ? `${namespace}/${name ?? ''}` : (name ?? '');
}

export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const slash = key.indexOf('/');
  return slash < 0
    ? { namespace: undefined, name: key }
    : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export class Informer<T extends KubeObject = KubeObject> {
  readonly #objects = new Map<string, T>();
  readonly #byNamespace = new Map<string, Map<string, T>>();
  readonly #handlers: InformerHandlers<T>[] = [];
  readonly #stop = new AbortController();
  #watch: ResourceWatch<T> | undefined;
  #running: Promise<void> | undefined;

  constructor(
    private readonly client: ApiClient,
    readonly resource: ResourceRef,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Registers handlers. Objects already cached are handed to `added` at once
   * (client-go's AddEventHandler), so a handler registered on a running
   * informer sees the same state as one registered before start().
   */
  on(handlers: InformerHandlers<T>): void {
    this.#handlers.push(handlers);
    if (handlers.added) for (const object of this.#objects.values()) handlers.added(object);
  }

  get(key: string): T | undefined {
    return this.#objects.get(key);
  }

  /** Every cached object, or those of one namespace. */
  list(namespace?: string): T[] {
    if (namespace === undefined) return [...this.#objects.values()];
    return [...(this.#byNamespace.get(namespace)?.values() ?? [])];
  }

  /** Starts listing and watching; resolves once the first listing is cached (HasSynced). */
  start(): Promise<void> {
    if (this.#running) throw new Error(`The ${this.resource.plural} informer was started twice`);
    return new Promise((resolve, reject) => {
      this.#running = this.#run(resolve, reject);
    });
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#watch?.close();
    await this.#running;
  }

  /**
   * One ResourceWatch after another: a watch only ends when the server
   * refuses it, and then a new one re-lists after a pause. Whatever a new
   * listing lacks was deleted meanwhile and is reported so.
   */
  async #run(synced: () => void, failed: (error: unknown) => void): Promise<void> {
    let first = true;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      const watch = this.client.watch<T>(this.resource, { signal });
      this.#watch = watch;
      const seen = new Set<string>();
      let listed = false;
      // ResourceWatch sets its resourceVersion from the listing before it
      // yields the listed objects, and yields them without any I/O between
      // them: so once a timer sees a resourceVersion, every listed object has
      // been handled (they all arrived in microtasks before the timer ran).
      const poll = setInterval(() => {
        if (listed || watch.resourceVersion === undefined) return;
        listed = true;
        clearInterval(poll);
        this.#forgetUnseen(seen);
        if (first) {
          first = false;
          synced();
        }
      }, 2);
      try {
        for await (const event of watch) {
          if (!listed && event.type !== 'DELETED') seen.add(objectKey(event.object));
          this.#apply(event);
        }
      } catch (error) {
        if (first) {
          clearInterval(poll);
          failed(error);
          return;
        }
        this.log(
          `informer: the ${this.resource.plural} watch failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      } finally {
        clearInterval(poll);
      }
      if (first && signal.aborted) {
        failed(new Error(`The ${this.resource.plural} informer stopped before its first listing`));
        return;
      }
      try {
        await sleep(1000, undefined, { signal });
      } catch {
        return;
      }
    }
  }

  /** After a fresh listing: objects cached but not listed are gone. */
  #forgetUnseen(seen: Set<string>): void {
    for (const [key, object] of [...this.#objects]) {
      if (!seen.has(key)) this.#apply({ type: 'DELETED', object });
    }
  }

  #apply(event: WatchEvent<T>): void {
    const object = event.object;
    const key = objectKey(object);
    const namespace = object.metadata.namespace ?? '';
    const old = this.#objects.get(key);
    if (event.type === 'DELETED') {
      if (!old) return;
      this.#objects.delete(key);
      this.#byNamespace.get(namespace)?.delete(key);
      this.#notify((h) => h.deleted?.(object));
      return;
    }
    if (event.type === 'BOOKMARK') return;
    if (old && old.metadata.resourceVersion === object.metadata.resourceVersion) return;
    this.#objects.set(key, object);
    let inNamespace = this.#byNamespace.get(namespace);
    if (!inNamespace) {
      inNamespace = new Map();
      this.#byNamespace.set(namespace, inNamespace);
    }
    inNamespace.set(key, object);
    if (old) this.#notify((h) => h.updated?.(old, object));
    else this.#notify((h) => h.added?.(object));
  }

  #notify(call: (handlers: InformerHandlers<T>) => void): void {
    for (const handlers of this.#handlers) {
      try {
        call(handlers);
      } catch (error) {
        this.log(
          `informer: a ${this.resource.kind} handler failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
  }
}

/**
 * One informer per resource for all the parts of a process, as client-go's
 * SharedInformerFactory: the node agent's NetworkPolicy enforcer, Service
 * proxy and mesh watch Pods and Namespaces through the same list and watch
 * instead of one each. Parts register handlers and ask for a start; the
 * owner stops them all once.
 */
export class SharedInformers {
  readonly #informers = new Map<string, Informer>();
  readonly #started = new Map<Informer, Promise<void>>();

  constructor(
    private readonly client: ApiClient,
    private readonly log: (line: string) => void,
  ) {}

  /** The process's informer for the resource, made on first use. */
  informer(resource: ResourceRef): Informer {
    const key = `${resource.group}/${resource.plural}`;
    let informer = this.#informers.get(key);
    if (!informer) {
      informer = new Informer(this.client, resource, this.log);
      this.#informers.set(key, informer);
    }
    return informer;
  }

  /** Starts the informer unless it runs already; resolves once its first listing is cached. */
  start(informer: Informer): Promise<void> {
    let started = this.#started.get(informer);
    if (!started) {
      started = informer.start();
      this.#started.set(informer, started);
    }
    return started;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#informers.values()].map((informer) => informer.stop()));
  }
}
