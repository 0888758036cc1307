// The API server's writes over HTTP: PUT with optimistic concurrency, the
// status subresource, unconditional writes racing on a FileStore, PATCH in
// its three media types, DELETE with graceful pod deletion, finalizers,
// preconditions, propagation policies and the namespace cascade.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApiServer } from '../../src/apiserver/server.js';
import { FileStore } from '../../src/store/file.js';
import {
  assertStatus,
  call,
  createIn,
  createNamespace,
  openWatch,
  pod,
  startTestServer,
  stopTestServer,
  testStore,
} from '../support/apiserver.js';

before(startTestServer);
after(stopTestServer);

describe('update (PUT) and the status subresource', () => {
  it('updates with a current resourceVersion and answers 409 Conflict for a stale one', async () => {
    const created = await createIn('default', pod('upd', { v: '1' }));
    const changed = structuredClone(created);
    changed.metadata.labels = { v: '2' };
    const updated = await call('PUT', '/api/v1/namespaces/default/pods/upd', changed);
    assert.equal(updated.code, 200);
    assert.equal(updated.body.metadata.labels?.v, '2');
    assert.ok(
      Number(updated.body.metadata.resourceVersion) > Number(created.metadata.resourceVersion),
    );
    assert.equal(updated.body.metadata.generation, 1, 'a label change leaves generation alone');
    assert.equal(updated.body.metadata.uid, created.metadata.uid);
    const stale = assertStatus(
      await call('PUT', '/api/v1/namespaces/default/pods/upd', changed),
      409,
      'Conflict',
    );
    assert.equal(
      stale.message,
      'Operation cannot be fulfilled on pods "upd": the object has been modified; please apply your changes to the latest version and try again',
    );
    // Without a resourceVersion the update is unconditional, as upstream allows for pods.
    const unconditional = structuredClone(updated.body);
    delete unconditional.metadata.resourceVersion;
    const [container] = unconditional.spec?.containers as Record<string, unknown>[];
    unconditional.spec = { ...unconditional.spec, containers: [{ ...container, image: 'i:2' }] };
    const bumped = await call('PUT', '/api/v1/namespaces/default/pods/upd', unconditional);
    assert.equal(bumped.code, 200);
    assert.equal(bumped.body.metadata.generation, 2, 'a spec change bumps generation');
    // Writing the same object again writes nothing.
    const same = await call('PUT', '/api/v1/namespaces/default/pods/upd', bumped.body);
    assert.equal(same.body.metadata.resourceVersion, bumped.body.metadata.resourceVersion);
  });

  it('ignores status on the main resource and changes only status on /status', async () => {
    const created = await createIn('default', pod('st'));
    const withStatus = { ...created, status: { phase: 'Running' } };
    const main = await call('PUT', '/api/v1/namespaces/default/pods/st', withStatus);
    assert.deepEqual(main.body.status, { phase: 'Pending' });
    const onStatus = {
      ...main.body,
      spec: { ...main.body.spec, nodeName: 'elsewhere' },
      status: { phase: 'Running', podIP: '10.0.0.5' },
    };
    const status = await call('PUT', '/api/v1/namespaces/default/pods/st/status', onStatus);
    assert.equal(status.code, 200, JSON.stringify(status.body));
    assert.deepEqual(status.body.status, { phase: 'Running', podIP: '10.0.0.5' });
    assert.equal(status.body.spec?.nodeName, undefined, 'spec is not changed through /status');
    assert.equal(status.body.metadata.generation, 1);
    const patched = await call(
      'PATCH',
      '/api/v1/namespaces/default/pods/st/status',
      { status: { phase: 'Succeeded' } },
      'application/merge-patch+json',
    );
    assert.deepEqual(patched.body.status, { phase: 'Succeeded', podIP: '10.0.0.5' });
    assert.equal(
      (await call('GET', '/api/v1/namespaces/default/pods/st/status')).body.status?.phase,
      'Succeeded',
    );
    assertStatus(
      await call('GET', '/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/x/status'),
      404,
      'NotFound',
    );
    assertStatus(
      await call('DELETE', '/api/v1/namespaces/default/pods/st/status'),
      405,
      'MethodNotAllowed',
    );
  });

  it('answers 404 for a missing object and 400 for a name that differs from the URL', async () => {
    assertStatus(
      await call('PUT', '/api/v1/namespaces/default/pods/ghost', pod('ghost')),
      404,
      'NotFound',
    );
    await createIn('default', pod('named'));
    assertStatus(
      await call('PUT', '/api/v1/namespaces/default/pods/named', pod('other')),
      400,
      'BadRequest',
    );
  });
});

