// The API server under test: a real server on port 0 over a MemoryStore
// that counts its open watches, and the HTTP calls the apiserver tests make
// (fetch, as any plain HTTP client would).
import assert from 'node:assert/strict';
import type { KubeObject } from '../../src/api/types.js';
import { type RunningApiServer, startApiServer } from '../../src/apiserver/server.js';
import type { StatusDetails } from '../../src/apiserver/status.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { Watch, WatchEvent } from '../../src/store/store.js';

/** A MemoryStore that counts open watches, to see the server cancel them. */
export class CountingStore extends MemoryStore {
  openWatches = 0;
  override watch(prefix: string, from: number, onEvent: (e: WatchEvent) => void): Watch {
    const inner = super.watch(prefix, from, onEvent);
    this.openWatches++;
    let open = true;
    return {
      cancel: () => {
        if (open) this.openWatches--;
        open = false;
        inner.cancel();
      },
    };
  }
}

/** A response body: an object, a list, a Status or a discovery document. */
export type Json = KubeObject & {
  items: KubeObject[];
  code: number;
  reason: string;
  message: string;
  details: StatusDetails;
  versions: string[];
  groups: { name: string; preferredVersion: unknown }[];
  resources: { name: string; kind: string; namespaced: boolean; verbs: string[] }[];
  major: string;
  gitVersion: string;
  text: string;
};

export interface Reply {
  code: number;
  body: Json;
}

export interface Event {
  type: string;
  object: Json;
}

/** What a test sends. */
export type Manifest = Record<string, unknown>;

let server: RunningApiServer;
let store: CountingStore;

export async function call(
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<Reply> {
  const res = await fetch(server.url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': contentType },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { code: res.status, body: (text.startsWith('{') ? JSON.parse(text) : { text }) as Json };
}

/** Asserts a Status failure with this code and reason. */
export function assertStatus(reply: Reply, code: number, reason: string): Json {
  assert.equal(reply.code, code, JSON.stringify(reply.body));
  assert.equal(reply.body.kind, 'Status');
  assert.equal(reply.body.apiVersion, 'v1');
  assert.equal(reply.body.status, 'Failure');
  assert.equal(reply.body.code, code);
  assert.equal(reply.body.reason, reason);
  return reply.body;
}

export function pod(
  name: string,
  labels: Record<string, string> = {},
  spec: Manifest = {},
): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels },
    spec: { containers: [{ name: 'c', image: 'i' }], ...spec },
  };
}

export async function createIn(
  namespace: string,
  object: Manifest,
  plural = 'pods',
): Promise<Json> {
  const reply = await call('POST', `/api/v1/namespaces/${namespace}/${plural}`, object);
  assert.equal(reply.code, 201, JSON.stringify(reply.body));
  return reply.body;
}

export async function createNamespace(name: string): Promise<void> {
  const reply = await call('POST', '/api/v1/namespaces', { metadata: { name } });
  assert.equal(reply.code, 201, JSON.stringify(reply.body));
}

/** A watch stream read line by line. */
export function openWatch(path: string): {
  next(count: number): Promise<Event[]>;
  close(): void;
  ended: Promise<void>;
} {
  const abort = new AbortController();
  const events: Event[] = [];
  let wake: (() => void) | undefined;
  const ended = (async () => {
    try {
      const res = await fetch(server.url + path, { signal: abort.signal });
      assert.equal(res.status, 200);
      const decoder = new TextDecoder();
      let buffered = '';
      for await (const chunk of res.body ?? []) {
        buffered += decoder.decode(chunk as Uint8Array, { stream: true });
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) if (line) events.push(JSON.parse(line) as Event);
        wake?.();
      }
    } catch (error) {
      if (!abort.signal.aborted) throw error;
    } finally {
      wake?.();
    }
  })();
  return {
    ended,
    close: () => {
      abort.abort();
    },
    async next(count) {
      const deadline = Date.now() + 3000;
      while (events.length < count) {
        if (Date.now() > deadline)
          assert.fail(`only ${events.length} of ${count} watch events: ${JSON.stringify(events)}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
      }
      return events.splice(0, count);
    },
  };
}

/** Starts the server for this test file (one per process); `stopTestServer` in `after`. */
export async function startTestServer(): Promise<void> {
  store = new CountingStore({ historyLimit: 50 });
  server = await startApiServer({
    store,
    listen: { host: '127.0.0.1', port: 0 },
    watch: { bookmarkIntervalMs: 100 },
  });
}

export async function stopTestServer(): Promise<void> {
  await server.close();
}

export function serverUrl(): string {
  return server.url;
}

export function testStore(): CountingStore {
  return store;
}
