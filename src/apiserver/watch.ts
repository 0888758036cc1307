/**
 * WATCH (`?watch=1` or a /watch/ path): a 200 response streaming one JSON
 * event per line, `{"type": "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR",
 * "object": ...}`, as kube-apiserver streams them.
 *
 * - resourceVersion unset or "0": an ADDED event for every current object,
 *   then changes. sendInitialEvents=true does the same for any
 *   resourceVersion and marks the end of the initial events with a BOOKMARK
 *   annotated `k8s.io/initial-events-end` (the streaming list); =false with
 *   no resourceVersion starts at the latest revision without them. resourceVersion=N: every change after N, from the store's
 *   history, then live ones. N older than that history: one ERROR event
 *   holding a 410 Expired Status, and the stream ends (the client re-lists).
 * - Selectors apply to both the old and the new object, as upstream's
 *   cacher: an object that starts matching arrives as ADDED, one that stops
 *   matching as DELETED (its last matching state at the new resourceVersion).
 * - allowWatchBookmarks=true: BOOKMARK events (an object with only
 *   metadata.resourceVersion) say every change up to there was sent.
 * - timeoutSeconds ends the stream; without it the server's default does.
 *   The store watch is cancelled when the stream ends or the client goes.
 */
import type { ServerResponse } from 'node:http';
import { type KubeObject, type ResourceType, apiVersionOf } from '../api/types.js';
import { CompactedError, type Watch, type WatchEvent } from '../store/store.js';
import type { ApiContext } from './context.js';
import { type ListFilter, matchesFilter, parseListFilter } from './get.js';
import {
  ApiStatusError,
  type Status,
  badRequest,
  expired,
  internalError,
  invalid,
  tooLargeResourceVersion,
} from './status.js';
import { decodeObject, listObjects, storagePrefix } from './storage.js';
import { parseResourceVersion } from './strategy.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/** One line of a watch stream; ERROR events carry a Status. */
export interface WatchEventLine {
  type: WatchEventType;
  object: KubeObject | Status;
}

interface WatchRequest {
  resource: ResourceType;
  namespace?: string;
  /** A watch of one object (`/pods/<name>?watch=1`). */
  name?: string;
}

function isTrue(value: string | null): boolean {
  return value === 'true' || value === '1';
}

function timeoutSeconds(query: URLSearchParams, fallback: number): number {
  const text = query.get('timeoutSeconds');
  if (text === null || text === '') return fallback;
  if (!/^\d+$/.test(text))
    throw badRequest(`timeoutSeconds must be a non-negative integer: got "${text}"`);
  return Number(text) || fallback;
}

/** Turns a store event into what this watcher sees, given its selectors (cacher's convertToWatchEvent). */
function toWatchEvent(
  event: WatchEvent,
  resource: ResourceType,
  filter: ListFilter,
): WatchEventLine | undefined {
  const revision = event.kv.modRevision;
  const previous = event.prev ? decodeObject(event.prev, revision) : undefined;
  const previousMatched = previous !== undefined && matchesFilter(filter, resource, previous);
  if (event.type === 'delete') {
    return previous && previousMatched ? { type: 'DELETED', object: previous } : undefined;
  }
  const object = decodeObject(event.kv);
  const matches = matchesFilter(filter, resource, object);
  if (matches) return { type: previousMatched ? 'MODIFIED' : 'ADDED', object };
  return previous && previousMatched ? { type: 'DELETED', object: previous } : undefined;
}

/** Whether a GET asks for a watch rather than a read. */
export function wantsWatch(query: URLSearchParams): boolean {
  return isTrue(query.get('watch'));
}

export async function handleWatch(
  ctx: ApiContext,
  res: ServerResponse,
  target: WatchRequest,
  query: URLSearchParams,
): Promise<void> {
  const { resource, namespace, name } = target;
  const filter = parseListFilter(query, resource);
  if (name !== undefined) {
    filter.fields = [...filter.fields, { field: 'metadata.name', operator: 'Equals', value: name }];
  }
  const requested = query.get('resourceVersion') ?? '';
  const fromRevision =
    requested === '' || requested === '0' ? undefined : parseResourceVersion(requested);
  const timeout = timeoutSeconds(query, ctx.watch.defaultTimeoutSeconds);
  const bookmarks = isTrue(query.get('allowWatchBookmarks'));
  // sendInitialEvents (the streaming list): the current objects, then a
  // BOOKMARK annotated k8s.io/initial-events-end, then changes.
  const initialEvents = query.get('sendInitialEvents');
  if (isTrue(initialEvents) && !bookmarks) {
    throw invalid({ group: 'meta.k8s.io', kind: 'ListOptions' }, '', [
      {
        field: 'allowWatchBookmarks',
        type: 'Forbidden',
        detail: 'allowWatchBookmarks must be set to true when sendInitialEvents is set',
      },
    ]);
  }
  const sendInitial =
    isTrue(initialEvents) || (initialEvents === null && fromRevision === undefined);
  let lastRevision = sendInitial ? 0 : (fromRevision ?? ctx.store.revision());

  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' });
  res.flushHeaders();

  let storeWatch: Watch | undefined;
  const timers: NodeJS.Timeout[] = [];
  let closed = false;
  const stop = (): void => {
    if (closed) return;
    closed = true;
    storeWatch?.cancel();
    for (const timer of timers) clearTimeout(timer);
    ctx.openWatches.delete(stop);
    res.end();
  };
  res.on('close', stop);
  ctx.openWatches.add(stop);

  const send = (line: WatchEventLine): void => {
    if (closed) return;
    res.write(`${JSON.stringify(line)}\n`);
    // A client that does not read is dropped rather than buffered without bound.
    if (res.writableLength > ctx.watch.maxBufferedBytes) stop();
  };
  const fail = (error: unknown): void => {
    const status =
      error instanceof ApiStatusError ? error.status : internalError(String(error)).status;
    send({ type: 'ERROR', object: status });
    stop();
  };

  const bookmark = (annotations?: Record<string, string>): void => {
    const metadata = { resourceVersion: String(lastRevision), ...(annotations && { annotations }) };
    send({
      type: 'BOOKMARK',
      object: { apiVersion: apiVersionOf(resource), kind: resource.kind, metadata },
    });
  };

  try {
    const current = ctx.store.revision();
    if (fromRevision !== undefined && fromRevision > current) {
      throw tooLargeResourceVersion(fromRevision, current);
    }
    if (sendInitial) {
      const listed = await listObjects(ctx.store, resource, namespace);
      for (const object of listed.items) {
        if (matchesFilter(filter, resource, object)) send({ type: 'ADDED', object });
      }
      lastRevision = listed.revision;
      if (isTrue(initialEvents)) bookmark({ 'k8s.io/initial-events-end': 'true' });
    }
    if (closed) return;
    storeWatch = ctx.store.watch(storagePrefix(resource, namespace), lastRevision, (event) => {
      // Runs inside the store's write path: nothing may throw back into it.
      try {
        lastRevision = event.kv.modRevision;
        const line = toWatchEvent(event, resource, filter);
        if (line) send(line);
      } catch (error) {
        fail(error);
      }
    });
  } catch (error) {
    if (error instanceof CompactedError) {
      fail(expired(error.requested, error.compacted + 1));
      return;
    }
    fail(error);
    return;
  }

  // The history replay may already have ended the stream (a client not reading).
  if (closed) {
    storeWatch.cancel();
    return;
  }
  timers.push(setTimeout(stop, timeout * 1000));
  if (bookmarks) {
    timers.push(
      setInterval(() => {
        bookmark();
      }, ctx.watch.bookmarkIntervalMs),
    );
  }
}
