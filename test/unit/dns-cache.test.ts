// The cluster DNS server's response cache (src/dns/cache.ts): which queries
// share a stored response, which never get one, and that a hit carries the
// id of the query it answers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from 'dns-packet';
import { AnswerCache, cacheKey, withQueryId } from '../../src/dns/cache.js';
import { query } from './dns-fixtures.js';

const name = 'web.shop.svc.cluster.local';

describe('cacheKey', () => {
  it('is the same for queries that differ only by id', () => {
    assert.equal(
      cacheKey(query(name, 'A', { id: 1 }), 'udp'),
      cacheKey(query(name, 'A', { id: 2 }), 'udp'),
    );
    assert.notEqual(cacheKey(query(name, 'A'), 'udp'), undefined);
  });

  it('tells apart everything the response depends on', () => {
    const keys = [
      cacheKey(query(name, 'A'), 'udp'),
      cacheKey(query(name, 'A'), 'tcp'),
      cacheKey(query(name, 'AAAA'), 'udp'),
      cacheKey(query(name.toUpperCase(), 'A'), 'udp'),
      cacheKey(query(name, 'A', { recursionDesired: false }), 'udp'),
      cacheKey(query(name, 'A', { edns: 512 }), 'udp'),
      cacheKey(query(name, 'A', { edns: 1232 }), 'udp'),
      cacheKey(query(name, 'A', { edns: 4096 }), 'udp'),
    ];
    assert.equal(new Set(keys).size, keys.length);
    // Over TCP the advertised size no longer matters.
    assert.equal(
      cacheKey(query(name, 'A', { edns: 1232 }), 'tcp'),
      cacheKey(query(name, 'A', { edns: 4096 }), 'tcp'),
    );
  });

  it('leaves anything but a plain query to the full path', () => {
    const base = query(name, 'A');
    const response = Buffer.from(base);
    response[2] = (response[2] ?? 0) | 0x80;
    const notify = encode({ type: 'query', flags: 4 << 11, questions: [{ name, type: 'SOA' }] });
    const two = encode({
      type: 'query',
      questions: [
        { name, type: 'A' },
        { name, type: 'AAAA' },
      ],
    });
    for (const [what, message] of [
      ['a response', response],
      ['NOTIFY', notify],
      ['two questions', two],
      ['a cut question', base.subarray(0, base.length - 2)],
      ['trailing bytes', Buffer.concat([base, Buffer.from([0])])],
      ['EDNS version 1', query(name, 'A', { edns: 1232, ednsVersion: 1 })],
      ['a header only', base.subarray(0, 12)],
    ] as const) {
      assert.equal(cacheKey(message, 'udp'), undefined, what);
    }
  });
});

describe('AnswerCache', () => {
  it('hands back a copy with the id of the query', () => {
    const cache = new AnswerCache();
    const stored = Buffer.from([0x12, 0x34, 0x81, 0x80, 0, 0]);
    cache.set('k', stored);
    const hit = cache.get('k');
    assert.ok(hit);
    const reply = withQueryId(hit, Buffer.from([0xab, 0xcd, 1, 0]));
    assert.deepEqual([...reply], [0xab, 0xcd, 0x81, 0x80, 0, 0]);
    assert.deepEqual([...hit], [0x12, 0x34, 0x81, 0x80, 0, 0], 'the stored response is untouched');
  });

  it('evicts the oldest entry past its size, and empties on clear', () => {
    const cache = new AnswerCache(2);
    cache.set('a', Buffer.from('a'));
    cache.set('b', Buffer.from('b'));
    cache.set('c', Buffer.from('c'));
    assert.equal(cache.get('a'), undefined);
    assert.ok(cache.get('b') && cache.get('c'));
    assert.equal(cache.size, 2);
    cache.clear();
    assert.equal(cache.size, 0);
  });
});
