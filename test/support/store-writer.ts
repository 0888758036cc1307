/**
 * The child of test/unit/store-crash.test.ts: opens a FileStore in the
 * directory given as argument and writes as fast as it can until killed,
 * printing one JSON line per acknowledged write on stdout. Writes to a pipe
 * are synchronous in Node on Linux, so a printed line is never lost to the kill.
 *
 * Three writers run at once: creates of `/pods/<round>-<n>` sixteen at a time
 * (group commit), one counter updated in sequence, and `/events/<round>-<n>`
 * keys each created and then deleted.
 */
import { FileStore } from '../../src/store/file.js';

const [dir, round] = process.argv.slice(2);
if (dir === undefined || round === undefined) {
  process.stderr.write('usage: store-writer <dir> <round>\n');
  process.exit(2);
}

/**
 * One acknowledged write, as the test reads it back: for a put, the key's new
 * modRevision; `committed` is the store's revision when the write resolved,
 * every write up to which the store has reported durable.
 */
export type Acknowledged =
  | { op: 'put'; key: string; value: string; revision: number; committed: number }
  | { op: 'delete'; key: string; committed: number };

function acknowledge(line: Acknowledged): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

const store = await FileStore.open(dir, { snapshotEvery: 200 });
process.stdout.write('ready\n');

async function createPods(lane: number): Promise<never> {
  for (let n = lane; ; n += 16) {
    const key = `/pods/${round}-${n}`;
    const kv = await store.create(key, `pod ${n} of round ${round}`);
    acknowledge({
      op: 'put',
      key,
      value: kv.value,
      revision: kv.modRevision,
      committed: store.revision(),
    });
  }
}

async function countUp(): Promise<never> {
  const key = '/counter';
  let current = (await store.get(key)) ?? (await store.create(key, '0'));
  for (;;) {
    const value = String(Number(current.value) + 1);
    current = await store.update(key, value, current.modRevision);
    acknowledge({
      op: 'put',
      key,
      value,
      revision: current.modRevision,
      committed: store.revision(),
    });
  }
}

async function createAndDelete(): Promise<never> {
  for (let n = 0; ; n++) {
    const key = `/events/${round}-${n}`;
    await store.create(key, 'event');
    await store.delete(key);
    acknowledge({ op: 'delete', key, committed: store.revision() });
  }
}

await Promise.all([
  ...Array.from({ length: 16 }, (_, lane) => createPods(lane)),
  countUp(),
  createAndDelete(),
]);
