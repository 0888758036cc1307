// The ipam section in host-local's format (plugins/ipam/host-local,
// backend/allocator/config.go and range.go in containernetworking/plugins).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CniErrorCode } from '../../src/cni/errors.js';
import { type AddressRange, defaultDataDir, parseIpamConfig } from '../../src/ipam/config.js';
import { formatIp, formatPrefix } from '../../src/netaddr/ip.js';

function text(r: AddressRange): Record<string, string> {
  return {
    subnet: formatPrefix(r.subnet),
    rangeStart: formatIp(r.rangeStart),
    rangeEnd: formatIp(r.rangeEnd),
    gateway: formatIp(r.gateway),
  };
}

function onlyRange(raw: unknown): Record<string, string> {
  const config = parseIpamConfig(raw);
  assert.equal(config.rangeSets.length, 1);
  assert.equal(config.rangeSets[0]?.length, 1);
  const r = config.rangeSets[0]?.[0];
  assert.ok(r);
  return text(r);
}

describe('parseIpamConfig: range defaults', () => {
  // host-local Range.Canonicalize: the gateway defaults to the first address,
  // rangeStart to the first address, rangeEnd to the last address less the
  // broadcast for IPv4 (lastIP) and to the very last address for IPv6.
  const defaults: { range: Record<string, string>; expected: Record<string, string> }[] = [
    {
      range: { subnet: '10.1.0.0/24' },
      expected: {
        subnet: '10.1.0.0/24',
        rangeStart: '10.1.0.1',
        rangeEnd: '10.1.0.254',
        gateway: '10.1.0.1',
      },
    },
    {
      range: { subnet: '10.1.0.0/16' },
      expected: {
        subnet: '10.1.0.0/16',
        rangeStart: '10.1.0.1',
        rangeEnd: '10.1.255.254',
        gateway: '10.1.0.1',
      },
    },
    {
      range: { subnet: '10.1.0.4/30' },
      expected: {
        subnet: '10.1.0.4/30',
        rangeStart: '10.1.0.5',
        rangeEnd: '10.1.0.6',
        gateway: '10.1.0.5',
      },
    },
    {
      range: { subnet: 'fd00::/64' },
      expected: {
        subnet: 'fd00::/64',
        rangeStart: 'fd00::1',
        rangeEnd: 'fd00::ffff:ffff:ffff:ffff',
        gateway: 'fd00::1',
      },
    },
    {
      range: { subnet: 'fd00:1:2:3::/120' },
      expected: {
        subnet: 'fd00:1:2:3::/120',
        rangeStart: 'fd00:1:2:3::1',
        rangeEnd: 'fd00:1:2:3::ff',
        gateway: 'fd00:1:2:3::1',
      },
    },
    {
      range: {
        subnet: '10.1.0.0/24',
        rangeStart: '10.1.0.100',
        rangeEnd: '10.1.0.200',
        gateway: '10.1.0.254',
      },
      expected: {
        subnet: '10.1.0.0/24',
        rangeStart: '10.1.0.100',
        rangeEnd: '10.1.0.200',
        gateway: '10.1.0.254',
      },
    },
    {
      // Written in any valid form, kept canonical.
      range: { subnet: 'FD00:0::/64', rangeStart: 'fd00::0:10', gateway: 'FD00::FFFF' },
      expected: {
        subnet: 'fd00::/64',
        rangeStart: 'fd00::10',
        rangeEnd: 'fd00::ffff:ffff:ffff:ffff',
        gateway: 'fd00::ffff',
      },
    },
  ];
  for (const c of defaults) {
    it(JSON.stringify(c.range), () => {
      assert.deepEqual(onlyRange({ type: 'strata-ipam', ranges: [[c.range]] }), c.expected);
    });
  }

  // host-local config.go: a top-level `subnet` (with rangeStart, rangeEnd and
  // gateway beside it) is the older single-range form.
  it('reads the legacy top-level subnet form as one range set', () => {
    assert.deepEqual(
      onlyRange({
        type: 'host-local',
        subnet: '10.2.0.0/16',
        rangeStart: '10.2.1.0',
        rangeEnd: '10.2.1.255',
        gateway: '10.2.0.1',
      }),
      {
        subnet: '10.2.0.0/16',
        rangeStart: '10.2.1.0',
        rangeEnd: '10.2.1.255',
        gateway: '10.2.0.1',
      },
    );
    assert.deepEqual(onlyRange({ type: 'host-local', subnet: '10.2.0.0/24' }), {
      subnet: '10.2.0.0/24',
      rangeStart: '10.2.0.1',
      rangeEnd: '10.2.0.254',
      gateway: '10.2.0.1',
    });
  });

  // host-local: a top-level subnet beside ranges becomes the first range set.
  it('puts a legacy top-level subnet given beside ranges first', () => {
    const config = parseIpamConfig({
      type: 'host-local',
      subnet: '10.2.0.0/24',
      ranges: [[{ subnet: 'fd00:2::/64' }]],
    });
    assert.equal(config.rangeSets.length, 2);
    assert.equal(config.rangeSets[0]?.[0]?.subnet.length, 24);
    assert.equal(config.rangeSets[1]?.[0]?.subnet.address.family, 6);
  });

  it('keeps range sets and ranges in order: dual stack and a split IPv4 set', () => {
    const config = parseIpamConfig({
      type: 'strata-ipam',
      ranges: [
        [{ subnet: '10.1.0.0/24' }, { subnet: '10.1.1.0/24', rangeStart: '10.1.1.10' }],
        [{ subnet: 'fd00::/64' }],
      ],
    });
    assert.deepEqual(
      config.rangeSets.map((set) =>
        set.map((r) => `${formatIp(r.rangeStart)}-${formatIp(r.rangeEnd)}`),
      ),
      [['10.1.0.1-10.1.0.254', '10.1.1.10-10.1.1.254'], ['fd00::1-fd00::ffff:ffff:ffff:ffff']],
    );
  });

  it("reads routes, dataDir and resolvConf, with host-local's default dataDir", () => {
    const config = parseIpamConfig({
      type: 'strata-ipam',
      ranges: [[{ subnet: '10.1.0.0/24' }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '192.0.2.0/24', gw: '10.1.0.254' }],
      dataDir: '/run/strata/ipam',
      resolvConf: '/etc/resolv.conf',
    });
    assert.deepEqual(config.routes, [
      { dst: '0.0.0.0/0' },
      { dst: '192.0.2.0/24', gw: '10.1.0.254' },
    ]);
    assert.equal(config.dataDir, '/run/strata/ipam');
    assert.equal(config.resolvConf, '/etc/resolv.conf');
    assert.equal(config.type, 'strata-ipam');

    const plain = parseIpamConfig({ type: 'strata-ipam', subnet: '10.1.0.0/24' });
    assert.equal(plain.dataDir, '/var/lib/cni/networks');
    assert.equal(plain.dataDir, defaultDataDir);
    assert.deepEqual(plain.routes, []);
    assert.equal(plain.resolvConf, undefined);
  });
});

