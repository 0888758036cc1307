/**
 * A long-lived watch of a collection, as client-go's reflector keeps one:
 *
 * - Without a starting resourceVersion it lists first and reports every
 *   object as ADDED, then watches from the list's resourceVersion.
 * - When a stream ends (the server's timeout, a restart, a dropped
 *   connection) it reconnects from the last resourceVersion it saw (BOOKMARK
 *   events advance it too), so nothing is missed or repeated.
 * - When the server answers 410 (that resourceVersion is compacted away), or
 *   "Too large resource version" (it is beyond the server's: a server that
 *   lost its state), it re-lists and reports the difference from what it had
 *   reported: ADDED and MODIFIED for objects new or changed, DELETED for
 *   objects gone, as client-go's reflector does.
 * - Failures are retried with exponential backoff; a request the server
 *   rejects outright (404 unknown resource, 400 bad selector) ends the
 *   iteration with that ApiError.
 */
import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { type KubeObject, apiVersionOf } from '../api/types.js';
import type { Status } from '../apiserver/status.js';
import type { ApiClient, ListOptions } from './client.js';
import { ApiError } from './errors.js';
import { type ResourceRef, resourcePath, selectorText, withQuery } from './paths.js';
import type { HttpTransport } from './transport.js';

export interface WatchEvent<T extends KubeObject = KubeObject> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
  /** For BOOKMARK, only apiVersion, kind and metadata.resourceVersion. */
  object: T;
}

export interface WatchOptions extends ListOptions {
  /** Start after this resourceVersion; without it, list first (every object arrives as ADDED). */
  resourceVersion?: string;
  /** Also yield BOOKMARK events (they advance the resourceVersion either way). */
  bookmarks?: boolean;
  /** Each watch request's timeoutSeconds; by default 300-600 at random, as client-go's reflector. */
  timeoutSeconds?: number;
  /** Ends the watch, as close() does. */
  signal?: AbortSignal;
  /** The first reconnection delay after a failure (doubling up to maxRetryDelayMs); 200 ms by default. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
}

/** A watch stream's ERROR event: retried, unlike a request the server refused. */
class WatchStreamError extends Error {
  constructor(readonly status: Status) {
    super(status.message ?? `watch failed with ${status.code}`);
    this.name = 'WatchStreamError';
  }
}

/** Newline-delimited JSON from a watch response. */
async function* readLines(res: IncomingMessage): AsyncGenerator {
  res.setEncoding('utf8');
  let buffered = '';
  for await (const chunk of res as AsyncIterable<string>) {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line !== '') yield JSON.parse(line) as unknown;
      newline = buffered.indexOf('\n');
    }
  }
  if (buffered.trim() !== '') yield JSON.parse(buffered) as unknown;
}

