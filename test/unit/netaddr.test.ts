// Address parsing and prefix arithmetic: the text strata prints is what
// host-local prints (Go's net.IP.String, RFC 5952 for IPv6), because it names
// the allocation files and appears in every CNI result.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type IpAddress,
  type IpPrefix,
  defaultRoute,
  familyOf,
  formatIp,
  formatPrefix,
  lastAddress,
  networkAddress,
  networkOf,
  nextIp,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixesOverlap,
} from '../../src/netaddr/ip.js';

function ip(text: string): IpAddress {
  const parsed = parseIp(text);
  assert.ok(parsed, `test setup: ${text} should parse`);
  return parsed;
}

function prefix(text: string): IpPrefix {
  const parsed = parsePrefix(text);
  assert.ok(parsed, `test setup: ${text} should parse`);
  return parsed;
}

describe('parseIp / formatIp', () => {
  // RFC 5952 section 4: lower case, leading zeros dropped, the longest run of
  // zero groups compressed (the first one on a tie), a single zero group not.
  const canonical: { input: string; family: 4 | 6; output: string; rule: string }[] = [
    { input: '10.1.0.1', family: 4, output: '10.1.0.1', rule: 'dotted quad' },
    { input: '0.0.0.0', family: 4, output: '0.0.0.0', rule: 'unspecified IPv4' },
    { input: '255.255.255.255', family: 4, output: '255.255.255.255', rule: 'broadcast' },
    {
      input: '2001:0db8:0000:0000:0000:0000:0000:0001',
      family: 6,
      output: '2001:db8::1',
      rule: 'RFC 5952 4.1 and 4.2.1: no leading zeros, zeros compressed',
    },
    { input: '2001:DB8::1', family: 6, output: '2001:db8::1', rule: 'RFC 5952 4.3: lower case' },
    {
      input: '2001:db8:0:1:1:1:1:1',
      family: 6,
      output: '2001:db8:0:1:1:1:1:1',
      rule: 'RFC 5952 4.2.2: one zero group is not compressed',
    },
    {
      input: '2001:0:0:1:0:0:0:1',
      family: 6,
      output: '2001:0:0:1::1',
      rule: 'RFC 5952 4.2.3: the longest run is compressed',
    },
    {
      input: '2001:db8:0:0:1:0:0:1',
      family: 6,
      output: '2001:db8::1:0:0:1',
      rule: 'RFC 5952 4.2.3: on a tie the first run is compressed',
    },
    { input: '0:0:0:0:0:0:0:0', family: 6, output: '::', rule: 'unspecified IPv6' },
    { input: '::1', family: 6, output: '::1', rule: 'loopback' },
    { input: 'fe80::', family: 6, output: 'fe80::', rule: 'trailing zeros compressed' },
    {
      input: '1:0:0:2:0:0:0:3',
      family: 6,
      output: '1:0:0:2::3',
      rule: 'RFC 5952 4.2.3: the longest run is compressed',
    },
    {
      input: '1:0:0:2:0:0:3:4',
      family: 6,
      output: '1::2:0:0:3:4',
      rule: 'RFC 5952 4.2.3: of equal runs, the first',
    },
    {
      input: '1:2:3:4:5:6:7::',
      family: 6,
      output: '1:2:3:4:5:6:7:0',
      rule: 'RFC 5952 4.2.2: a single zero group is not compressed',
    },
    {
      input: '::ffff:10.1.0.1',
      family: 6,
      output: '::ffff:10.1.0.1',
      rule: 'RFC 5952 5: IPv4-mapped keeps its dotted tail',
    },
    {
      input: '64:ff9b::192.0.2.33',
      family: 6,
      output: '64:ff9b::c000:221',
      rule: 'IPv4 tail read',
    },
  ];
  for (const c of canonical) {
    it(`${c.input} -> ${c.output} (${c.rule})`, () => {
      const parsed = ip(c.input);
      assert.equal(parsed.family, c.family);
      assert.equal(formatIp(parsed), c.output);
    });
  }

  it('holds the address as its numeric value', () => {
    assert.deepEqual(parseIp('10.1.0.1'), { family: 4, value: 0x0a010001n });
    assert.deepEqual(parseIp('::1'), { family: 6, value: 1n });
  });

  const rejected: { input: string; why: string }[] = [
    { input: '10.1', why: 'shorthand IPv4 that inet_aton would accept' },
    { input: '10.1.0', why: 'three parts' },
    { input: '167837697', why: 'a bare number' },
    { input: '0x0a.0.0.1', why: 'hex part' },
    { input: '010.1.0.1', why: 'leading zero (Go 1.17+ refuses: could be read as octal)' },
    { input: '10.1.0.256', why: 'part over 255' },
    { input: 'fe80::1%eth0', why: 'zone id: not an address of a pod' },
    { input: '10.1.0.1%eth0', why: 'zone id on IPv4' },
    { input: '1:2:3:4:5:6:7:8:9', why: 'nine groups' },
    { input: '1::2::3', why: 'two "::"' },
    { input: ' 10.1.0.1', why: 'surrounding white space' },
    { input: '10.1.0.1/24', why: 'a prefix, not an address' },
    { input: '', why: 'empty' },
    { input: 'localhost', why: 'a name' },
    { input: ':::', why: 'three colons' },
    { input: ':1:2:3:4:5:6:7', why: 'a single leading colon' },
    { input: '1:2:3:4:5:6:7:', why: 'a single trailing colon' },
    { input: '1:2:3:4:5:6:7', why: 'seven groups without "::"' },
    { input: '1:2:3:4:5:6:7:8::', why: '"::" standing for no group' },
    { input: '12345::1', why: 'a group of five digits' },
    { input: 'g::1', why: 'not hex' },
    { input: '1.2.3.4::', why: 'IPv4 part before "::"' },
    { input: '::1.2.3.4:5', why: 'IPv4 part not at the end' },
    { input: '::ffff:1.2.3.256', why: 'IPv4 tail part over 255' },
    { input: '1:2:3:4:5:6:7:1.2.3.4', why: 'IPv4 tail making nine groups' },
  ];
  for (const c of rejected) {
    it(`rejects ${JSON.stringify(c.input)} (${c.why})`, () => {
      assert.equal(parseIp(c.input), undefined);
    });
  }
});