describe('parseIpamConfig: errors name the field', () => {
  const v4 = { subnet: '10.1.0.0/24' };
  const refused: { name: string; raw: unknown; message: RegExp }[] = [
    { name: 'not an object', raw: 'host-local', message: /^ipam: expected an object/ },
    { name: 'no type', raw: { ranges: [[v4]] }, message: /^ipam\.type: / },
    { name: 'no ranges at all', raw: { type: 't' }, message: /^ipam\.ranges: no address ranges/ },
    {
      name: 'empty ranges',
      raw: { type: 't', ranges: [] },
      message: /^ipam\.ranges: expected a non-empty/,
    },
    { name: 'ranges not a list', raw: { type: 't', ranges: v4 }, message: /^ipam\.ranges: / },
    {
      name: 'empty range set',
      raw: { type: 't', ranges: [[v4], []] },
      message: /^ipam\.ranges\[1\]: /,
    },
    {
      name: 'range set not a list',
      raw: { type: 't', ranges: [v4] },
      message: /^ipam\.ranges\[0\]: /,
    },
    {
      name: 'range not an object',
      raw: { type: 't', ranges: [['10.1.0.0/24']] },
      message: /^ipam\.ranges\[0\]\[0\]: expected an object/,
    },
    {
      name: 'subnet missing',
      raw: { type: 't', ranges: [[v4, { rangeStart: '10.1.1.1' }]] },
      message: /^ipam\.ranges\[0\]\[1\]\.subnet: not a CIDR subnet: undefined/,
    },
    {
      name: 'subnet not CIDR',
      raw: { type: 't', ranges: [[{ subnet: '10.1.0.0' }]] },
      message: /^ipam\.ranges\[0\]\[0\]\.subnet: not a CIDR subnet: "10\.1\.0\.0"/,
    },
    {
      // host-local: "Network has host bits set. For a subnet mask of length 24 the network address is 10.1.0.0"
      name: 'host bits set',
      raw: { type: 't', ranges: [[{ subnet: '10.1.0.5/24' }]] },
      message:
        /^ipam\.ranges\[0\]\[0\]\.subnet: 10\.1\.0\.5\/24 has host bits set.* 10\.1\.0\.0\/24/,
    },
    {
      // host-local: a network with fewer than two host bits is too small.
      name: 'IPv4 /31',
      raw: { type: 't', ranges: [[{ subnet: '10.1.0.0/31' }]] },
      message: /^ipam\.ranges\[0\]\[0\]\.subnet: .*too small/,
    },
    {
      name: 'IPv4 /32',
      raw: { type: 't', ranges: [[{ subnet: '10.1.0.1/32' }]] },
      message: /too small/,
    },
    {
      name: 'IPv6 /127',
      raw: { type: 't', ranges: [[{ subnet: 'fd00::/127' }]] },
      message: /too small/,
    },
    {
      name: 'rangeStart outside the subnet',
      raw: { type: 't', ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.1.10' }]] },
      message: /^ipam\.ranges\[0\]\[0\]\.rangeStart: 10\.1\.1\.10 is not in subnet 10\.1\.0\.0\/24/,
    },
    {
      name: 'rangeEnd outside the subnet',
      raw: { type: 't', ranges: [[{ subnet: '10.1.0.0/24', rangeEnd: '10.1.1.10' }]] },
      message: /^ipam\.ranges\[0\]\[0\]\.rangeEnd: /,
    },
    {
      name: 'gateway outside the subnet',
      raw: { type: 't', ranges: [[{ subnet: '10.1.0.0/24', gateway: '10.9.0.1' }]] },
      message: /^ipam\.ranges\[0\]\[0\]\.gateway: 10\.9\.0\.1 is not in subnet/,
    },
    {
      name: 'gateway not an address',
      raw: { type: 't', ranges: [[{ subnet: '10.1.0.0/24', gateway: '10.1.0.1/24' }]] },
      message: /^ipam\.ranges\[0\]\[0\]\.gateway: not an IP address: "10\.1\.0\.1\/24"/,
    },
    {
      name: 'rangeStart after rangeEnd',
      raw: {
        type: 't',
        ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.200', rangeEnd: '10.1.0.100' }]],
      },
      message: /^ipam\.ranges\[0\]\[0\]\.rangeStart: 10\.1\.0\.200 is after rangeEnd 10\.1\.0\.100/,
    },
    {
      name: 'IPv4 and IPv6 in one range set',
      raw: { type: 't', ranges: [[v4, { subnet: 'fd00::/64' }]] },
      message: /^ipam\.ranges\[0\]\[1\]\.subnet: mixes IPv4 and IPv6/,
    },
    {
      name: 'overlapping ranges in one set',
      raw: {
        type: 't',
        ranges: [[v4, { subnet: '10.1.0.0/24', rangeStart: '10.1.0.200' }]],
      },
      message: /^ipam\.ranges\[0\]\[1\]: overlaps ipam\.ranges\[0\]\[0\]/,
    },
    {
      name: 'overlapping range sets',
      raw: { type: 't', ranges: [[{ subnet: '10.1.0.0/16' }], [{ subnet: '10.1.2.0/24' }]] },
      message: /^ipam\.ranges\[1\]: overlaps range set ipam\.ranges\[0\]/,
    },
    {
      name: 'legacy form: errors name the top-level field',
      raw: { type: 't', subnet: '10.1.0.0/24', rangeStart: '10.2.0.1' },
      message: /^ipam\.rangeStart: 10\.2\.0\.1 is not in subnet/,
    },
    {
      name: 'legacy form: bad subnet',
      raw: { type: 't', subnet: 'ten' },
      message: /^ipam\.subnet: not a CIDR subnet: "ten"/,
    },
    {
      name: 'relative dataDir',
      raw: { type: 't', ranges: [[v4]], dataDir: 'var/lib/cni' },
      message: /^ipam\.dataDir: must be an absolute path/,
    },
    {
      name: 'resolvConf not a string',
      raw: { type: 't', ranges: [[v4]], resolvConf: true },
      message: /^ipam\.resolvConf: /,
    },
    {
      name: 'routes not a list',
      raw: { type: 't', ranges: [[v4]], routes: {} },
      message: /^ipam\.routes: /,
    },
    {
      name: 'route without dst',
      raw: { type: 't', ranges: [[v4]], routes: [{ dst: '0.0.0.0/0' }, { gw: '10.1.0.1' }] },
      message: /^ipam\.routes\[1\]\.dst: not a CIDR destination/,
    },
    {
      name: 'route gw not an address',
      raw: { type: 't', ranges: [[v4]], routes: [{ dst: '0.0.0.0/0', gw: 'gateway' }] },
      message: /^ipam\.routes\[0\]\.gw: not an IP address: "gateway"/,
    },
  ];
  for (const c of refused) {
    it(`${c.name}: code 7`, () => {
      assert.throws(() => parseIpamConfig(c.raw), {
        name: 'CniError',
        code: CniErrorCode.InvalidNetworkConfig,
        message: c.message,
      });
    });
  }

  // The message shows the range in effect: when rangeEnd (or rangeStart) was
  // defaulted, the user must see the defaulted address, not "undefined".
  it('names the defaulted rangeEnd when rangeStart lies after it', () => {
    assert.throws(
      () =>
        parseIpamConfig({
          type: 't',
          ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.255' }]],
        }),
      (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.match(
          error.message,
          /^ipam\.ranges\[0\]\[0\]\.rangeStart: 10\.1\.0\.255 is after rangeEnd/,
        );
        assert.doesNotMatch(error.message, /undefined/);
        assert.match(error.message, /10\.1\.0\.254/);
        return true;
      },
    );
  });
});
