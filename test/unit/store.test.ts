// The Store contract (src/store/store.ts), as one case table run against
// every implementation (Hono's common.case.test.ts shape): MemoryStore is the
// reference, FileStore must behave the same. Then what only a durable store
// has: reopening, snapshots, torn log tails, the directory lock.
import assert from 'node:assert/strict';
import {
  appendFileSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  FileStore,
  StoreCorruptError,
  StoreLockedError,
  StoreUnavailableError,
} from '../../src/store/file.js';
import { MemoryStore } from '../../src/store/memory.js';
import {
  CompactedError,
  KeyExistsError,
  KeyNotFoundError,
  RevisionConflictError,
  type Store,
  type WatchEvent,
} from '../../src/store/store.js';
import { frame } from '../../src/store/wal.js';

interface StoreOptions {
  historyLimit?: number;
}

interface Implementation {
  name: string;
  /** A new, empty store, and how to remove what it left behind. */
  open: (options: StoreOptions) => Promise<{ store: Store; remove: () => void }>;
}

function temporaryDirectory(): string {
  return mkdtempSync(join(tmpdir(), 'strata-store-'));
}

const implementations: Implementation[] = [
  {
    name: 'MemoryStore',
    open: (options) =>
      Promise.resolve({ store: new MemoryStore(options), remove: () => undefined }),
  },
  {
    name: 'FileStore',
    open: async (options) => {
      const dir = temporaryDirectory();
      return {
        store: await FileStore.open(dir, options),
        remove: () => {
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
];

/** An event as one comparable line: `put /pods/a@3 (prev @1)`. */
function describeEvent(event: WatchEvent): string {
  const prev = event.prev ? ` (prev ${event.prev.value}@${event.prev.modRevision})` : '';
  return `${event.type} ${event.kv.key}=${event.kv.value}@${event.kv.modRevision}${prev}`;
}

/** Watches `prefix` from `fromRevision`, collecting events as lines. */
function record(store: Store, prefix: string, fromRevision: number) {
  const events: string[] = [];
  const watch = store.watch(prefix, fromRevision, (event) => events.push(describeEvent(event)));
  return { events, watch };
}

async function keys(store: Store, prefix: string): Promise<string[]> {
  return (await store.list(prefix)).items.map((kv) => kv.key);
}

for (const implementation of implementations) {
  /** Runs `body` against a fresh store of this implementation, closed and removed afterwards. */
  async function withStore(
    body: (store: Store) => Promise<void>,
    options: StoreOptions = {},
  ): Promise<void> {
    const { store, remove } = await implementation.open(options);
    try {
      await body(store);
    } finally {
      await store.close();
      remove();
    }
  }

  describe(`Store contract: ${implementation.name}`, () => {
    describe('create and get', () => {
      it('creates a key at a new revision that get then returns', () =>
        withStore(async (store) => {
          assert.equal(store.revision(), 0);
          const kv = await store.create('/pods/a', 'A');
          assert.deepEqual(kv, { key: '/pods/a', value: 'A', createRevision: 1, modRevision: 1 });
          assert.deepEqual(await store.get('/pods/a'), kv);
          assert.equal(store.revision(), 1);
        }));

      it('returns undefined for an absent key', () =>
        withStore(async (store) => {
          assert.equal(await store.get('/pods/none'), undefined);
        }));

      it('refuses to create an existing key with KeyExistsError, writing nothing', () =>
        withStore(async (store) => {
          await store.create('/pods/a', 'A');
          await assert.rejects(store.create('/pods/a', 'B'), (error) => {
            assert.ok(error instanceof KeyExistsError);
            assert.equal(error.key, '/pods/a');
            return true;
          });
          assert.equal((await store.get('/pods/a'))?.value, 'A');
          assert.equal(store.revision(), 1);
        }));
    });

    describe('list', () => {
      it('returns the keys under a prefix in key order, at the store revision', () =>
        withStore(async (store) => {
          for (const key of ['/pods/b', '/services/a', '/pods/a', '/podsx/z', '/pods/c']) {
            await store.create(key, key);
          }
          const listed = await store.list('/pods/');
          assert.deepEqual(
            listed.items.map((kv) => kv.key),
            ['/pods/a', '/pods/b', '/pods/c'],
          );
          assert.equal(listed.revision, 5);
          assert.deepEqual(await keys(store, ''), [
            '/pods/a',
            '/pods/b',
            '/pods/c',
            '/podsx/z',
            '/services/a',
          ]);
        }));

      it('returns an empty list at the current revision when nothing matches', () =>
        withStore(async (store) => {
          await store.create('/pods/a', 'A');
          assert.deepEqual(await store.list('/services/'), { items: [], revision: 1 });
        }));
    });

    describe('update', () => {
      it('advances modRevision and keeps createRevision', () =>
        withStore(async (store) => {
          await store.create('/pods/a', 'A');
          await store.create('/pods/b', 'B');
          const kv = await store.update('/pods/a', 'A2');
          assert.deepEqual(kv, { key: '/pods/a', value: 'A2', createRevision: 1, modRevision: 3 });
          assert.deepEqual(await store.get('/pods/a'), kv);
        }));

      it('succeeds when expectedModRevision matches and fails with RevisionConflictError when not', () =>
        withStore(async (store) => {
          await store.create('/pods/a', 'A');
          await store.update('/pods/a', 'A2', 1);
          await assert.rejects(store.update('/pods/a', 'A3', 1), (error) => {
            assert.ok(error instanceof RevisionConflictError);
            assert.deepEqual([error.key, error.expected, error.actual], ['/pods/a', 1, 2]);
            return true;
          });
          assert.equal((await store.get('/pods/a'))?.value, 'A2');
          assert.equal(store.revision(), 2);
        }));

      it('fails with KeyNotFoundError for an absent key', () =>
        withStore(async (store) => {
          await assert.rejects(store.update('/pods/none', 'X'), KeyNotFoundError);
          assert.equal(store.revision(), 0);
        }));
    });

    describe('delete', () => {
      it('returns what the key held, and a later create starts it afresh', () =>
        withStore(async (store) => {
          const created = await store.create('/pods/a', 'A');
          assert.deepEqual(await store.delete('/pods/a'), created);
          assert.equal(await store.get('/pods/a'), undefined);
          assert.equal(store.revision(), 2);
          const again = await store.create('/pods/a', 'A again');
          assert.deepEqual([again.createRevision, again.modRevision], [3, 3]);
        }));

      it('fails with KeyNotFoundError or RevisionConflictError as update does', () =>
        withStore(async (store) => {
          await assert.rejects(store.delete('/pods/none'), KeyNotFoundError);
          await store.create('/pods/a', 'A');
          await assert.rejects(store.delete('/pods/a', 7), RevisionConflictError);
          assert.equal((await store.get('/pods/a'))?.value, 'A');
          await store.delete('/pods/a', 1);
          assert.equal(await store.get('/pods/a'), undefined);
        }));
    });

    describe('revisions', () => {
      it('advance one global revision by one per write, and not on a failed write', () =>
        withStore(async (store) => {
          const revisions = [
            (await store.create('/pods/a', 'A')).modRevision,
            (await store.create('/services/a', 'S')).modRevision,
            (await store.update('/pods/a', 'A2')).modRevision,
          ];
          await assert.rejects(store.create('/pods/a', 'X'));
          await store.delete('/services/a');
          assert.deepEqual(revisions, [1, 2, 3]);
          assert.equal(store.revision(), 4);
        }));

      it('are given in call order to writes issued together', () =>
        withStore(async (store) => {
          const created = await Promise.all(
            Array.from({ length: 100 }, (_, i) => store.create(`/pods/p${i}`, `pod ${i}`)),
          );
          assert.deepEqual(
            created.map((kv) => kv.modRevision),
            Array.from({ length: 100 }, (_, i) => i + 1),
          );
          assert.equal(store.revision(), 100);
          assert.equal((await store.list('/pods/')).items.length, 100);
        }));

      it('let exactly one of two racing writes win a key or a revision', () =>
        withStore(async (store) => {
          const creates = await Promise.allSettled([
            store.create('/pods/a', 'first'),
            store.create('/pods/a', 'second'),
          ]);
          assert.deepEqual(
            creates.map((outcome) => outcome.status),
            ['fulfilled', 'rejected'],
          );
          const updates = await Promise.allSettled([
            store.update('/pods/a', 'one', 1),
            store.update('/pods/a', 'two', 1),
          ]);
          assert.deepEqual(
            updates.map((outcome) => outcome.status),
            ['fulfilled', 'rejected'],
          );
          assert.equal((await store.get('/pods/a'))?.value, 'one');
        }));

      it('refuse a write that lost to another only once get shows the winner (read-your-writes)', () =>
        withStore(async (store) => {
          await store.create('/pods/a', 'A');
          await store.create('/pods/b', 'B');
          const seen: string[] = [];
          const why = async (write: Promise<unknown>, key: string): Promise<void> => {
            try {
              await write;
            } catch (error) {
              seen.push(`${(error as Error).name}: ${(await store.get(key))?.value ?? 'absent'}`);
            }
          };
          const winners = [
            store.update('/pods/a', 'won', 1),
            store.delete('/pods/b'),
            store.create('/pods/c', 'C'),
          ];
          await Promise.all([
            ...winners,
            why(store.update('/pods/a', 'lost', 1), '/pods/a'),
            why(store.update('/pods/b', 'lost'), '/pods/b'),
            why(store.create('/pods/c', 'lost'), '/pods/c'),
          ]);
          assert.deepEqual(seen.sort(), [
            'KeyExistsError: C',
            'KeyNotFoundError: absent',
            'RevisionConflictError: won',
          ]);
        }));
    });

    describe('watch', () => {
      it('delivers the history after a revision, then live events, in revision order', () =>
        withStore(async (store) => {
          await store.create('/pods/a', 'A');
          await store.create('/pods/b', 'B');
          const { events } = record(store, '/pods/', 1);
          await store.update('/pods/a', 'A2');
          assert.deepEqual(events, ['put /pods/b=B@2', 'put /pods/a=A2@3 (prev A@1)']);
        }));

      it('delivers only keys under its prefix', () =>
        withStore(async (store) => {
          const { events } = record(store, '/services/', 0);
          await store.create('/pods/a', 'A');
          await store.create('/services/a', 'S');
          await store.create('/servicesx/a', 'X');
          assert.deepEqual(events, ['put /services/a=S@2']);
        }));

      it('gives delete events the key at the delete revision and what it held', () =>
        withStore(async (store) => {
          await store.create('/pods/a', 'A');
          const events: WatchEvent[] = [];
          store.watch('/pods/', 1, (event) => events.push(event));
          await store.delete('/pods/a');
          assert.deepEqual(events, [
            {
              type: 'delete',
              kv: { key: '/pods/a', value: '', createRevision: 1, modRevision: 2 },
              prev: { key: '/pods/a', value: 'A', createRevision: 1, modRevision: 1 },
            },
          ]);
        }));

      it('has delivered a write by the time the write resolves', () =>
        withStore(async (store) => {
          const { events } = record(store, '', store.revision());
          await store.create('/pods/a', 'A');
          assert.deepEqual(events, ['put /pods/a=A@1']);
        }));

      it('stops on cancel, and a second cancel is harmless', () =>
        withStore(async (store) => {
          const { events, watch } = record(store, '', 0);
          await store.create('/pods/a', 'A');
          watch.cancel();
          watch.cancel();
          await store.create('/pods/b', 'B');
          assert.deepEqual(events, ['put /pods/a=A@1']);
        }));

      it('fails with CompactedError for a revision older than the history kept', () =>
        withStore(
          async (store) => {
            for (let i = 1; i <= 5; i++) await store.create(`/pods/p${i}`, `${i}`);
            assert.throws(
              () => store.watch('', 1, () => undefined),
              (error) => {
                assert.ok(error instanceof CompactedError);
                assert.deepEqual([error.requested, error.compacted], [1, 2]);
                return true;
              },
            );
            const { events } = record(store, '', 2);
            assert.deepEqual(events, ['put /pods/p3=3@3', 'put /pods/p4=4@4', 'put /pods/p5=5@5']);
          },
          { historyLimit: 3 },
        ));
    });
  });
}

describe('FileStore durability', () => {
  /** Runs `body` with a fresh directory, removed afterwards. */
  async function inDirectory(body: (dir: string) => Promise<void>): Promise<void> {
    const dir = temporaryDirectory();
    try {
      await body(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  function segmentFiles(dir: string): string[] {
    return readdirSync(dir)
      .filter((name) => name.startsWith('wal-'))
      .sort();
  }

  function lastSegment(dir: string): string {
    const name = segmentFiles(dir).at(-1);
    assert.ok(name, `no log segment in ${dir}`);
    return join(dir, name);
  }

  /** Three keys written and the store closed: revision 3. */
  async function writeThree(dir: string): Promise<void> {
    const store = await FileStore.open(dir);
    await store.create('/pods/a', 'A');
    await store.create('/pods/b', 'B');
    await store.update('/pods/a', 'A2');
    await store.close();
  }

  it('keeps every key, its revisions and the store revision across a reopen', () =>
    inDirectory(async (dir) => {
      const first = await FileStore.open(dir);
      await first.create('/pods/a', 'A');
      await first.create('/pods/b', 'B');
      await first.update('/pods/a', 'A2');
      await first.create('/pods/c', 'C');
      await first.delete('/pods/b');
      const before = await first.list('');
      await first.close();

      const second = await FileStore.open(dir);
      try {
        assert.equal(second.revision(), 5);
        assert.deepEqual(await second.list(''), before);
        assert.deepEqual(await second.get('/pods/a'), {
          key: '/pods/a',
          value: 'A2',
          createRevision: 1,
          modRevision: 3,
        });
        assert.equal((await second.create('/pods/d', 'D')).modRevision, 6);
      } finally {
        await second.close();
      }
    }));

  it('replays the history to a watch from a revision before the reopen', () =>
    inDirectory(async (dir) => {
      await writeThree(dir);
      const store = await FileStore.open(dir);
      try {
        const { events } = record(store, '/pods/', 1);
        await store.delete('/pods/b');
        assert.deepEqual(events, [
          'put /pods/b=B@2',
          'put /pods/a=A2@3 (prev A@1)',
          'delete /pods/b=@4 (prev B@2)',
        ]);
      } finally {
        await store.close();
      }
    }));

  it('after many writes, snapshots and rotates the log, and reopens to the same state', () =>
    inDirectory(async (dir) => {
      const reference = new MemoryStore();
      const store = await FileStore.open(dir, { snapshotEvery: 10 });
      // A fixed pseudo-random mix of creates, updates and deletes over 40 keys.
      let seed = 7;
      const next = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
      for (let i = 0; i < 300; i++) {
        const key = `/pods/p${next(40)}`;
        const existing = await reference.get(key);
        if (!existing) {
          await reference.create(key, `v${i}`);
          await store.create(key, `v${i}`);
        } else if (next(3) === 0) {
          await reference.delete(key);
          await store.delete(key);
        } else {
          await reference.update(key, `v${i}`);
          await store.update(key, `v${i}`);
        }
      }
      assert.deepEqual(await store.list(''), await reference.list(''));
      // The live history outlasts the snapshots: a watch from 0 still sees all 300.
      assert.equal(record(store, '', 0).events.length, 300);
      await store.close();
      assert.ok(readdirSync(dir).includes('snapshot'), 'a snapshot was written');
      assert.ok(segmentFiles(dir).length <= 2, `old segments removed: ${segmentFiles(dir).join()}`);

      const reopened = await FileStore.open(dir, { snapshotEvery: 10 });
      try {
        assert.equal(reopened.revision(), 300);
        assert.deepEqual(await reopened.list(''), await reference.list(''));
        // The history survives from the snapshot's revision on; older watches must relist.
        const { events } = record(reopened, '', 299);
        assert.equal(events.length, 1);
        assert.throws(() => reopened.watch('', 0, () => undefined), CompactedError);
        await reopened.create('/pods/after-reopen', 'x');
        assert.equal(reopened.revision(), 301);
      } finally {
        await reopened.close();
      }
    }));

  const tornTails: { damage: string; tear: (segment: string) => void; revision: number }[] = [
    {
      damage: 'a partial header',
      tear: (segment) => {
        appendFileSync(segment, Buffer.from([9, 0, 0]));
      },
      revision: 3,
    },
    {
      damage: 'a record cut short',
      tear: (segment) => {
        const whole = frame({ revision: 4, op: 'create', key: '/pods/c', value: 'C' });
        appendFileSync(segment, whole.subarray(0, whole.length - 3));
      },
      revision: 3,
    },
    {
      damage: 'zeros where a record should be',
      tear: (segment) => {
        appendFileSync(segment, Buffer.alloc(4096));
      },
      revision: 3,
    },
    {
      damage: 'a checksum mismatch in the last record',
      tear: (segment) => {
        const bytes = readFileSync(segment);
        bytes[bytes.length - 2] = (bytes[bytes.length - 2] ?? 0) ^ 0xff;
        writeFileSync(segment, bytes);
      },
      revision: 2,
    },
  ];
  for (const { damage, tear, revision } of tornTails) {
    it(`ignores a torn last record (${damage}) and appends after the last whole one`, () =>
      inDirectory(async (dir) => {
        await writeThree(dir);
        tear(lastSegment(dir));
        const store = await FileStore.open(dir);
        assert.equal(store.revision(), revision);
        assert.equal((await store.create('/pods/new', 'N')).modRevision, revision + 1);
        await store.close();
        const reopened = await FileStore.open(dir);
        try {
          assert.equal(reopened.revision(), revision + 1);
          assert.equal((await reopened.get('/pods/new'))?.value, 'N');
        } finally {
          await reopened.close();
        }
      }));
  }

  it('reports damage in a log file that later ones follow instead of skipping it', () =>
    inDirectory(async (dir) => {
      await writeThree(dir);
      const segment = lastSegment(dir);
      // A second segment after the first, as a rotation leaves.
      writeFileSync(
        join(dir, 'wal-00000000000000000004.log'),
        frame({ revision: 4, op: 'create', key: '/pods/c', value: 'C' }),
      );
      const bytes = readFileSync(segment);
      bytes[20] = (bytes[20] ?? 0) ^ 0xff;
      writeFileSync(segment, bytes);
      await assert.rejects(FileStore.open(dir), StoreCorruptError);
    }));

  it('reports a missing log file', () =>
    inDirectory(async (dir) => {
      await writeThree(dir);
      const segment = lastSegment(dir);
      writeFileSync(
        join(dir, 'wal-00000000000000000004.log'),
        frame({ revision: 4, op: 'create', key: '/pods/c', value: 'C' }),
      );
      rmSync(segment);
      await assert.rejects(FileStore.open(dir), /the log before revision 4 is missing/);
    }));

  it('refuses a second open of one directory, naming the holder, until the first closes', () =>
    inDirectory(async (dir) => {
      const first = await FileStore.open(dir);
      await assert.rejects(FileStore.open(dir), (error) => {
        assert.ok(error instanceof StoreLockedError);
        assert.match(error.message, new RegExp(`in ${dir}: this process \\(${process.pid}\\)`));
        return true;
      });
      await first.create('/pods/a', 'A');
      await first.close();
      const second = await FileStore.open(dir);
      try {
        assert.equal(second.revision(), 1);
      } finally {
        await second.close();
      }
    }));

  it('refuses writes after close', () =>
    inDirectory(async (dir) => {
      const store = await FileStore.open(dir);
      await store.close();
      await assert.rejects(store.create('/pods/a', 'A'), StoreUnavailableError);
    }));

  it('commits writes issued together with a few syncs, not one each', () =>
    inDirectory(async (dir) => {
      const store = await FileStore.open(dir);
      // Count fdatasync calls through the FileHandle prototype the store's log uses.
      const probe = await open(join(dir, 'probe'), 'w');
      const prototype = Object.getPrototypeOf(probe) as {
        datasync: (this: unknown) => Promise<void>;
      };
      await probe.close();
      const datasync = prototype.datasync;
      let syncs = 0;
      prototype.datasync = function (this: unknown) {
        syncs++;
        return datasync.call(this);
      };
      try {
        await Promise.all(
          Array.from({ length: 100 }, (_, i) => store.create(`/pods/p${i}`, `pod ${i}`)),
        );
      } finally {
        prototype.datasync = datasync;
        await store.close();
      }
      assert.ok(syncs >= 1 && syncs <= 3, `100 concurrent creates took ${syncs} syncs`);
    }));
});
