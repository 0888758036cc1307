// Drop logging's pure half: the log prefix the ruleset writes and the agent
// reads back, a logged packet turned into a record, and its JSON line.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dropRecord } from '../../src/agent/policy-drop-log.js';
import {
  DROP_LOG_PREFIX_MAX,
  dropLogPodKey,
  dropLogPrefix,
  formatDropRecord,
  parseDropLogPrefix,
} from '../../src/policy/drop-log.js';

// 10.1.2.3:50000 -> 10.1.2.4:80, a TCP SYN.
const tcpSyn = Buffer.from(
  [
    '45 00 003c 0000 4000 40 06 0000 0a010203 0a010204',
    'c350 0050 00000000 00000000 5002 ffff 0000 0000',
  ]
    .join('')
    .replaceAll(' ', ''),
  'hex',
);

describe('drop log prefix', () => {
  it('is "<direction> <namespace>/<pod>" and parses back', () => {
    assert.equal(dropLogPrefix('ingress', 'x/a'), 'ingress x/a');
    assert.equal(dropLogPrefix('egress', 'prod/web-7d9c-x2'), 'egress prod/web-7d9c-x2');
    assert.deepEqual(parseDropLogPrefix('ingress x/a'), { direction: 'ingress', pod: 'x/a' });
    assert.deepEqual(parseDropLogPrefix('egress prod/web-7d9c-x2'), {
      direction: 'egress',
      pod: 'prod/web-7d9c-x2',
    });
  });

  it('fits nftables’ 127 bytes, keeping long pod keys distinct with a hash', () => {
    const namespace = 'n'.repeat(63);
    const a = `${namespace}/${'p'.repeat(200)}a`;
    const b = `${namespace}/${'p'.repeat(200)}b`;
    for (const direction of ['ingress', 'egress'] as const) {
      const prefixA = dropLogPrefix(direction, a);
      assert.equal(prefixA.length, DROP_LOG_PREFIX_MAX);
      assert.notEqual(prefixA, dropLogPrefix(direction, b));
      assert.match(prefixA, /~[0-9a-f]{8}$/);
      assert.deepEqual(parseDropLogPrefix(prefixA), {
        direction,
        pod: dropLogPodKey(direction, a),
      });
    }
    // A key that fits stays as it is, up to the last byte.
    const exact = `x/${'p'.repeat(DROP_LOG_PREFIX_MAX - 'ingress x/'.length)}`;
    assert.equal(dropLogPrefix('ingress', exact), `ingress ${exact}`);
  });

  it('refuses a key that is not <namespace>/<pod>, or would break the quoted prefix', () => {
    for (const key of ['a', 'x/', '/a', 'x/a/b', 'x/a b', 'x/"a', 'x/a\\']) {
      assert.throws(() => dropLogPrefix('ingress', key), /must be "<namespace>\/<pod>"/);
    }
  });

  it('reads other prefixes as not a drop log entry', () => {
    for (const prefix of ['', 'ingress', 'ingress ', 'inbound x/a', 'ingress x', 'egress x/a b']) {
      assert.equal(parseDropLogPrefix(prefix), undefined, prefix);
    }
  });
});

describe('drop records', () => {
  const receivedAt = new Date('2025-01-02T03:04:05.678Z');

  it('combine the prefix and the packet’s headers, timed by the kernel when it can', () => {
    assert.deepEqual(
      dropRecord({ group: 7, family: 2, prefix: 'ingress x/a', payload: tcpSyn }, receivedAt),
      {
        time: '2025-01-02T03:04:05.678Z',
        prefix: 'ingress x/a',
        direction: 'ingress',
        pod: 'x/a',
        family: 4,
        src: '10.1.2.3',
        dst: '10.1.2.4',
        protocol: 'tcp',
        srcPort: 50000,
        dstPort: 80,
      },
    );
    const stamped = dropRecord(
      { group: 7, family: 2, prefix: 'ingress x/a', payload: tcpSyn, time: new Date(0) },
      receivedAt,
    );
    assert.equal(stamped?.time, '1970-01-01T00:00:00.000Z');
  });

  it('are not made from foreign prefixes or missing payloads', () => {
    assert.equal(
      dropRecord({ group: 7, family: 2, prefix: 'someone else', payload: tcpSyn }, receivedAt),
      undefined,
    );
    assert.equal(dropRecord({ group: 7, family: 2, prefix: 'ingress x/a' }, receivedAt), undefined);
  });

  it('format as one JSON line in a fixed field order, without absent fields', () => {
    const line = formatDropRecord({
      prefix: 'egress x/a',
      protocol: 'icmp',
      dst: '10.0.0.2',
      src: '10.0.0.1',
      family: 4,
      pod: 'x/a',
      direction: 'egress',
      time: '2025-01-02T03:04:05.678Z',
      icmpType: 8,
      icmpCode: 0,
    });
    assert.equal(
      line,
      '{"time":"2025-01-02T03:04:05.678Z","direction":"egress","pod":"x/a","family":4,' +
        '"protocol":"icmp","src":"10.0.0.1","dst":"10.0.0.2","icmpType":8,"icmpCode":0,' +
        '"prefix":"egress x/a"}',
    );
    assert.ok(!line.includes('\n'));
  });
});
