/**
 * A Store held in memory: the reference behaviour of the interface, for
 * tests and for a throw-away cluster. Not durable.
 */
import {
  CompactedError,
  KeyExistsError,
  KeyNotFoundError,
  type ListResult,
  RevisionConflictError,
  type Store,
  type StoredValue,
  type Watch,
  type WatchEvent,
  listByPrefix,
} from './store.js';

interface Watcher {
  prefix: string;
  onEvent: (event: WatchEvent) => void;
}

export class MemoryStore implements Store {
  #revision = 0;
  readonly #data = new Map<string, StoredValue>();
  readonly #history: WatchEvent[] = [];
  /** Events at or below this revision are no longer kept. */
  #compacted = 0;
  readonly #watchers = new Set<Watcher>();
  readonly #historyLimit: number;

  constructor(options: { historyLimit?: number } = {}) {
    this.#historyLimit = options.historyLimit ?? 10_000;
  }

  revision(): number {
    return this.#revision;
  }

  get(key: string): Promise<StoredValue | undefined> {
    return Promise.resolve(this.#data.get(key));
  }

  list(prefix: string): Promise<ListResult> {
    return Promise.resolve(listByPrefix(this.#data.values(), prefix, this.#revision));
  }

  create(key: string, value: string): Promise<StoredValue> {
    if (this.#data.has(key)) return Promise.reject(new KeyExistsError(key));
    const revision = ++this.#revision;
    const kv: StoredValue = { key, value, createRevision: revision, modRevision: revision };
    this.#data.set(key, kv);
    this.#emit({ type: 'put', kv });
    return Promise.resolve(kv);
  }

  update(key: string, value: string, expectedModRevision?: number): Promise<StoredValue> {
    const prev = this.#data.get(key);
    if (!prev) return Promise.reject(new KeyNotFoundError(key));
    if (expectedModRevision !== undefined && expectedModRevision !== prev.modRevision) {
      return Promise.reject(new RevisionConflictError(key, expectedModRevision, prev.modRevision));
    }
    const revision = ++this.#revision;
    const kv: StoredValue = {
      key,
      value,
      createRevision: prev.createRevision,
      modRevision: revision,
    };
    this.#data.set(key, kv);
    this.#emit({ type: 'put', kv, prev });
    return Promise.resolve(kv);
  }

  delete(key: string, expectedModRevision?: number): Promise<StoredValue> {
    const prev = this.#data.get(key);
    if (!prev) return Promise.reject(new KeyNotFoundError(key));
    if (expectedModRevision !== undefined && expectedModRevision !== prev.modRevision) {
      return Promise.reject(new RevisionConflictError(key, expectedModRevision, prev.modRevision));
    }
    const revision = ++this.#revision;
    this.#data.delete(key);
    const kv: StoredValue = { ...prev, value: '', modRevision: revision };
    this.#emit({ type: 'delete', kv, prev });
    return Promise.resolve(prev);
  }

  watch(prefix: string, fromRevision: number, onEvent: (event: WatchEvent) => void): Watch {
    if (fromRevision < this.#compacted) throw new CompactedError(fromRevision, this.#compacted);
    const watcher: Watcher = { prefix, onEvent };
    for (const event of this.#history) {
      if (event.kv.modRevision > fromRevision && event.kv.key.startsWith(prefix)) onEvent(event);
    }
    this.#watchers.add(watcher);
    return {
      cancel: () => {
        this.#watchers.delete(watcher);
      },
    };
  }

  close(): Promise<void> {
    this.#watchers.clear();
    return Promise.resolve();
  }

  #emit(event: WatchEvent): void {
    this.#history.push(event);
    while (this.#history.length > this.#historyLimit) {
      const dropped = this.#history.shift();
      if (dropped) this.#compacted = dropped.kv.modRevision;
    }
    for (const w of [...this.#watchers]) {
      if (event.kv.key.startsWith(w.prefix)) w.onEvent(event);
    }
  }
}
