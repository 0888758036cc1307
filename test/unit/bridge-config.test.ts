// strata-cni's configuration: the reference bridge plugin's fields, names and
// defaults (plugins/main/bridge in containernetworking/plugins), and a clear
// code 2 for the reference features strata does not implement.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBridgeConfig } from '../../src/cni/bridge/config.js';
import { readEnvironment } from '../../src/cni/environment.js';
import { CniErrorCode } from '../../src/cni/errors.js';
import { parseNetConf } from '../../src/cni/netconf.js';

const base = {
  cniVersion: '1.0.0',
  name: 'podnet',
  type: 'strata-cni',
  ipam: { type: 'strata-ipam', subnet: '10.1.0.0/24' },
};

function parse(
  fields: Record<string, unknown>,
  cniArgs?: string,
): ReturnType<typeof parseBridgeConfig> {
  const conf = parseNetConf({ ...base, ...fields });
  const env =
    cniArgs === undefined
      ? undefined
      : readEnvironment({
          CNI_COMMAND: 'ADD',
          CNI_CONTAINERID: 'c1',
          CNI_NETNS: '/var/run/netns/c1',
          CNI_IFNAME: 'eth0',
          CNI_ARGS: cniArgs,
        });
  return parseBridgeConfig(conf, env);
}

describe('parseBridgeConfig: defaults', () => {
  it('matches the reference plugin: bridge cni0, everything off', () => {
    assert.deepEqual(parse({}), {
      bridge: 'cni0',
      isGateway: false,
      isDefaultGateway: false,
      forceAddress: false,
      ipMasq: false,
      hairpinMode: false,
      promiscMode: false,
      enableDad: false,
      portIsolation: false,
      routedPods: false,
    });
  });

  it('reads every flag', () => {
    const config = parse({
      bridge: 'br-pods',
      isGateway: true,
      forceAddress: true,
      ipMasq: true,
      ipMasqBackend: 'nftables',
      hairpinMode: true,
      enabledad: true,
      portIsolation: true,
      mtu: 1450,
    });
    assert.equal(config.bridge, 'br-pods');
    assert.equal(config.isGateway, true);
    assert.equal(config.isDefaultGateway, false);
    assert.equal(config.forceAddress, true);
    assert.equal(config.ipMasq, true);
    assert.equal(config.hairpinMode, true);
    assert.equal(config.enableDad, true);
    assert.equal(config.portIsolation, true);
    assert.equal(config.mtu, 1450);
  });

  // Reference bridge cmdAdd: "if n.IsDefaultGW { n.IsGW = true }".
  it('isDefaultGateway implies isGateway', () => {
    const config = parse({ isDefaultGateway: true, isGateway: false });
    assert.equal(config.isDefaultGateway, true);
    assert.equal(config.isGateway, true);
  });

  it('treats null flags as unset', () => {
    assert.equal(parse({ ipMasq: null }).ipMasq, false);
  });

  it('accepts what libcni and the runtime add to a conflist entry', () => {
    parse({
      capabilities: { ips: true, mac: true },
      runtimeConfig: { ips: ['10.1.0.9/24'] },
      args: { cni: {} },
      dns: { nameservers: ['10.96.0.10'] },
      prevResult: { cniVersion: '1.0.0' },
      'cni.dev/valid-attachments': [],
      cniVersions: ['1.0.0'],
    });
  });
});

