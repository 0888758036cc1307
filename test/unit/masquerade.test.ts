// The nftables transactions behind ipMasq: the text handed to `nft -f -`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compileMasqueradeAdd,
  compileMasqueradeBase,
  compileMasqueradeDelete,
  compileMasqueradeRemove,
  masqueradeTable,
} from '../../src/cni/masquerade.js';

const declarations = [
  'add table inet strata_cni',
  'add set inet strata_cni masq_v4 { type ipv4_addr; }',
  'add set inet strata_cni exempt_v4 { type ipv4_addr . ipv4_addr; flags interval; }',
  'add set inet strata_cni masq_v6 { type ipv6_addr; }',
  'add set inet strata_cni exempt_v6 { type ipv6_addr . ipv6_addr; flags interval; }',
];

describe('compileMasqueradeBase', () => {
  it('lays down the table, the sets and a NAT chain at srcnat priority', () => {
    assert.equal(masqueradeTable, 'strata_cni');
    assert.deepEqual(compileMasqueradeBase(), [
      ...declarations,
      'add chain inet strata_cni postrouting { type nat hook postrouting priority srcnat; policy accept; }',
      'flush chain inet strata_cni postrouting',
      'add rule inet strata_cni postrouting ip saddr . ip daddr @exempt_v4 return',
      'add rule inet strata_cni postrouting ip6 saddr . ip6 daddr @exempt_v6 return',
      'add rule inet strata_cni postrouting ip saddr @masq_v4 ip daddr != 224.0.0.0/4 masquerade',
      'add rule inet strata_cni postrouting ip6 saddr @masq_v6 ip6 daddr != ff00::/8 masquerade',
    ]);
  });

  // The reference plugin's ip.SetupIPMasq: traffic to the pod's own subnet is
  // accepted before anything else, and multicast is never masqueraded.
  it('returns exempt traffic before any masquerade rule, and flushes before adding rules', () => {
    const lines = compileMasqueradeBase();
    const flush = lines.findIndex((l) => l.startsWith('flush chain'));
    const firstRule = lines.findIndex((l) => l.startsWith('add rule'));
    const lastReturn = lines.map((l) => l.endsWith(' return')).lastIndexOf(true);
    const firstMasq = lines.findIndex((l) => l.endsWith(' masquerade'));
    assert.ok(flush >= 0 && flush < firstRule);
    assert.ok(lastReturn < firstMasq);
  });
});

describe('compileMasqueradeAdd', () => {
  // Each pod address gets one element in the masquerade set and one
  // exemption for its own subnet, both commented with the owner for GC.
  const cases: { address: string; owner: string; expected: string[] }[] = [
    {
      address: '10.1.0.5/24',
      owner: 'podnet vethabc',
      expected: [
        'add element inet strata_cni masq_v4 { 10.1.0.5 comment "podnet vethabc" }',
        'add element inet strata_cni exempt_v4 { 10.1.0.5 . 10.1.0.0/24 comment "podnet vethabc" }',
      ],
    },
    {
      address: '10.1.2.3/16',
      owner: 'n v',
      expected: [
        'add element inet strata_cni masq_v4 { 10.1.2.3 comment "n v" }',
        'add element inet strata_cni exempt_v4 { 10.1.2.3 . 10.1.0.0/16 comment "n v" }',
      ],
    },
    {
      address: 'fd00::5/64',
      owner: 'podnet vethabc',
      expected: [
        'add element inet strata_cni masq_v6 { fd00::5 comment "podnet vethabc" }',
        'add element inet strata_cni exempt_v6 { fd00::5 . fd00::/64 comment "podnet vethabc" }',
      ],
    },
  ];
  for (const c of cases) {
    it(c.address, () => {
      assert.deepEqual(compileMasqueradeAdd([{ address: c.address, owner: c.owner }]), c.expected);
    });
  }

  it('puts every address of a dual-stack pod in one transaction, in order', () => {
    const lines = compileMasqueradeAdd([
      { address: '10.1.0.5/24', owner: 'o' },
      { address: 'fd00::5/64', owner: 'o' },
    ]);
    assert.equal(lines.length, 4);
    assert.match(lines[0] ?? '', /masq_v4/);
    assert.match(lines[2] ?? '', /masq_v6/);
  });

  it('adds nothing for an address without a prefix length', () => {
    assert.deepEqual(compileMasqueradeAdd([{ address: '10.1.0.5', owner: 'o' }]), []);
    assert.deepEqual(compileMasqueradeAdd([]), []);
  });
});

describe('compileMasqueradeDelete', () => {
  it('deletes exactly the elements an ADD created, without comments', () => {
    const entries = [
      { address: '10.1.0.5/24', owner: 'podnet vethabc' },
      { address: 'fd00::5/64', owner: 'podnet vethabc' },
    ];
    assert.deepEqual(compileMasqueradeDelete(entries), [
      'delete element inet strata_cni masq_v4 { 10.1.0.5 }',
      'delete element inet strata_cni exempt_v4 { 10.1.0.5 . 10.1.0.0/24 }',
      'delete element inet strata_cni masq_v6 { fd00::5 }',
      'delete element inet strata_cni exempt_v6 { fd00::5 . fd00::/64 }',
    ]);
    // Each delete names the same element (key) its add created.
    const keys = (lines: string[]): string[] =>
      lines.map((l) => l.replace(/^(add|delete) /, '').replace(/ comment "[^"]*"/, ''));
    assert.deepEqual(keys(compileMasqueradeDelete(entries)), keys(compileMasqueradeAdd(entries)));
  });
});

describe('compileMasqueradeRemove', () => {
  it('is empty when there is nothing to remove', () => {
    assert.deepEqual(compileMasqueradeRemove([]), []);
  });

  // nft 1.0.6 has no `destroy`: add-then-delete removes an element whether or
  // not it exists, in one transaction that cannot fail on a missing element.
  it('declares the sets, then adds and deletes each element', () => {
    assert.deepEqual(
      compileMasqueradeRemove([{ address: '10.1.0.5/24', owner: 'podnet vethabc' }]),
      [
        ...declarations,
        'add element inet strata_cni masq_v4 { 10.1.0.5 comment "podnet vethabc" }',
        'add element inet strata_cni exempt_v4 { 10.1.0.5 . 10.1.0.0/24 comment "podnet vethabc" }',
        'delete element inet strata_cni masq_v4 { 10.1.0.5 }',
        'delete element inet strata_cni exempt_v4 { 10.1.0.5 . 10.1.0.0/24 }',
      ],
    );
  });

  it('never touches the chain: other pods keep their masquerading', () => {
    const lines = compileMasqueradeRemove([
      { address: '10.1.0.5/24', owner: 'o' },
      { address: 'fd00::5/64', owner: 'o' },
    ]);
    assert.equal(
      lines.some((l) => /chain|rule|flush/.test(l)),
      false,
    );
    assert.deepEqual(
      lines.filter((l) => l.startsWith('delete ')),
      [
        'delete element inet strata_cni masq_v4 { 10.1.0.5 }',
        'delete element inet strata_cni exempt_v4 { 10.1.0.5 . 10.1.0.0/24 }',
        'delete element inet strata_cni masq_v6 { fd00::5 }',
        'delete element inet strata_cni exempt_v6 { fd00::5 . fd00::/64 }',
      ],
    );
  });
});