describe('concurrent unconditional writes', () => {
  it('applies 20 parallel merge patches of one object to a FileStore, none answered 409', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-apiserver-'));
    const store = await FileStore.open(dir);
    const server = await startApiServer({ store, listen: { host: '127.0.0.1', port: 0 } });
    try {
      const path = `${server.url}/api/v1/namespaces/default/pods/contended`;
      const created = await fetch(`${server.url}/api/v1/namespaces/default/pods`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(pod('contended')),
      });
      assert.equal(created.status, 201);
      const replies = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const res = await fetch(path, {
            method: 'PATCH',
            headers: { 'content-type': 'application/merge-patch+json' },
            body: JSON.stringify({ metadata: { labels: { [`l${i}`]: 'y' } } }),
          });
          return { code: res.status, text: await res.text() };
        }),
      );
      for (const reply of replies) assert.equal(reply.code, 200, reply.text);
      const stored = (await (await fetch(path)).json()) as { metadata: { labels: object } };
      assert.deepEqual(
        Object.keys(stored.metadata.labels).sort(),
        Array.from({ length: 20 }, (_, i) => `l${i}`).sort(),
      );
    } finally {
      await server.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('PATCH', () => {
  const path = '/api/v1/namespaces/default/pods/pt';
  before(async () => {
    await createIn('default', pod('pt', { a: '1', b: '2' }));
  });

  it('applies an RFC 7386 merge patch: null removes, objects merge', async () => {
    const reply = await call(
      'PATCH',
      path,
      { metadata: { labels: { a: null, c: '3' } } },
      'application/merge-patch+json',
    );
    assert.equal(reply.code, 200);
    assert.deepEqual(reply.body.metadata.labels, { b: '2', c: '3' });
  });

  it('treats a strategic merge patch as a merge patch (lists are replaced)', async () => {
    const ports = (names: string[]) => names.map((name, i) => ({ name, port: 80 + i }));
    await createIn(
      'default',
      { metadata: { name: 'smp' }, spec: { ports: ports(['a', 'b']) } },
      'services',
    );
    const reply = await call(
      'PATCH',
      '/api/v1/namespaces/default/services/smp',
      { spec: { ports: ports(['c']) } },
      'application/strategic-merge-patch+json',
    );
    assert.equal(reply.code, 200, JSON.stringify(reply.body));
    assert.deepEqual(
      (reply.body.spec?.ports as { name: string }[]).map((c) => c.name),
      ['c'],
    );
    assert.equal(reply.body.metadata.generation, 2);
    // kubectl apply's directives ask for list merging by key: refused, not misapplied.
    const applyPatch = {
      spec: {
        '$setElementOrder/containers': [{ name: 'other' }],
        containers: [{ name: 'other', image: 'k' }],
      },
    };
    const refused = await call('PATCH', path, applyPatch, 'application/strategic-merge-patch+json');
    assert.match(
      assertStatus(refused, 400, 'BadRequest').message,
      /directive "\$setElementOrder\/containers" at spec is not supported/,
    );
  });

  it('applies an RFC 6902 JSON patch, and 422 when its test fails', async () => {
    const ops = [
      { op: 'add', path: '/metadata/labels/d', value: '4' },
      { op: 'remove', path: '/metadata/labels/b' },
    ];
    const reply = await call('PATCH', path, ops, 'application/json-patch+json');
    assert.deepEqual(reply.body.metadata.labels, { c: '3', d: '4' });
    assertStatus(
      await call(
        'PATCH',
        path,
        [{ op: 'test', path: '/metadata/labels/d', value: 'x' }],
        'application/json-patch+json',
      ),
      422,
      'Invalid',
    );
  });

  it('answers 409 for a stale resourceVersion in the patch, 404, 415, 400 and 422 as upstream', async () => {
    const stale = { metadata: { resourceVersion: '1', labels: { x: 'y' } } };
    assertStatus(await call('PATCH', path, stale, 'application/merge-patch+json'), 409, 'Conflict');
    assertStatus(
      await call(
        'PATCH',
        '/api/v1/namespaces/default/pods/nope',
        {},
        'application/merge-patch+json',
      ),
      404,
      'NotFound',
    );
    assertStatus(
      await call('PATCH', path, {}, 'application/apply-patch+yaml'),
      415,
      'UnsupportedMediaType',
    );
    assertStatus(await call('PATCH', path, '{', 'application/merge-patch+json'), 400, 'BadRequest');
    const badLabel = await call(
      'PATCH',
      path,
      { metadata: { labels: { x: 'not valid!' } } },
      'application/merge-patch+json',
    );
    assert.equal(
      assertStatus(badLabel, 422, 'Invalid').details.causes?.[0]?.field,
      'metadata.labels[x]',
    );
  });
});

describe('DELETE', () => {
  it('deletes at once and returns the object; 404 after', async () => {
    const created = await createIn('default', pod('gone-now'));
    const deleted = await call('DELETE', '/api/v1/namespaces/default/pods/gone-now');
    assert.equal(deleted.code, 200);
    assert.equal(deleted.body.metadata.uid, created.metadata.uid);
    assertStatus(await call('GET', '/api/v1/namespaces/default/pods/gone-now'), 404, 'NotFound');
    assertStatus(await call('DELETE', '/api/v1/namespaces/default/pods/gone-now'), 404, 'NotFound');
  });

  it('deletes a scheduled pod gracefully; a DELETE with gracePeriodSeconds=0 removes it', async () => {
    const path = '/api/v1/namespaces/default/pods/graceful';
    await createIn(
      'default',
      pod('graceful', {}, { nodeName: 'n1', terminationGracePeriodSeconds: 20 }),
    );
    const before = Date.now();
    const marked = await call('DELETE', path);
    assert.equal(marked.code, 200);
    assert.equal(marked.body.metadata.deletionGracePeriodSeconds, 20);
    const due = Date.parse(marked.body.metadata.deletionTimestamp as string);
    assert.ok(due >= Math.floor(before / 1000) * 1000 + 19_000 && due <= Date.now() + 21_000);
    assert.equal((await call('GET', path)).code, 200, 'the pod stays for its node to stop it');
    const again = await call('DELETE', path, { gracePeriodSeconds: 60 });
    assert.equal(
      again.body.metadata.deletionGracePeriodSeconds,
      20,
      'a longer period changes nothing',
    );
    const shorter = await call('DELETE', `${path}?gracePeriodSeconds=5`);
    assert.equal(shorter.body.metadata.deletionGracePeriodSeconds, 5);
    assert.equal(Date.parse(shorter.body.metadata.deletionTimestamp as string), due - 15_000);
    const removed = await call('DELETE', path, {
      kind: 'DeleteOptions',
      apiVersion: 'v1',
      gracePeriodSeconds: 0,
    });
    assert.equal(removed.code, 200);
    assertStatus(await call('GET', path), 404, 'NotFound');
  });

  it('deletes an unscheduled pod at once, as upstream', async () => {
    await createIn('default', pod('unscheduled'));
    await call('DELETE', '/api/v1/namespaces/default/pods/unscheduled');
    assertStatus(await call('GET', '/api/v1/namespaces/default/pods/unscheduled'), 404, 'NotFound');
  });

  it('keeps an object with finalizers until an update removes them', async () => {
    const path = '/api/v1/namespaces/default/services/held';
    await createIn(
      'default',
      {
        metadata: { name: 'held', finalizers: ['example.com/hold'] },
        spec: { ports: [{ port: 80 }] },
      },
      'services',
    );
    const marked = await call('DELETE', path);
    assert.ok(marked.body.metadata.deletionTimestamp);
    assert.equal((await call('GET', path)).code, 200);
    const released = await call(
      'PATCH',
      path,
      { metadata: { finalizers: null } },
      'application/merge-patch+json',
    );
    assert.equal(released.code, 200);
    assertStatus(await call('GET', path), 404, 'NotFound');
  });

  it('refuses a dry run (400) rather than making the write', async () => {
    assertStatus(
      await call('POST', '/api/v1/namespaces/default/pods?dryRun=All', pod('dry')),
      400,
      'BadRequest',
    );
    assertStatus(await call('GET', '/api/v1/namespaces/default/pods/dry'), 404, 'NotFound');
  });

  it('answers 409 when a precondition fails', async () => {
    await createIn('default', pod('precondition'));
    const reply = await call('DELETE', '/api/v1/namespaces/default/pods/precondition', {
      preconditions: { uid: 'not-it' },
    });
    assert.match(
      assertStatus(reply, 409, 'Conflict').message,
      /Precondition failed: UID in precondition: not-it/,
    );
  });

  it('refuses propagationPolicy Orphan or Foreground and orphanDependents (400 naming the field), deleting nothing', async () => {
    const path = '/api/v1/namespaces/default/pods/propagated';
    await createIn('default', pod('propagated'));
    for (const [query, body] of [
      ['?propagationPolicy=Orphan', undefined],
      ['?propagationPolicy=Foreground', undefined],
      ['?orphanDependents=true', undefined],
      ['', { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Orphan' }],
      ['', { propagationPolicy: 'Foreground' }],
      ['', { orphanDependents: true }],
    ] as const) {
      const refused = assertStatus(await call('DELETE', path + query, body), 400, 'BadRequest');
      assert.match(
        refused.message,
        /^(propagationPolicy (Orphan|Foreground)|orphanDependents) is not supported/,
      );
      assert.equal((await call('GET', path)).code, 200, `${query} ${JSON.stringify(body)}`);
    }
    const unknown = assertStatus(
      await call('DELETE', path, { propagationPolicy: 'Sideways' }),
      422,
      'Invalid',
    );
    assert.equal(unknown.details.causes?.[0]?.field, 'propagationPolicy');
    assertStatus(
      await call('DELETE', path, { propagationPolicy: 'Background', orphanDependents: false }),
      422,
      'Invalid',
    );
    const background = await call('DELETE', `${path}?propagationPolicy=Background`);
    assert.equal(background.code, 200);
    assertStatus(await call('GET', path), 404, 'NotFound');
    await createIn('default', pod('propagated'));
    assert.equal((await call('DELETE', path, { orphanDependents: false })).code, 200);
  });

  it('deletes everything in a deleted namespace, and nothing elsewhere', async () => {
    await createNamespace('doomed');
    await createIn('doomed', pod('p1', {}, { nodeName: 'n1' }));
    await createIn(
      'doomed',
      { metadata: { name: 's1' }, spec: { ports: [{ port: 80 }] } },
      'services',
    );
    const policy = { metadata: { name: 'deny' }, spec: { podSelector: {} } };
    assert.equal(
      (await call('POST', '/apis/networking.k8s.io/v1/namespaces/doomed/networkpolicies', policy))
        .code,
      201,
    );
    await createIn('default', pod('survivor'));
    const watch = openWatch(
      `/api/v1/namespaces/doomed/pods?watch=1&resourceVersion=${testStore().revision()}`,
    );
    const deleted = await call('DELETE', '/api/v1/namespaces/doomed');
    assert.equal(deleted.code, 200);
    assert.deepEqual(
      (await watch.next(1)).map((e) => [e.type, e.object.metadata.name]),
      [['DELETED', 'p1']],
    );
    watch.close();
    assertStatus(await call('GET', '/api/v1/namespaces/doomed'), 404, 'NotFound');
    for (const path of [
      '/api/v1/namespaces/doomed/pods',
      '/api/v1/namespaces/doomed/services',
      '/apis/networking.k8s.io/v1/namespaces/doomed/networkpolicies',
    ]) {
      assert.deepEqual((await call('GET', path)).body.items, [], path);
    }
    assert.equal((await call('GET', '/api/v1/namespaces/default/pods/survivor')).code, 200);
    assertStatus(
      await call('POST', '/api/v1/namespaces/doomed/pods', pod('late')),
      404,
      'NotFound',
    );
    assertStatus(await call('DELETE', '/api/v1/namespaces/default'), 403, 'Forbidden');
  });
});