describe('parseBridgeConfig: reference fields strata does not implement', () => {
  // Code 2, "Unsupported field in network configuration. The error message
  // must contain the key and value of the unsupported field."
  const unsupported: { key: string; value: unknown; shown: string }[] = [
    { key: 'vlan', value: 100, shown: '"vlan": 100' },
    { key: 'vlanTrunk', value: [{ id: 101 }], shown: '"vlanTrunk": [{"id":101}]' },
    { key: 'macspoofchk', value: true, shown: '"macspoofchk": true' },
    { key: 'disableContainerInterface', value: true, shown: '"disableContainerInterface": true' },
    { key: 'ipMasqBackend', value: 'iptables', shown: '"ipMasqBackend": "iptables"' },
    { key: 'bridgeMode', value: 'l3', shown: '"bridgeMode": "l3"' },
    { key: 'isgateway', value: true, shown: '"isgateway": true' },
  ];
  for (const c of unsupported) {
    it(`${c.key}: ${JSON.stringify(c.value)} is code 2 naming key and value`, () => {
      assert.throws(() => parse({ [c.key]: c.value }), {
        name: 'CniError',
        code: CniErrorCode.UnsupportedField,
        message: new RegExp(c.shown.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
      });
    });
  }

  // The value that means "off" in the reference plugin changes nothing, so it is accepted.
  const off: { key: string; value: unknown }[] = [
    { key: 'vlan', value: 0 },
    { key: 'vlan', value: null },
    { key: 'preserveDefaultVlan', value: true },
    // Only meaningful together with vlan; the reference plugin ignores it otherwise.
    { key: 'preserveDefaultVlan', value: false },
    { key: 'macspoofchk', value: false },
    { key: 'disableContainerInterface', value: false },
    { key: 'vlanTrunk', value: null },
  ];
  for (const c of off) {
    it(`${c.key}: ${JSON.stringify(c.value)} is accepted`, () => {
      assert.equal(parse({ [c.key]: c.value }).bridge, 'cni0');
    });
  }

  it('port mappings are code 2, pointing at the portmap plugin', () => {
    assert.throws(
      () =>
        parse({
          runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
        }),
      { code: CniErrorCode.UnsupportedField, message: /runtimeConfig\.portMappings.*portmap/ },
    );
    assert.equal(parse({ runtimeConfig: { portMappings: [] } }).bridge, 'cni0');
  });
});

describe('parseBridgeConfig: invalid values', () => {
  const invalid: { fields: Record<string, unknown>; message: RegExp }[] = [
    { fields: { bridge: 5 }, message: /^bridge must be an interface name, got 5/ },
    { fields: { bridge: '' }, message: /^bridge must not be empty/ },
    {
      fields: { bridge: 'a-very-long-bridge' },
      message: /^bridge "a-very-long-bridge" is longer than 15/,
    },
    { fields: { bridge: 'br/0' }, message: /^bridge "br\/0" contains/ },
    { fields: { isGateway: 'true' }, message: /^isGateway must be true or false, got "true"/ },
    { fields: { hairpinMode: 1 }, message: /^hairpinMode must be true or false/ },
    { fields: { enabledad: 'yes' }, message: /^enabledad must be true or false/ },
    {
      fields: { routedPods: 'yes', isGateway: true },
      message: /^routedPods must be true or false, got "yes"/,
    },
    // The node routes between the pods through the bridge's gateway address.
    { fields: { routedPods: true }, message: /^routedPods needs isGateway/ },
    { fields: { routedPods: true, isGateway: false }, message: /^routedPods needs isGateway/ },
    // Reference bridge: "cannot set hairpin mode and promiscuous mode at the same time".
    { fields: { hairpinMode: true, promiscMode: true }, message: /hairpinMode and promiscMode/ },
  ];
  for (const c of invalid) {
    it(`${JSON.stringify(c.fields)}: code 7`, () => {
      assert.throws(() => parse(c.fields), {
        code: CniErrorCode.InvalidNetworkConfig,
        message: c.message,
      });
    });
  }

  // 68 is IPv4's minimum MTU (RFC 791); 65535 the largest a veth takes.
  const mtus: { mtu: unknown; expected: number | undefined | 'refused' }[] = [
    { mtu: 68, expected: 68 },
    { mtu: 1500, expected: 1500 },
    { mtu: 9000, expected: 9000 },
    { mtu: 65535, expected: 65535 },
    { mtu: 0, expected: undefined },
    { mtu: 67, expected: 'refused' },
    { mtu: 65536, expected: 'refused' },
    { mtu: -1, expected: 'refused' },
    { mtu: 1500.5, expected: 'refused' },
    { mtu: '1500', expected: 'refused' },
  ];
  for (const c of mtus) {
    it(`mtu ${JSON.stringify(c.mtu)}: ${c.expected === 'refused' ? 'code 7' : String(c.expected)}`, () => {
      if (c.expected === 'refused') {
        assert.throws(() => parse({ mtu: c.mtu }), {
          code: CniErrorCode.InvalidNetworkConfig,
          message: /^mtu must be an integer from 68 to 65535/,
        });
      } else {
        assert.equal(parse({ mtu: c.mtu }).mtu, c.expected);
      }
    });
  }
});

// strata's own field (docs/cni.md): pods reach each other through the node's IP layer.
describe('parseBridgeConfig: routedPods', () => {
  it('is off unless asked, and then leaves portIsolation as written', () => {
    assert.equal(parse({ isGateway: true }).routedPods, false);
    assert.equal(parse({ isGateway: true, routedPods: null }).routedPods, false);
    assert.equal(parse({ isGateway: true, routedPods: false }).portIsolation, false);
    assert.equal(parse({ routedPods: false, portIsolation: true }).portIsolation, true);
  });

  it('implies portIsolation, as isDefaultGateway implies isGateway', () => {
    const config = parse({ isGateway: true, routedPods: true, portIsolation: false });
    assert.equal(config.routedPods, true);
    assert.equal(config.portIsolation, true);
  });

  it('is satisfied by isDefaultGateway', () => {
    const config = parse({ isDefaultGateway: true, routedPods: true });
    assert.equal(config.isGateway, true);
    assert.equal(config.routedPods, true);
  });

  it('accepts hairpinMode beside it (an isolated port never hairpins)', () => {
    assert.equal(parse({ isGateway: true, routedPods: true, hairpinMode: true }).hairpinMode, true);
  });
});

describe('parseBridgeConfig: MAC address', () => {
  // Reference bridge: runtimeConfig.mac wins over args.cni.mac, which wins over CNI_ARGS MAC=.
  it('takes runtimeConfig.mac first, then args.cni.mac, then CNI_ARGS MAC', () => {
    const runtime = { runtimeConfig: { mac: '02:00:00:00:00:01' } };
    const args = { args: { cni: { mac: '02:00:00:00:00:02' } } };
    const cniArgs = 'MAC=02:00:00:00:00:03';
    assert.equal(parse({ ...runtime, ...args }, cniArgs).mac, '02:00:00:00:00:01');
    assert.equal(parse(args, cniArgs).mac, '02:00:00:00:00:02');
    assert.equal(parse({}, cniArgs).mac, '02:00:00:00:00:03');
    assert.equal(parse({}, '').mac, undefined);
    assert.equal(parse({}).mac, undefined);
  });

  it('lower-cases the address', () => {
    assert.equal(parse({ runtimeConfig: { mac: '0A:58:AB:CD:EF:01' } }).mac, '0a:58:ab:cd:ef:01');
  });

  const bad: { mac: unknown; message: RegExp }[] = [
    { mac: '02:00:00:00:00', message: /not a MAC address/ },
    { mac: '02-00-00-00-00-01', message: /not a MAC address/ },
    { mac: '02:00:00:00:00:0g', message: /not a MAC address/ },
    { mac: '0200.0000.0001', message: /not a MAC address/ },
    { mac: 2, message: /not a MAC address: 2/ },
    // The low bit of the first octet marks a group address; an interface cannot have one.
    { mac: '01:00:5e:00:00:01', message: /01:00:5e:00:00:01 is a multicast address/ },
    { mac: 'ff:ff:ff:ff:ff:ff', message: /ff:ff:ff:ff:ff:ff is a multicast address/ },
  ];
  for (const c of bad) {
    it(`refuses ${JSON.stringify(c.mac)} with code 7, naming the field`, () => {
      assert.throws(() => parse({ runtimeConfig: { mac: c.mac } }), {
        code: CniErrorCode.InvalidNetworkConfig,
        message: new RegExp(`^runtimeConfig\\.mac: ${c.message.source}`),
      });
    });
  }

  it('names CNI_ARGS when the bad address came from there', () => {
    assert.throws(() => parse({}, 'MAC=nope'), {
      message: /^CNI_ARGS MAC: not a MAC address: "nope"/,
    });
  });
});
