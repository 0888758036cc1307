// The CNI result as printed for each spec version, and read back from a
// prevResult or a delegated IPAM plugin's output.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CniErrorCode } from '../../src/cni/errors.js';
import { type CniResult, decodeResult, emptyResult, encodeResult } from '../../src/cni/result.js';
import type { CniVersion } from '../../src/cni/version.js';

function fullResult(): CniResult {
  return {
    interfaces: [
      { name: 'cni0', mac: '0a:58:0a:01:00:01' },
      { name: 'veth0123456789a', mac: '0a:58:0a:01:00:02' },
      { name: 'eth0', mac: '0a:58:0a:01:00:05', mtu: 1450, sandbox: '/var/run/netns/pod' },
    ],
    ips: [
      { address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 2 },
      { address: 'fd00::5/64', gateway: 'fd00::1', interface: 2 },
    ],
    routes: [
      { dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400, advmss: 1360, priority: 100 },
      { dst: '::/0', table: 100, scope: 0 },
      { dst: '192.0.2.0/24' },
    ],
    dns: { nameservers: ['10.96.0.10'], domain: 'cluster.local', search: ['svc.cluster.local'] },
  };
}

// 0.3.x and 0.4.0: each IP carries `version` ("4" or "6"); interfaces have no
// mtu and routes only dst and gw. 1.0.0 drops `version`. 1.1.0 adds the
// interface mtu and the route mtu, advmss, priority, table and scope.
const legacy = {
  interfaces: [
    { name: 'cni0', mac: '0a:58:0a:01:00:01' },
    { name: 'veth0123456789a', mac: '0a:58:0a:01:00:02' },
    { name: 'eth0', mac: '0a:58:0a:01:00:05', sandbox: '/var/run/netns/pod' },
  ],
  ips: [
    { version: '4', address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 2 },
    { version: '6', address: 'fd00::5/64', gateway: 'fd00::1', interface: 2 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '::/0' }, { dst: '192.0.2.0/24' }],
  dns: { nameservers: ['10.96.0.10'], domain: 'cluster.local', search: ['svc.cluster.local'] },
};

const encodings: { version: CniVersion; expected: Record<string, unknown> }[] = [
  { version: '0.3.0', expected: { cniVersion: '0.3.0', ...legacy } },
  { version: '0.3.1', expected: { cniVersion: '0.3.1', ...legacy } },
  { version: '0.4.0', expected: { cniVersion: '0.4.0', ...legacy } },
  {
    version: '1.0.0',
    expected: {
      cniVersion: '1.0.0',
      interfaces: legacy.interfaces,
      ips: [
        { address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 2 },
        { address: 'fd00::5/64', gateway: 'fd00::1', interface: 2 },
      ],
      routes: legacy.routes,
      dns: legacy.dns,
    },
  },
  {
    version: '1.1.0',
    expected: {
      cniVersion: '1.1.0',
      ...fullResult(),
    },
  },
];

describe('encodeResult', () => {
  for (const c of encodings) {
    it(`prints the ${c.version} shape`, () => {
      assert.deepEqual(encodeResult(fullResult(), c.version), c.expected);
    });
  }

  it('omits empty lists and an empty dns object (the spec marks them optional)', () => {
    for (const version of ['0.3.1', '1.0.0', '1.1.0'] as const) {
      assert.deepEqual(encodeResult(emptyResult(), version), { cniVersion: version });
    }
    const noDns = { ...fullResult(), dns: { nameservers: [], search: [] } };
    assert.equal('dns' in encodeResult(noDns, '1.1.0'), false);
  });
});

describe('decodeResult', () => {
  for (const c of encodings) {
    it(`reads back a ${c.version} result`, () => {
      const decoded = decodeResult(JSON.parse(JSON.stringify(c.expected)));
      const expected = fullResult();
      if (c.version !== '1.1.0') {
        // What the older version could not carry is gone, the rest survives.
        for (const i of expected.interfaces) delete i.mtu;
        expected.routes = expected.routes.map((r) =>
          r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst },
        );
      }
      assert.deepEqual(decoded, expected);
    });
  }

  it('reads an empty object as an empty result', () => {
    assert.deepEqual(decodeResult({ cniVersion: '1.0.0' }), emptyResult());
  });

  it('ignores unknown keys and nulls', () => {
    assert.deepEqual(
      decodeResult({
        cniVersion: '1.0.0',
        ips: null,
        extra: 1,
        routes: [{ dst: '::/0', gw: null }],
      }),
      { ...emptyResult(), routes: [{ dst: '::/0' }] },
    );
  });

  // CNI spec 1.1.0, "Error": code 6 is "Failed to decode content".
  const broken: { raw: unknown; field?: string; path: string }[] = [
    { raw: 'nope', path: 'prevResult: expected an object' },
    { raw: [], path: 'prevResult: expected an object' },
    { raw: null, path: 'prevResult: expected an object' },
    { raw: { interfaces: {} }, path: 'prevResult.interfaces: expected a list' },
    { raw: { interfaces: [{}] }, path: 'prevResult.interfaces[0].name: missing' },
    {
      raw: { interfaces: [{ name: 5 }] },
      path: 'prevResult.interfaces[0].name: expected a string',
    },
    { raw: { interfaces: [{ name: 'a', mtu: '1500' }] }, path: 'prevResult.interfaces[0].mtu' },
    { raw: { ips: [7] }, path: 'prevResult.ips[0]: expected an object' },
    { raw: { ips: [{ gateway: '10.1.0.1' }] }, path: 'prevResult.ips[0].address: missing' },
    { raw: { ips: [{ address: 'x', interface: 1.5 }] }, path: 'prevResult.ips[0].interface' },
    { raw: { routes: [{ gw: '10.1.0.1' }] }, path: 'prevResult.routes[0].dst: missing' },
    { raw: { routes: [{ dst: '::/0', table: 'main' }] }, path: 'prevResult.routes[0].table' },
    { raw: { dns: [] }, path: 'prevResult.dns: expected an object' },
    { raw: { dns: { nameservers: '10.96.0.10' } }, path: 'prevResult.dns.nameservers' },
    { raw: { ips: [{}] }, field: 'ipam result', path: 'ipam result.ips[0].address: missing' },
  ];
  for (const c of broken) {
    it(`refuses ${JSON.stringify(c.raw)} with code 6 naming ${c.path}`, () => {
      assert.throws(() => decodeResult(c.raw, c.field), {
        name: 'CniError',
        code: CniErrorCode.DecodingFailure,
        message: new RegExp(`cannot decode ${c.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
      });
    });
  }
});

describe('a decoded result passed on', () => {
  // Spec 1.1.0 "Chained Plugins": each plugin gets the previous plugin's result as it was;
  // fields this model does not hold (1.1.0's socketPath and pciID, a plugin's own) must survive.
  it('is encoded back verbatim in its own version', () => {
    const printed = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'net1', socketPath: '/run/vhost.sock', pciID: '0000:00:1f.6' }],
      ips: [{ address: '10.1.0.5/24', interface: 0 }],
      custom: { kept: true },
    };
    const decoded = decodeResult(printed);
    assert.deepEqual(encodeResult(decoded, '1.1.0'), printed);
  });

  it('is converted when another version is asked for', () => {
    const decoded = decodeResult({ cniVersion: '1.1.0', ips: [{ address: '10.1.0.5/24' }] });
    assert.deepEqual(encodeResult(decoded, '0.4.0'), {
      cniVersion: '0.4.0',
      ips: [{ version: '4', address: '10.1.0.5/24' }],
    });
  });
});