describe('parsePrefix', () => {
  it('keeps the address as written, host bits included', () => {
    const p = prefix('10.1.0.5/24');
    assert.equal(formatIp(p.address), '10.1.0.5');
    assert.equal(p.length, 24);
    assert.equal(formatPrefix(p), '10.1.0.5/24');
  });

  const accepted = ['0.0.0.0/0', '10.1.0.0/32', '::/0', 'fd00::/128', '2001:db8::/64'];
  for (const text of accepted) {
    it(`accepts ${text}`, () => {
      assert.equal(formatPrefix(prefix(text)), text);
    });
  }

  const rejected = [
    '10.1.0.0',
    '10.1.0.0/',
    '10.1.0.0/33',
    '::/129',
    '10.1.0.0/-1',
    '10.1.0.0/+8',
    '10.1.0.0/a',
    '10.1.0.0/24/8',
    '10.1/16',
    'fe80::%eth0/64',
    '/24',
  ];
  for (const text of rejected) {
    it(`rejects ${JSON.stringify(text)}`, () => {
      assert.equal(parsePrefix(text), undefined);
    });
  }
});

describe('prefix arithmetic', () => {
  const cases: { prefix: string; network: string; first: string; last: string }[] = [
    { prefix: '10.1.0.5/24', network: '10.1.0.0/24', first: '10.1.0.0', last: '10.1.0.255' },
    { prefix: '10.1.2.3/16', network: '10.1.0.0/16', first: '10.1.0.0', last: '10.1.255.255' },
    { prefix: '10.1.0.7/30', network: '10.1.0.4/30', first: '10.1.0.4', last: '10.1.0.7' },
    { prefix: '10.1.0.7/32', network: '10.1.0.7/32', first: '10.1.0.7', last: '10.1.0.7' },
    { prefix: '0.0.0.0/0', network: '0.0.0.0/0', first: '0.0.0.0', last: '255.255.255.255' },
    {
      prefix: 'fd00::1234/64',
      network: 'fd00::/64',
      first: 'fd00::',
      last: 'fd00::ffff:ffff:ffff:ffff',
    },
    {
      prefix: '2001:db8:1:2::9/48',
      network: '2001:db8:1::/48',
      first: '2001:db8:1::',
      last: '2001:db8:1:ffff:ffff:ffff:ffff:ffff',
    },
  ];
  for (const c of cases) {
    it(`${c.prefix}: network ${c.network}, ${c.first} to ${c.last}`, () => {
      const p = prefix(c.prefix);
      assert.equal(networkOf(p), c.network);
      assert.equal(formatIp(networkAddress(p)), c.first);
      assert.equal(formatIp(lastAddress(p)), c.last);
    });
  }

  const contains: { prefix: string; ip: string; expected: boolean }[] = [
    { prefix: '10.1.0.0/24', ip: '10.1.0.0', expected: true },
    { prefix: '10.1.0.0/24', ip: '10.1.0.255', expected: true },
    { prefix: '10.1.0.0/24', ip: '10.1.1.0', expected: false },
    { prefix: '10.1.0.9/24', ip: '10.1.0.200', expected: true },
    { prefix: '0.0.0.0/0', ip: '192.0.2.1', expected: true },
    { prefix: '0.0.0.0/0', ip: '::1', expected: false },
    { prefix: '::/0', ip: '10.1.0.1', expected: false },
    { prefix: 'fd00::/64', ip: 'fd00::ffff:ffff:ffff:ffff', expected: true },
    { prefix: 'fd00::/64', ip: 'fd00:0:0:1::', expected: false },
  ];
  for (const c of contains) {
    it(`${c.prefix} ${c.expected ? 'contains' : 'does not contain'} ${c.ip}`, () => {
      assert.equal(prefixContains(prefix(c.prefix), ip(c.ip)), c.expected);
    });
  }

  const overlaps: { a: string; b: string; expected: boolean }[] = [
    { a: '10.1.0.0/16', b: '10.1.2.0/24', expected: true },
    { a: '10.1.2.0/24', b: '10.1.0.0/16', expected: true },
    { a: '10.1.0.0/24', b: '10.1.1.0/24', expected: false },
    { a: 'fd00::/64', b: 'fd00::/48', expected: true },
    { a: 'fd00:1::/64', b: 'fd00:2::/64', expected: false },
    { a: '0.0.0.0/0', b: '::/0', expected: false },
  ];
  for (const c of overlaps) {
    it(`${c.a} and ${c.b} ${c.expected ? 'overlap' : 'do not overlap'}`, () => {
      assert.equal(prefixesOverlap(prefix(c.a), prefix(c.b)), c.expected);
    });
  }

  it('nextIp carries across octets and groups', () => {
    assert.equal(formatIp(nextIp(ip('10.1.0.255'))), '10.1.1.0');
    assert.equal(formatIp(nextIp(ip('fd00::ffff'))), 'fd00::1:0');
  });

  it('familyOf reads addresses and prefixes, undefined for anything else', () => {
    assert.equal(familyOf('10.1.0.1'), 4);
    assert.equal(familyOf('10.1.0.0/24'), 4);
    assert.equal(familyOf('fd00::1'), 6);
    assert.equal(familyOf('fd00::/64'), 6);
    assert.equal(familyOf('nonsense'), undefined);
  });

  it('defaultRoute is the all-zeroes prefix of the family', () => {
    assert.equal(defaultRoute(4), '0.0.0.0/0');
    assert.equal(defaultRoute(6), '::/0');
  });
});
