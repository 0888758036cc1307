// The fields every plugin configuration shares (CNI spec 1.1.0, "Plugin
// configuration objects"), read from stdin.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CniErrorCode } from '../../src/cni/errors.js';
import { decodeJson, parseNetConf } from '../../src/cni/netconf.js';

const base = { cniVersion: '1.1.0', name: 'podnet', type: 'strata-cni' };

describe('decodeJson', () => {
  it('parses an object', () => {
    assert.deepEqual(decodeJson('{"cniVersion":"1.0.0"}'), { cniVersion: '1.0.0' });
  });

  // CNI spec 1.1.0, "Error": code 6 is "Failed to decode content".
  for (const text of ['', '{', '{"a":1,}', '[]', '"conf"', '42', 'null']) {
    it(`refuses ${JSON.stringify(text)} with code 6`, () => {
      assert.throws(() => decodeJson(text), {
        name: 'CniError',
        code: CniErrorCode.DecodingFailure,
        message: /cannot decode the network configuration on stdin/,
      });
    });
  }
});

describe('parseNetConf', () => {
  it('reads the common fields and keeps the raw object for the plugin', () => {
    const raw = {
      ...base,
      bridge: 'br0',
      ipam: { type: 'strata-ipam', subnet: '10.1.0.0/24' },
      dns: { nameservers: ['10.96.0.10'] },
      runtimeConfig: { ips: ['10.1.0.9/24'] },
      args: { cni: { ips: ['10.1.0.9'] } },
    };
    const conf = parseNetConf(raw);
    assert.equal(conf.cniVersion, '1.1.0');
    assert.equal(conf.name, 'podnet');
    assert.equal(conf.type, 'strata-cni');
    assert.equal(conf.raw, raw);
    assert.deepEqual(conf.ipam, { type: 'strata-ipam', subnet: '10.1.0.0/24' });
    assert.deepEqual(conf.dns, { nameservers: ['10.96.0.10'] });
    assert.deepEqual(conf.runtimeConfig, { ips: ['10.1.0.9/24'] });
    assert.deepEqual(conf.args, { cni: { ips: ['10.1.0.9'] } });
    assert.equal(conf.prevResult, undefined);
    assert.equal(conf.validAttachments, undefined);
  });

  it('defaults what is optional to empty', () => {
    const conf = parseNetConf(base);
    assert.equal(conf.ipam, undefined);
    assert.deepEqual(conf.dns, {});
    assert.deepEqual(conf.runtimeConfig, {});
    assert.deepEqual(conf.args, {});
  });

  it('decodes a prevResult of an older version', () => {
    const conf = parseNetConf({
      ...base,
      cniVersion: '0.4.0',
      prevResult: {
        cniVersion: '0.4.0',
        ips: [{ version: '4', address: '10.1.0.5/24', gateway: '10.1.0.1' }],
      },
    });
    assert.deepEqual(conf.prevResult?.ips, [{ address: '10.1.0.5/24', gateway: '10.1.0.1' }]);
  });

  // CNI spec 1.1.0, GC: libcni passes the attachments still in use.
  it('reads cni.dev/valid-attachments', () => {
    const conf = parseNetConf({
      ...base,
      'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }],
    });
    assert.deepEqual(conf.validAttachments, [{ containerId: 'c1', ifname: 'eth0' }]);
  });

  it('accepts the older cni.dev/attachments key, the new one winning when both are set', () => {
    const old = parseNetConf({
      ...base,
      'cni.dev/attachments': [{ containerID: 'c2', ifname: 'net1' }],
    });
    assert.deepEqual(old.validAttachments, [{ containerId: 'c2', ifname: 'net1' }]);
    const both = parseNetConf({
      ...base,
      'cni.dev/attachments': [{ containerID: 'old', ifname: 'eth0' }],
      'cni.dev/valid-attachments': [],
    });
    assert.deepEqual(both.validAttachments, []);
  });

  // Code 7 "Invalid network config"; code 1 for a version not spoken.
  const refused: { raw: Record<string, unknown>; code: number; message: RegExp }[] = [
    { raw: { name: 'n', type: 't' }, code: 7, message: /cniVersion must be set/ },
    { raw: { ...base, cniVersion: '0.2.0' }, code: 1, message: /incompatible CNI versions/ },
    { raw: { ...base, cniVersion: '9.9.9' }, code: 1, message: /"9\.9\.9"/ },
    { raw: { ...base, name: undefined }, code: 7, message: /^name must start/ },
    { raw: { ...base, name: '' }, code: 7, message: /^name must start/ },
    { raw: { ...base, name: '-net' }, code: 7, message: /got "-net"/ },
    { raw: { ...base, name: 'pod net' }, code: 7, message: /got "pod net"/ },
    { raw: { ...base, name: 'pod/net' }, code: 7, message: /got "pod\/net"/ },
    { raw: { ...base, type: '' }, code: 7, message: /type must name the plugin/ },
    { raw: { ...base, type: 3 }, code: 7, message: /type must name the plugin/ },
    { raw: { ...base, ipam: 'host-local' }, code: 7, message: /^ipam must be an object/ },
    { raw: { ...base, runtimeConfig: [] }, code: 7, message: /^runtimeConfig must be an object/ },
    { raw: { ...base, args: 'x' }, code: 7, message: /^args must be an object/ },
    {
      raw: { ...base, 'cni.dev/valid-attachments': {} },
      code: 7,
      message: /cni\.dev\/valid-attachments must be a list/,
    },
    {
      raw: { ...base, 'cni.dev/valid-attachments': [{ containerID: 'c1' }] },
      code: 7,
      message: /cni\.dev\/valid-attachments\[0\] must be an object/,
    },
    {
      raw: { ...base, 'cni.dev/attachments': [null] },
      code: 7,
      message: /cni\.dev\/attachments\[0\]/,
    },
    {
      raw: { ...base, prevResult: { ips: [{}] } },
      code: 6,
      message: /prevResult\.ips\[0\]\.address/,
    },
    { raw: { ...base, dns: { search: 'x' } }, code: 6, message: /dns\.search/ },
  ];
  for (const c of refused) {
    it(`refuses ${JSON.stringify(c.raw)} with code ${c.code}`, () => {
      assert.throws(() => parseNetConf(c.raw), {
        name: 'CniError',
        code: c.code,
        message: c.message,
      });
    });
  }

  it('accepts the names the spec allows', () => {
    for (const name of ['a', '0net', 'pod-net_1.v2'])
      assert.equal(parseNetConf({ ...base, name }).name, name);
  });
});
