// The parts of an HBONE CONNECT request (src/mesh/hbone/connect-request.ts):
// the authority names the destination workload by IP and port only, as
// ztunnel sends and accepts it; `forwarded` follows RFC 7239.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  forwardedFor,
  formatAuthority,
  newTraceparent,
  parseAuthority,
  parseForwardedFor,
} from '../../src/mesh/hbone/connect-request.js';

describe('parseAuthority', () => {
  it('reads <ipv4>:<port> and [<ipv6>]:<port>', () => {
    assert.deepEqual(parseAuthority('10.244.1.7:8080'), { address: '10.244.1.7', port: 8080 });
    assert.deepEqual(parseAuthority('[fd00:10:244::7]:443'), {
      address: 'fd00:10:244::7',
      port: 443,
    });
    assert.deepEqual(parseAuthority('[::1]:1'), { address: '::1', port: 1 });
    assert.deepEqual(parseAuthority('127.0.0.1:65535'), { address: '127.0.0.1', port: 65535 });
  });

  it('refuses names, missing or out-of-range ports, bare IPv6 and zones', () => {
    for (const authority of [
      '',
      'backend.shop.svc.cluster.local:80',
      '10.0.0.1',
      '10.0.0.1:',
      '10.0.0.1:0',
      '10.0.0.1:65536',
      '10.0.0.1:80a',
      '10.0.0.1:-1',
      '10.0.0.256:80',
      '::1:80',
      '[::1]',
      '[fe80::1%eth0]:80',
      '[10.0.0.1]:80',
      ':80',
    ]) {
      assert.equal(parseAuthority(authority), undefined, authority);
    }
  });

  it('round-trips with formatAuthority', () => {
    for (const endpoint of [
      { address: '10.0.0.1', port: 80 },
      { address: '2001:db8::1', port: 15008 },
    ]) {
      assert.deepEqual(parseAuthority(formatAuthority(endpoint)), endpoint);
    }
    assert.equal(formatAuthority({ address: '2001:db8::1', port: 80 }), '[2001:db8::1]:80');
  });
});

describe('forwarded', () => {
  it('writes for= as RFC 7239 section 6 asks, quoting IPv6 in brackets', () => {
    assert.equal(forwardedFor('10.244.1.7'), 'for=10.244.1.7');
    assert.equal(forwardedFor('fd00::7'), 'for="[fd00::7]"');
  });

  it('reads the first for= back, ignoring other parameters and hops', () => {
    assert.equal(parseForwardedFor('for=10.244.1.7'), '10.244.1.7');
    assert.equal(parseForwardedFor('for="[fd00::7]"'), 'fd00::7');
    assert.equal(parseForwardedFor('proto=https; For=10.0.0.9, for=10.0.0.1'), '10.0.0.9');
    assert.equal(parseForwardedFor('for=_hidden'), undefined);
    assert.equal(parseForwardedFor('by=10.0.0.1'), undefined);
    assert.equal(parseForwardedFor(undefined), undefined);
  });
});

describe('newTraceparent', () => {
  it('is a sampled W3C trace context of version 00, new each time', () => {
    const one = newTraceparent();
    assert.match(one, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.notEqual(one, newTraceparent());
  });
});