function objectKey(object: KubeObject): string {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name ?? ''}`;
}

/** 410 Gone/Expired, or 504 with cause ResourceVersionTooLarge: only a re-list helps. */
function needsRelist(status: Status): boolean {
  return (
    status.code === 410 ||
    (status.details?.causes ?? []).some((cause) => cause.reason === 'ResourceVersionTooLarge')
  );
}

/** Whether a failed request should end the watch rather than be retried. */
function refused(error: unknown): boolean {
  return (
    error instanceof ApiError &&
    error.code >= 400 &&
    error.code < 500 &&
    ![408, 410, 429].includes(error.code)
  );
}

export class ResourceWatch<T extends KubeObject = KubeObject> implements AsyncIterable<
  WatchEvent<T>
> {
  readonly #abort = new AbortController();
  /** What this watch has reported as existing: the baseline a re-list is compared with. */
  readonly #known = new Map<string, T>();
  #resourceVersion: string | undefined;
  #started = false;

  constructor(
    private readonly client: ApiClient,
    private readonly http: HttpTransport,
    private readonly resource: ResourceRef,
    private readonly options: WatchOptions,
  ) {
    this.#resourceVersion = options.resourceVersion;
    const signal = options.signal;
    if (signal?.aborted) this.close();
    signal?.addEventListener(
      'abort',
      () => {
        this.close();
      },
      { once: true },
    );
  }

  /** The last resourceVersion seen: where a new watch would resume. */
  get resourceVersion(): string | undefined {
    return this.#resourceVersion;
  }

  /** Ends the watch: the iteration finishes and the open request is aborted. */
  close(): void {
    this.#abort.abort();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent<T>> {
    if (this.#started) throw new Error('A ResourceWatch can be iterated only once');
    this.#started = true;
    return this.#events();
  }

  #retryDelay(failures: number): number {
    const first = this.options.retryDelayMs ?? 200;
    const max = this.options.maxRetryDelayMs ?? 5000;
    return Math.min(max, first * 2 ** Math.max(0, failures - 1));
  }

  async *#events(): AsyncGenerator<WatchEvent<T>, void> {
    const signal = this.#abort.signal;
    let needsList = this.#resourceVersion === undefined;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (needsList) {
          yield* this.#relist();
          needsList = false;
        }
        const opened = Date.now();
        let delivered = 0;
        const res = await this.http.stream(this.#watchPath(), signal);
        try {
          for await (const line of readLines(res)) {
            const event = line as { type: string; object: KubeObject | Status };
            if (event.type === 'ERROR') {
              const status = event.object as Status;
              if (needsRelist(status)) {
                needsList = true;
                break;
              }
              throw new WatchStreamError(status);
            }
            delivered++;
            failures = 0;
            const reported = this.#record(event as WatchEvent<T>);
            if (reported) yield reported;
          }
        } finally {
          res.destroy();
        }
        if (needsList || delivered > 0 || Date.now() - opened >= 1000) continue;
        // Ended at once with nothing: back off rather than spin.
        failures++;
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof ApiError && needsRelist(error.status)) {
          needsList = true;
          continue;
        }
        if (refused(error)) throw error;
        failures++;
      }
      try {
        await sleep(this.#retryDelay(failures), undefined, { signal });
      } catch {
        return;
      }
    }
  }

  /** Tracks an event; returns it when it is to be yielded. */
  #record(event: WatchEvent<T>): WatchEvent<T> | undefined {
    const version = event.object.metadata.resourceVersion;
    if (version) this.#resourceVersion = version;
    if (event.type === 'BOOKMARK') return this.options.bookmarks ? event : undefined;
    if (event.type === 'DELETED') this.#known.delete(objectKey(event.object));
    else this.#known.set(objectKey(event.object), event.object);
    return event;
  }

  /** Lists, and yields how the list differs from what was reported before. */
  async *#relist(): AsyncGenerator<WatchEvent<T>, void> {
    const { namespace, labelSelector, fieldSelector } = this.options;
    const list = await this.client.list<T>(this.resource, {
      namespace,
      labelSelector,
      fieldSelector,
    });
    const events: WatchEvent<T>[] = [];
    const listed = new Set<string>();
    for (const item of list.items) {
      // Typed lists from a Kubernetes API server leave these out of items.
      item.apiVersion ||= apiVersionOf(this.resource);
      item.kind ||= this.resource.kind;
      const key = objectKey(item);
      listed.add(key);
      const before = this.#known.get(key);
      if (!before) events.push({ type: 'ADDED', object: item });
      else if (before.metadata.resourceVersion !== item.metadata.resourceVersion) {
        events.push({ type: 'MODIFIED', object: item });
      }
      this.#known.set(key, item);
    }
    for (const [key, before] of this.#known) {
      if (listed.has(key)) continue;
      this.#known.delete(key);
      events.push({ type: 'DELETED', object: before });
    }
    this.#resourceVersion = list.metadata.resourceVersion;
    yield* events;
  }

  #watchPath(): string {
    const { namespace, labelSelector, fieldSelector, timeoutSeconds } = this.options;
    return withQuery(resourcePath(this.resource, { namespace }), {
      watch: '1',
      resourceVersion: this.#resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(timeoutSeconds ?? 300 + Math.floor(Math.random() * 300)),
      labelSelector: labelSelector && selectorText(labelSelector),
      fieldSelector: fieldSelector && selectorText(fieldSelector),
    });
  }
}
