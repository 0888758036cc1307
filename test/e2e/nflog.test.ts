// NetworkPolicy drop logging end to end, as root: a throwaway namespace with
// an nft rule that logs to nflog group 7 before it drops, DropLog listening
// in that namespace, and real TCP SYNs to a closed port. The test process
// enters the namespace only for the instant the socket is opened.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { DropLog } from '../../src/agent/policy-drop-log.js';
import type { DropRecord } from '../../src/policy/drop-log.js';
import { Lab, inNetns, isRoot, netnsPath } from '../support/netns.js';

const skip = isRoot() ? false : 'needs root for network namespaces';
const run = promisify(execFile);
const group = 7;

/** One connection attempt from inside `netns`; the SYN is dropped, so it times out. */
async function knock(netns: string, args: string[]): Promise<void> {
  await run('ip', ['netns', 'exec', netns, 'ncat', '--wait', '300ms', ...args], {
    timeout: 5_000,
  }).catch(() => undefined);
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

describe('NetworkPolicy drop log over nflog', { skip }, () => {
  const lab = new Lab();
  let netns: string;

  before(() => {
    netns = lab.netns('stl');
    const ruleset = `
      table inet strata_drop_log_test {
        chain input {
          type filter hook input priority 0; policy accept;
          tcp dport 9 log group ${group} prefix "ingress x/a" drop
          udp dport 9 log group ${group} prefix "not a pod" drop
        }
      }
    `;
    const nft = inNetns(netns, ['nft', '-f', '-'], { input: ruleset });
    assert.equal(nft.status, 0, nft.stderr);
  });

  after(() => {
    lab.cleanup();
  });

  it('reports dropped IPv4 and IPv6 SYNs with the pod, addresses, protocol and ports', async () => {
    const home = readlinkSync('/proc/thread-self/ns/net');
    const records: DropRecord[] = [];
    const log = new DropLog({ netns: netnsPath(netns), pollIntervalMs: 20 });
    await log.start(group, (record) => records.push(record));
    try {
      // The socket lives in the lab namespace; this thread is back in its own.
      assert.equal(readlinkSync('/proc/thread-self/ns/net'), home);
      await knock(netns, ['127.0.0.1', '9']);
      await knock(netns, ['::1', '9']);
      const v4 = await until('an IPv4 record', () => records.find((r) => r.family === 4));
      const v6 = await until('an IPv6 record', () => records.find((r) => r.family === 6));
      for (const [record, address] of [
        [v4, '127.0.0.1'],
        [v6, '::1'],
      ] as const) {
        assert.equal(record.prefix, 'ingress x/a');
        assert.equal(record.direction, 'ingress');
        assert.equal(record.pod, 'x/a');
        assert.equal(record.src, address);
        assert.equal(record.dst, address);
        assert.equal(record.protocol, 'tcp');
        assert.equal(record.dstPort, 9);
        assert.ok(record.srcPort !== undefined && record.srcPort >= 1024, `${record.srcPort}`);
        assert.ok(Math.abs(Date.parse(record.time) - Date.now()) < 10_000, record.time);
      }
      assert.equal(log.stats.unrecognized, 0);
    } finally {
      log.stop();
    }
  });

  it('counts logged packets whose prefix is not a pod’s without reporting them', async () => {
    const records: DropRecord[] = [];
    const log = new DropLog({ netns: netnsPath(netns), pollIntervalMs: 20 });
    await log.start(group, (record) => records.push(record));
    try {
      const udp = run(
        'ip',
        ['netns', 'exec', netns, 'ncat', '-u', '--send-only', '127.0.0.1', '9'],
        {
          timeout: 5_000,
        },
      );
      udp.child.stdin?.end('x\n');
      await udp.catch(() => undefined);
      await until('the foreign entry', () => (log.stats.unrecognized > 0 ? true : undefined));
      assert.deepEqual(records, []);
    } finally {
      log.stop();
    }
  });

  it('refuses a group another socket holds, and frees it at stop', async () => {
    const first = new DropLog({ netns: netnsPath(netns) });
    const second = new DropLog({ netns: netnsPath(netns) });
    await first.start(group, () => undefined);
    try {
      await assert.rejects(
        second.start(group, () => undefined),
        {
          message: `Cannot start the drop log on nflog group ${group}: another socket holds the group`,
        },
      );
      assert.equal(second.running, false);
      first.stop();
      await second.start(group, () => undefined);
      assert.equal(second.running, true);
    } finally {
      first.stop();
      second.stop();
    }
  });

  it('stops idempotently and leaves nothing to keep the process alive', async () => {
    const before = timers();
    const log = new DropLog({ netns: netnsPath(netns) });
    await log.start(group, () => undefined);
    assert.equal(timers(), before + 1);
    await assert.rejects(
      log.start(group, () => undefined),
      /already running/,
    );
    log.stop();
    log.stop();
    assert.equal(log.running, false);
    assert.equal(timers(), before);
    // A stop while start is still opening the socket wins: nothing is left running.
    const raced = log.start(group, () => undefined);
    log.stop();
    await raced;
    assert.equal(log.running, false);
    assert.equal(timers(), before);
  });
});
