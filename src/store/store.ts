/**
 * The datastore interface the API server is built on: a revisioned
 * key-value store with watches, shaped like etcd's (one global revision that
 * every write advances; each key remembers the revision that created it and
 * the one that last changed it), so an etcd implementation can fill it in.
 * Values are opaque strings (the API server stores JSON).
 */

export interface StoredValue {
  key: string;
  value: string;
  /** The revision of the write that created the key. */
  createRevision: number;
  /** The revision of the write that last changed the key (Kubernetes' resourceVersion). */
  modRevision: number;
}

export type WatchEvent =
  | { type: 'put'; kv: StoredValue; prev?: StoredValue }
  | { type: 'delete'; kv: StoredValue; prev: StoredValue };

export interface Watch {
  /** Stops delivering events; safe to call twice. */
  cancel(): void;
}

export interface ListResult {
  items: StoredValue[];
  /** The store's revision when the list was taken: watch from here to miss nothing. */
  revision: number;
}

export interface Store {
  /** The current revision (0 for an empty store that was never written). */
  revision(): number;
  get(key: string): Promise<StoredValue | undefined>;
  /** Every key starting with `prefix`, in key order. */
  list(prefix: string): Promise<ListResult>;
  /** Creates `key`; KeyExistsError if it exists. Resolves once the write is durable. */
  create(key: string, value: string): Promise<StoredValue>;
  /**
   * Replaces `key`'s value; KeyNotFoundError if absent; RevisionConflictError
   * when `expectedModRevision` is given and differs from the key's.
   */
  update(key: string, value: string, expectedModRevision?: number): Promise<StoredValue>;
  /** Deletes `key` and returns what it held; same errors as update. */
  delete(key: string, expectedModRevision?: number): Promise<StoredValue>;
  /**
   * Calls `onEvent` for every change under `prefix` after `fromRevision`
   * (exclusive), first the ones already in history, then live ones, in
   * revision order. CompactedError if that history is gone.
   */
  watch(prefix: string, fromRevision: number, onEvent: (event: WatchEvent) => void): Watch;
  close(): Promise<void>;
}

/** The values whose keys start with `prefix`, in key order: every Store's `list`. */
export function listByPrefix(
  values: Iterable<StoredValue>,
  prefix: string,
  revision: number,
): ListResult {
  const items = [...values]
    .filter((kv) => kv.key.startsWith(prefix))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { items, revision };
}

export class KeyExistsError extends Error {
  constructor(readonly key: string) {
    super(`${key} already exists`);
    this.name = 'KeyExistsError';
  }
}

export class KeyNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`${key} not found`);
    this.name = 'KeyNotFoundError';
  }
}

export class RevisionConflictError extends Error {
  constructor(
    readonly key: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`${key} was modified: expected revision ${expected}, it is at ${actual}`);
    this.name = 'RevisionConflictError';
  }
}

/** The revision a watch asked for is older than the history the store keeps (HTTP 410 Gone). */
export class CompactedError extends Error {
  constructor(
    readonly requested: number,
    readonly compacted: number,
  ) {
    super(`revision ${requested} has been compacted; the oldest available is ${compacted + 1}`);
    this.name = 'CompactedError';
  }
}
