// ApiClient against a real API server (MemoryStore, TCP on port 0 or a temp
// unix socket): every verb, ApiError's Status, and a watch that survives the
// server ending its stream, restarting, and compacting the history it needs.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { resourceForKind } from '../../src/api/registry.js';
import type { KubeObject, ResourceType } from '../../src/api/types.js';
import { type RunningApiServer, startApiServer } from '../../src/apiserver/server.js';
import { createObject } from '../../src/apiserver/storage.js';
import {
  ApiClient,
  ApiError,
  type WatchEvent,
  isAlreadyExists,
  isConflict,
  isInvalid,
  isNotFound,
} from '../../src/client/index.js';
import { MemoryStore } from '../../src/store/memory.js';

function resource(apiVersion: string, kind: string): ResourceType {
  const found = resourceForKind(apiVersion, kind);
  assert.ok(found, `${apiVersion} ${kind}`);
  return found;
}
const pods = resource('v1', 'Pod');
const namespaces = resource('v1', 'Namespace');

function pod(name: string, labels: Record<string, string> = {}, namespace = 'default'): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels },
    spec: { containers: [{ name: 'c', image: 'i' }] },
  };
}

/** Reads `count` events from a watch iterator, failing after `ms`. */
async function take(
  events: AsyncIterator<WatchEvent>,
  count: number,
  ms = 5000,
): Promise<[string, string][]> {
  const out: [string, string][] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`only ${out.length} of ${count} events: ${JSON.stringify(out)}`));
    }, ms);
  });
  try {
    while (out.length < count) {
      const next = await Promise.race([events.next(), timeout]);
      if (next.done) throw new Error(`the watch ended after ${JSON.stringify(out)}`);
      out.push([next.value.type, next.value.object.metadata.name ?? '']);
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-client-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('ApiClient verbs', () => {
  let server: RunningApiServer;
  let client: ApiClient;
  before(async () => {
    server = await startApiServer({
      store: new MemoryStore(),
      listen: { host: '127.0.0.1', port: 0 },
    });
    client = new ApiClient(server.url);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('creates, gets, lists with selectors, updates, patches and deletes', async () => {
    const created = await client.create(pod('one', { app: 'web' }));
    assert.equal(created.metadata.namespace, 'default');
    await client.create(pod('two', { app: 'db' }));
    const got = await client.get(pods, 'one');
    assert.equal(got.metadata.uid, created.metadata.uid);
    const web = await client.list(pods, { namespace: 'default', labelSelector: { app: 'web' } });
    assert.deepEqual(
      web.items.map((p) => p.metadata.name),
      ['one'],
    );
    const byField = await client.list(pods, { fieldSelector: 'metadata.name=two' });
    assert.deepEqual(
      byField.items.map((p) => p.metadata.name),
      ['two'],
    );
    got.metadata.labels = { app: 'web', v: '2' };
    const updated = await client.update(got);
    assert.equal(updated.metadata.labels?.v, '2');
    const patched = await client.patch(pods, 'one', { metadata: { labels: { v: null } } });
    assert.deepEqual(patched.metadata.labels, { app: 'web' });
    const jsonPatched = await client.patch(
      pods,
      'one',
      [{ op: 'add', path: '/metadata/labels/j', value: 'p' }],
      { type: 'json' },
    );
    assert.equal(jsonPatched.metadata.labels?.j, 'p');
    const withStatus = await client.updateStatus({ ...jsonPatched, status: { phase: 'Running' } });
    assert.equal(withStatus.status?.phase, 'Running');
    const statusPatch = await client.patch(
      pods,
      'one',
      { status: { podIP: '10.1.0.2' } },
      { subresource: 'status' },
    );
    assert.deepEqual(statusPatch.status, { phase: 'Running', podIP: '10.1.0.2' });
    const deleted = await client.delete(pods, 'two');
    assert.equal(deleted.kind, 'Pod');
    await assert.rejects(client.get(pods, 'two'), isNotFound);
    const ns = await client.get(namespaces, 'istio-system');
    assert.equal(ns.metadata.namespace, undefined);
  });

  it('rejects with an ApiError carrying the Status', async () => {
    await assert.rejects(client.create(pod('one')), isAlreadyExists);
    const stale = { ...pod('one'), metadata: { ...pod('one').metadata, resourceVersion: '1' } };
    await assert.rejects(client.update(stale), isConflict);
    const invalid = await client.create(pod('Not_Valid')).catch((e: unknown) => e);
    assert.ok(isInvalid(invalid) && invalid instanceof ApiError);
    assert.equal(invalid.status.details?.causes?.[0]?.field, 'metadata.name');
    assert.equal(invalid.reason, 'Invalid');
    assert.match(invalid.message, /^Pod "Not_Valid" is invalid/);
    assert.equal(invalid.request, 'POST /api/v1/namespaces/default/pods');
    const missing = await client
      .get(pods, 'nope', { namespace: 'nowhere' })
      .catch((e: unknown) => e);
    assert.ok(missing instanceof ApiError);
    assert.equal(missing.code, 404);
    assert.equal(missing.status.details?.name, 'nope');
    assert.throws(
      () => client.create({ apiVersion: 'v9', kind: 'Nope', metadata: {} }),
      /no resource serves/,
    );
  });

  it('deletes a pod gracefully, then for good with gracePeriodSeconds 0', async () => {
    const scheduled = pod('graceful');
    scheduled.spec = { ...scheduled.spec, nodeName: 'node-a' };
    await client.create(scheduled);
    const marked = (await client.delete(pods, 'graceful')) as KubeObject;
    assert.equal(marked.metadata.deletionGracePeriodSeconds, 30);
    assert.ok((await client.get(pods, 'graceful')).metadata.deletionTimestamp);
    await client.delete(pods, 'graceful', { gracePeriodSeconds: 0 });
    await assert.rejects(client.get(pods, 'graceful'), isNotFound);
  });

  it('ends a watch with the ApiError when the server refuses it', async () => {
    const watch = client.watch(pods, { labelSelector: 'app in web' });
    await assert.rejects(
      watch[Symbol.asyncIterator]().next(),
      (e: unknown) => e instanceof ApiError && e.code === 400,
    );
  });

  it('refuses an address it cannot use', () => {
    assert.throws(() => new ApiClient('https://example.test'), /only http and unix sockets/);
    assert.throws(() => new ApiClient('not a url'), /Cannot use API server address/);
  });
});

describe('ApiClient watch', () => {
  const fast = { retryDelayMs: 20, maxRetryDelayMs: 100 };

  it('lists first, then streams changes; close() ends the iteration', async () => {
    const server = await startApiServer({
      store: new MemoryStore(),
      listen: { socketPath: join(dir, 'api.sock') },
    });
    const client = new ApiClient(server.url);
    try {
      await client.create(pod('before'));
      const watch = client.watch(pods, { namespace: 'default', ...fast });
      const events = watch[Symbol.asyncIterator]();
      assert.deepEqual(await take(events, 1), [['ADDED', 'before']]);
      await client.create(pod('after'));
      await client.delete(pods, 'before');
      assert.deepEqual(await take(events, 2), [
        ['ADDED', 'after'],
        ['DELETED', 'before'],
      ]);
      assert.equal(watch.resourceVersion, (await client.list(pods)).metadata.resourceVersion);
      watch.close();
      assert.deepEqual(await events.next(), { done: true, value: undefined });
    } finally {
      client.close();
      await server.close();
    }
  });

  it('resumes from the last resourceVersion when the server ends the stream or restarts', async () => {
    const store = new MemoryStore();
    const socketPath = join(dir, 'api.sock');
    let server = await startApiServer({ store, listen: { socketPath } });
    const side = await startApiServer({ store, listen: { host: '127.0.0.1', port: 0 } });
    const client = new ApiClient({ socketPath });
    const writer = new ApiClient(side.url);
    // timeoutSeconds 1: the server ends each stream after a second.
    const watch = client.watch(pods, { namespace: 'default', timeoutSeconds: 1, ...fast });
    const events = watch[Symbol.asyncIterator]();
    try {
      await writer.create(pod('p0'));
      assert.deepEqual(await take(events, 1), [['ADDED', 'p0']]);
      await new Promise((resolve) => setTimeout(resolve, 1500)); // at least one stream ended
      await writer.create(pod('p1'));
      assert.deepEqual(await take(events, 1), [['ADDED', 'p1']]);
      await server.close(); // the open stream ends and reconnecting fails until the restart
      await writer.create(pod('p2'));
      await writer.patch(pods, 'p0', { metadata: { labels: { seen: 'late' } } });
      await new Promise((resolve) => setTimeout(resolve, 200));
      server = await startApiServer({ store, listen: { socketPath } });
      assert.deepEqual(await take(events, 2), [
        ['ADDED', 'p2'],
        ['MODIFIED', 'p0'],
      ]);
      await writer.delete(pods, 'p1');
      assert.deepEqual(await take(events, 1), [['DELETED', 'p1']]);
    } finally {
      watch.close();
      client.close();
      writer.close();
      await server.close();
      await side.close();
    }
  });

  it('re-lists on 410 Expired and reports what changed while it was away', async () => {
    const store = new MemoryStore({ historyLimit: 5 });
    const socketPath = join(dir, 'api.sock');
    let server = await startApiServer({ store, listen: { socketPath } });
    const side = await startApiServer({ store, listen: { host: '127.0.0.1', port: 0 } });
    const client = new ApiClient(socketPath);
    const writer = new ApiClient(side.url);
    for (const name of ['keep', 'change', 'remove']) await writer.create(pod(name));
    const watch = client.watch(pods, { namespace: 'default', ...fast });
    const events = watch[Symbol.asyncIterator]();
    try {
      assert.deepEqual(await take(events, 3), [
        ['ADDED', 'change'],
        ['ADDED', 'keep'],
        ['ADDED', 'remove'],
      ]);
      await server.close();
      await writer.delete(pods, 'remove');
      await writer.create(pod('new'));
      for (let i = 0; i < 6; i++)
        await writer.patch(pods, 'change', { metadata: { labels: { i: String(i) } } });
      server = await startApiServer({ store, listen: { socketPath } });
      const relisted = await take(events, 3);
      assert.deepEqual(relisted, [
        ['MODIFIED', 'change'],
        ['ADDED', 'new'],
        ['DELETED', 'remove'],
      ]);
      await writer.create(pod('later'));
      assert.deepEqual(await take(events, 1), [['ADDED', 'later']]);
    } finally {
      watch.close();
      client.close();
      writer.close();
      await server.close();
      await side.close();
    }
  });

  it('re-lists when its resourceVersion is beyond a restarted server (504 Too large resource version)', async () => {
    const socketPath = join(dir, 'api.sock');
    let server = await startApiServer({ store: new MemoryStore(), listen: { socketPath } });
    const client = new ApiClient(socketPath);
    const writer = new ApiClient(socketPath);
    for (const name of ['old-1', 'old-2', 'old-3']) await writer.create(pod(name));
    writer.close();
    const watch = client.watch(pods, { namespace: 'default', ...fast });
    const events = watch[Symbol.asyncIterator]();
    try {
      assert.equal((await take(events, 3)).length, 3);
      const seen = Number(watch.resourceVersion);
      await server.close();
      // A server that lost its state: its revision is behind the watch's.
      const fresh = new MemoryStore();
      server = await startApiServer({ store: fresh, listen: { socketPath } });
      await createObject(fresh, pods, pod('fresh'));
      assert.ok(fresh.revision() < seen);
      assert.deepEqual((await take(events, 4)).sort(), [
        ['ADDED', 'fresh'],
        ['DELETED', 'old-1'],
        ['DELETED', 'old-2'],
        ['DELETED', 'old-3'],
      ]);
    } finally {
      watch.close();
      client.close();
      await server.close();
    }
  });
});
