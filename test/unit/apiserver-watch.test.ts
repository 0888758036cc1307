// The API server's watch over HTTP: history from a resourceVersion then live
// changes, initial events, selectors on old and new object, bookmarks, 410
// Expired on a compacted revision, timeouts, and the store watch cancelled
// when the stream ends.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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

describe('WATCH', () => {
  const pods = '/api/v1/namespaces/w/pods';
  before(async () => {
    await createNamespace('w');
  });

  async function until(condition: () => boolean): Promise<void> {
    const deadline = Date.now() + 3000;
    while (!condition()) {
      if (Date.now() > deadline) assert.fail('condition not reached in 3 s');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  it('streams history after a resourceVersion, then live changes', async () => {
    const start = testStore().revision();
    const a = await createIn('w', pod('a'));
    const b = await createIn('w', pod('b'));
    const watch = openWatch(`${pods}?watch=1&resourceVersion=${start}`);
    const history = await watch.next(2);
    assert.deepEqual(
      history.map((e) => [e.type, e.object.metadata.name, e.object.metadata.resourceVersion]),
      [
        ['ADDED', 'a', a.metadata.resourceVersion],
        ['ADDED', 'b', b.metadata.resourceVersion],
      ],
    );
    const patched = await call(
      'PATCH',
      `${pods}/a`,
      { metadata: { labels: { x: '1' } } },
      'application/merge-patch+json',
    );
    await call('DELETE', `${pods}/b`);
    const live = await watch.next(2);
    assert.deepEqual(
      live.map((e) => [e.type, e.object.metadata.name]),
      [
        ['MODIFIED', 'a'],
        ['DELETED', 'b'],
      ],
    );
    assert.equal(live[0]?.object.metadata.resourceVersion, patched.body.metadata.resourceVersion);
    assert.equal(
      live[1]?.object.metadata.resourceVersion,
      String(testStore().revision()),
      'DELETED carries the deletion revision',
    );
    watch.close();
  });

  it('without a resourceVersion, sends every current object as ADDED first; /watch/ paths and one-object watches', async () => {
    const watch = openWatch('/api/v1/watch/namespaces/w/pods');
    assert.deepEqual(
      (await watch.next(1)).map((e) => [e.type, e.object.metadata.name]),
      [['ADDED', 'a']],
    );
    const one = openWatch(`${pods}/c?watch=true&resourceVersion=${testStore().revision()}`);
    await createIn('w', pod('c'));
    await createIn('w', pod('d'));
    assert.deepEqual(
      (await watch.next(2)).map((e) => e.object.metadata.name),
      ['c', 'd'],
    );
    assert.deepEqual(
      (await one.next(1)).map((e) => [e.type, e.object.metadata.name]),
      [['ADDED', 'c']],
    );
    watch.close();
    one.close();
  });

  it('applies selectors to old and new object: ADDED when one starts matching, DELETED when it stops', async () => {
    await createIn('w', pod('sel', { app: 'db' }));
    const watch = openWatch(
      `${pods}?watch=1&resourceVersion=${testStore().revision()}&labelSelector=app%3Dweb`,
    );
    const relabel = (app: string) =>
      call(
        'PATCH',
        `${pods}/sel`,
        { metadata: { labels: { app } } },
        'application/merge-patch+json',
      );
    await relabel('web');
    await relabel('web2');
    const events = await watch.next(2);
    assert.deepEqual(
      events.map((e) => [e.type, e.object.metadata.labels?.app]),
      [
        ['ADDED', 'web'],
        ['DELETED', 'web'],
      ],
    );
    assert.equal(events[1]?.object.metadata.resourceVersion, String(testStore().revision()));
    watch.close();
  });

  it('sends BOOKMARK events when allowed', async () => {
    const watch = openWatch(
      `${pods}?watch=1&resourceVersion=${testStore().revision()}&allowWatchBookmarks=true`,
    );
    const [bookmark] = await watch.next(1);
    assert.equal(bookmark?.type, 'BOOKMARK');
    assert.equal(bookmark?.object.kind, 'Pod');
    assert.equal(bookmark?.object.metadata.resourceVersion, String(testStore().revision()));
    watch.close();
  });

  it('streams the initial list with sendInitialEvents, ended by an initial-events-end BOOKMARK', async () => {
    const revision = testStore().revision();
    const query =
      'watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan';
    const watch = openWatch(`${pods}?${query}&fieldSelector=metadata.name%3Da`);
    const [added, end] = await watch.next(2);
    assert.deepEqual([added?.type, added?.object.metadata.name], ['ADDED', 'a']);
    assert.equal(end?.type, 'BOOKMARK');
    assert.equal(end?.object.metadata.resourceVersion, String(revision));
    assert.deepEqual(end?.object.metadata.annotations, { 'k8s.io/initial-events-end': 'true' });
    watch.close();
    const unbookmarked = await call('GET', `${pods}?watch=1&sendInitialEvents=true`);
    assert.equal(
      assertStatus(unbookmarked, 422, 'Invalid').details.causes?.[0]?.field,
      'allowWatchBookmarks',
    );
  });

  it('answers a compacted resourceVersion with an ERROR event holding 410 Expired, and ends', async () => {
    const start = testStore().revision();
    for (let i = 0; i < 60; i++) {
      await call(
        'PATCH',
        `${pods}/a`,
        { metadata: { labels: { i: String(i) } } },
        'application/merge-patch+json',
      );
    }
    const watch = openWatch(`${pods}?watch=1&resourceVersion=${start}`);
    const [error] = await watch.next(1);
    await watch.ended;
    assert.equal(error?.type, 'ERROR');
    assert.equal(error?.object.kind, 'Status');
    assert.equal(error?.object.code, 410);
    assert.equal(error?.object.reason, 'Expired');
    assert.match(
      error?.object.message,
      new RegExp(`^too old resource version: ${start} \\(\\d+\\)$`),
    );
    assertStatus(await call('GET', `${pods}?watch=1&resourceVersion=abc`), 400, 'BadRequest');
  });

  it('answers a resourceVersion beyond the store with 504 Too large resource version, and ends', async () => {
    const current = testStore().revision();
    const ahead = current + 5;
    const watch = openWatch(`${pods}?watch=1&resourceVersion=${ahead}`);
    const [error] = await watch.next(1);
    await watch.ended;
    assert.equal(error?.type, 'ERROR');
    assert.equal(error?.object.kind, 'Status');
    assert.equal(error?.object.code, 504);
    assert.equal(error?.object.reason, 'Timeout');
    assert.equal(
      error?.object.message,
      `Timeout: Too large resource version: ${ahead}, current: ${current}`,
    );
    assert.deepEqual(error?.object.details.causes, [
      { reason: 'ResourceVersionTooLarge', message: 'Too large resource version' },
    ]);
    const listed = assertStatus(
      await call('GET', `${pods}?resourceVersion=${ahead}`),
      504,
      'Timeout',
    );
    assert.equal(listed.details.causes?.[0]?.reason, 'ResourceVersionTooLarge');
    assert.equal((await call('GET', `${pods}?resourceVersion=${current}`)).code, 200);
  });

  it('ends at timeoutSeconds and cancels the store watch when the stream ends or the client goes', async () => {
    const baseline = testStore().openWatches;
    const timed = openWatch(
      `${pods}?watch=1&resourceVersion=${testStore().revision()}&timeoutSeconds=1`,
    );
    const started = Date.now();
    await timed.ended;
    assert.ok(Date.now() - started >= 900, 'the stream lasted its timeout');
    await until(() => testStore().openWatches === baseline);
    const dropped = openWatch(`${pods}?watch=1&resourceVersion=${testStore().revision()}`);
    await until(() => testStore().openWatches === baseline + 1);
    dropped.close();
    await until(() => testStore().openWatches === baseline);
  });
});
