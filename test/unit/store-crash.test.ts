// Acknowledged means durable: a child process writes to a FileStore as fast
// as it can and is killed with SIGKILL mid-flight, several times over one
// directory; after each kill every write it reported must be there, the
// revision must cover them, and the store must take writes again.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { FileStore } from '../../src/store/file.js';
import type { Acknowledged } from '../support/store-writer.js';

const writer = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'store-writer.js');
const rounds = 5;
const snapshotEvery = 200;

/** Resolves with the child's whole stdout and stderr once it has exited and closed them. */
function outputOf(child: ChildProcess) {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const closed = new Promise<{ signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) => {
      child.on('close', (_code, signal) => {
        resolve({ signal, stdout, stderr });
      });
    },
  );
  return { closed, stdout: () => stdout };
}

/** Runs the writer for round `round` until it has written for `runMs`, then kills it with SIGKILL. */
async function writeUntilKilled(dir: string, round: number, runMs: number) {
  const child = spawn(process.execPath, [writer, dir, String(round)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = outputOf(child);
  try {
    const started = Date.now();
    while (!output.stdout().startsWith('ready\n')) {
      if (child.exitCode !== null || Date.now() - started > 10_000) {
        const { stderr } = await output.closed;
        assert.fail(`the writer did not start (exit ${child.exitCode}): ${stderr}`);
      }
      await sleep(5);
    }
    await sleep(runMs);
  } finally {
    child.kill('SIGKILL');
  }
  const { signal, stdout, stderr } = await output.closed;
  assert.equal(signal, 'SIGKILL', `the writer stopped before the kill: ${stderr}`);
  // A line the kill cut short was never printed whole: it is not an acknowledgement.
  const lines = stdout.split('\n').slice(1, -1);
  return lines.map((line) => JSON.parse(line) as Acknowledged);
}

describe('FileStore under kill -9', () => {
  it(`loses no acknowledged write over ${rounds} killed writers`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-store-crash-'));
    const pods = new Map<string, { value: string; revision: number }>();
    const deleted = new Set<string>();
    let counter = 0;
    let committed = 0;
    try {
      for (let round = 1; round <= rounds; round++) {
        const acknowledged = await writeUntilKilled(dir, round, 150 + Math.random() * 100);
        assert.ok(acknowledged.length > 0, `round ${round} acknowledged no write`);
        let counterThisRound: number | undefined;
        for (const write of acknowledged) {
          committed = Math.max(committed, write.committed);
          if (write.op === 'delete') deleted.add(write.key);
          else if (write.key === '/counter') counterThisRound = Number(write.value);
          else pods.set(write.key, { value: write.value, revision: write.revision });
        }

        const store = await FileStore.open(dir, { snapshotEvery });
        try {
          const revision = store.revision();
          assert.ok(revision >= committed, `revision ${revision} < acknowledged ${committed}`);
          for (const [key, { value, revision: modRevision }] of pods) {
            const kv = await store.get(key);
            assert.deepEqual(
              kv && [kv.value, kv.modRevision],
              [value, modRevision],
              `${key} acknowledged at revision ${modRevision}`,
            );
          }
          for (const key of deleted) assert.equal(await store.get(key), undefined, key);
          // The counter is updated in sequence: at most the one write in flight is extra.
          const stored = Number((await store.get('/counter'))?.value);
          assert.ok(stored >= (counterThisRound ?? counter), `counter ${stored}`);
          if (counterThisRound !== undefined) assert.ok(stored <= counterThisRound + 1);
          counter = stored;

          const listed = await store.list('');
          assert.equal(listed.revision, revision);
          for (const kv of listed.items) {
            assert.ok(kv.createRevision <= kv.modRevision && kv.modRevision <= revision, kv.key);
          }
          // Each event key is deleted before the next is created: one at most was in flight.
          const events = listed.items.filter((kv) => kv.key.startsWith(`/events/${round}-`));
          assert.ok(events.length <= 1, `${events.length} event keys left`);

          const after = await store.create(`/pods/${round}-after-crash`, 'after');
          assert.equal(after.modRevision, revision + 1);
          pods.set(after.key, { value: after.value, revision: after.modRevision });
          committed = after.modRevision;
        } finally {
          await store.close();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
