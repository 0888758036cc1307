// The attachment's links, as pure decisions: the host veth's name and alias,
// the bridge's gateway addresses (the reference bridge plugin's ensureAddr),
// and the `ip -batch` lines for each side.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BridgeConfig } from '../../src/cni/bridge/config.js';
import {
  type BridgeAddressPlan,
  type ContainerStep,
  compileBridgeSysctls,
  compileContainerSide,
  compileHostVeth,
  compilePodSysctls,
  firstAddress,
  gatewayPrefix,
  hostVethName,
  isStrataVethName,
  ownerAlias,
  parseOwnerAlias,
  planBridgeAddresses,
} from '../../src/cni/bridge/links.js';
import { validateInterfaceName } from '../../src/cni/environment.js';
import { CniErrorCode } from '../../src/cni/errors.js';
import { formatIp, formatPrefix, parsePrefix } from '../../src/netaddr/ip.js';

describe('hostVethName', () => {
  it('is the same for the same attachment, so DEL finds it without the namespace', () => {
    assert.equal(
      hostVethName('podnet', 'c0ffee', 'eth0'),
      hostVethName('podnet', 'c0ffee', 'eth0'),
    );
  });

  it('is a valid interface name of at most 15 characters starting with "veth"', () => {
    const longId = 'f'.repeat(64);
    for (const name of [
      hostVethName('podnet', 'c0ffee', 'eth0'),
      hostVethName('n'.repeat(200), longId, 'net15'),
    ]) {
      assert.match(name, /^veth[0-9a-f]+$/);
      assert.ok(isStrataVethName(name));
      assert.ok(name.length <= 15, `${name} is ${name.length} characters`);
      validateInterfaceName(name, 'host veth');
    }
  });

  const variants: { what: string; a: [string, string, string]; b: [string, string, string] }[] = [
    { what: 'network', a: ['podnet', 'c1', 'eth0'], b: ['podnet2', 'c1', 'eth0'] },
    { what: 'container', a: ['podnet', 'c1', 'eth0'], b: ['podnet', 'c2', 'eth0'] },
    { what: 'ifname', a: ['podnet', 'c1', 'eth0'], b: ['podnet', 'c1', 'net1'] },
    // The parts are separated, so moving a character across the boundary changes the name.
    { what: 'boundary', a: ['podnet', 'c1', 'eth0'], b: ['podnetc', '1', 'eth0'] },
  ];
  for (const v of variants) {
    it(`differs when only the ${v.what} differs`, () => {
      assert.notEqual(hostVethName(...v.a), hostVethName(...v.b));
    });
  }

  it('does not collide across many pods of a node', () => {
    const names = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      names.add(hostVethName('podnet', `${i.toString(16).padStart(8, '0')}deadbeef`, 'eth0'));
    }
    assert.equal(names.size, 5000);
  });
});

describe('isStrataVethName', () => {
  // GC deletes links by this test: it must never claim another plugin's veth.
  for (const name of [
    'veth12345678',
    'vethABCDEF01234',
    'veth0123456789ab',
    'cali0123456789a',
    'veth0123456789g',
    'eth0',
  ]) {
    it(`does not claim ${name}`, () => {
      assert.equal(isStrataVethName(name), false);
    });
  }
});

describe('ownerAlias', () => {
  it('round-trips through parseOwnerAlias', () => {
    const alias = ownerAlias('podnet', 'c0ffee_1.x-y', 'eth0');
    assert.deepEqual(parseOwnerAlias(alias), {
      network: 'podnet',
      containerId: 'c0ffee_1.x-y',
      ifname: 'eth0',
    });
  });

  it('starts with the plugin name, so an operator reading `ip link` knows the owner', () => {
    assert.equal(ownerAlias('podnet', 'c1', 'eth0'), 'strata-cni podnet c1 eth0');
  });

  const foreign = [
    '',
    'strata-cni',
    'strata-cni podnet c1',
    'strata-cni podnet c1 eth0 extra',
    'bridge podnet c1 eth0',
    'strata-cni  c1 eth0',
  ];
  for (const alias of foreign) {
    it(`does not claim ${JSON.stringify(alias)}`, () => {
      assert.equal(parseOwnerAlias(alias), undefined);
    });
  }
});

describe('planBridgeAddresses (reference bridge ensureAddr)', () => {
  const cases: {
    name: string;
    existing: string[];
    gateways: string[];
    force: boolean;
    plan: BridgeAddressPlan | 'error';
  }[] = [
    {
      name: 'a new bridge gets the gateway',
      existing: [],
      gateways: ['10.1.0.1/24'],
      force: false,
      plan: { add: ['10.1.0.1/24'], remove: [] },
    },
    {
      name: 'the same address is kept',
      existing: ['10.1.0.1/24'],
      gateways: ['10.1.0.1/24'],
      force: false,
      plan: { add: [], remove: [] },
    },
    {
      name: 'a different IPv4 address is an error',
      existing: ['10.9.0.1/24'],
      gateways: ['10.1.0.1/24'],
      force: false,
      plan: 'error',
    },
    {
      name: 'a different IPv4 address is replaced with forceAddress',
      existing: ['10.9.0.1/24'],
      gateways: ['10.1.0.1/24'],
      force: true,
      plan: { add: ['10.1.0.1/24'], remove: ['10.9.0.1/24'] },
    },
    {
      // ensureAddr compares the IPNet strings: same IP, other mask, is a different address.
      name: 'the gateway IP with another prefix length is a different address',
      existing: ['10.1.0.1/16'],
      gateways: ['10.1.0.1/24'],
      force: false,
      plan: 'error',
    },
    {
      name: 'the gateway IP with another prefix length is replaced with forceAddress',
      existing: ['10.1.0.1/16'],
      gateways: ['10.1.0.1/24'],
      force: true,
      plan: { add: ['10.1.0.1/24'], remove: ['10.1.0.1/16'] },
    },
    {
      // "Multiple IPv6 addresses are allowed on the bridge if the corresponding subnets do not overlap."
      name: 'IPv6 in a non-overlapping subnet is added alongside',
      existing: ['fd00:1::1/64'],
      gateways: ['fd00:2::1/64'],
      force: false,
      plan: { add: ['fd00:2::1/64'], remove: [] },
    },
    {
      name: 'IPv6 in an overlapping subnet is an error',
      existing: ['fd00:1::1/64'],
      gateways: ['fd00:1::2/64'],
      force: false,
      plan: 'error',
    },
    {
      name: 'IPv6 in a subnet containing the existing one is an error',
      existing: ['fd00:1:0:5::1/64'],
      gateways: ['fd00:1::1/48'],
      force: false,
      plan: 'error',
    },
    {
      name: 'IPv6 in an overlapping subnet is replaced with forceAddress',
      existing: ['fd00:1::1/64'],
      gateways: ['fd00:1::2/64'],
      force: true,
      plan: { add: ['fd00:1::2/64'], remove: ['fd00:1::1/64'] },
    },
    {
      name: 'families do not conflict: dual stack on an IPv4 bridge',
      existing: ['10.1.0.1/24'],
      gateways: ['10.1.0.1/24', 'fd00::1/64'],
      force: false,
      plan: { add: ['fd00::1/64'], remove: [] },
    },
    {
      name: 'an existing IPv6 address does not block a new IPv4 gateway',
      existing: ['fd00::1/64'],
      gateways: ['10.1.0.1/24'],
      force: false,
      plan: { add: ['10.1.0.1/24'], remove: [] },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      if (c.plan === 'error') {
        assert.throws(() => planBridgeAddresses('cni0', c.existing, c.gateways, c.force), {
          name: 'CniError',
          code: CniErrorCode.InvalidNetworkConfig,
          message: /bridge "cni0" already has address .*set forceAddress/,
        });
      } else {
        assert.deepEqual(planBridgeAddresses('cni0', c.existing, c.gateways, c.force), c.plan);
      }
    });
  }

  it('names the bridge, the address it has and the one wanted', () => {
    assert.throws(() => planBridgeAddresses('br-pods', ['10.9.0.1/24'], ['10.1.0.1/24'], false), {
      message:
        'bridge "br-pods" already has address 10.9.0.1/24, different from 10.1.0.1/24 (set forceAddress to replace it)',
    });
  });
});

const bridgeConfig: BridgeConfig = {
  bridge: 'cni0',
  isGateway: true,
  isDefaultGateway: false,
  forceAddress: false,
  ipMasq: false,
  hairpinMode: false,
  promiscMode: false,
  enableDad: false,
  portIsolation: false,
  routedPods: false,
};

describe('compileHostVeth', () => {
  const host = {
    config: bridgeConfig,
    hostVeth: 'veth0123456789a',
    alias: 'strata-cni podnet c1 eth0',
    ifname: 'eth0',
    netns: '/var/run/netns/pod',
    mac: '02:00:00:00:00:05',
    hostMac: '02:00:00:00:00:06',
  };

  it('names both ends, gives the container end its MAC and the host end its owner alias', () => {
    assert.deepEqual(compileHostVeth(host), {
      name: 'veth0123456789a',
      mac: '02:00:00:00:00:06',
      peer: { name: 'eth0', mac: '02:00:00:00:00:05' },
      alias: 'strata-cni podnet c1 eth0',
      port: {},
    });
  });

  it('sets the mtu on both ends, and hairpin and isolation on the bridge port', () => {
    const plan = compileHostVeth({
      ...host,
      config: {
        ...bridgeConfig,
        bridge: 'br-pods',
        mtu: 1450,
        hairpinMode: true,
        portIsolation: true,
      },
    });
    assert.equal(plan.mtu, 1450);
    assert.equal(plan.peer.mtu, 1450);
    assert.deepEqual(plan.port, { hairpin: true, isolated: true });
    assert.deepEqual(
      compileHostVeth({ ...host, config: { ...bridgeConfig, hairpinMode: true } }).port,
      { hairpin: true },
    );
  });
});

/** A container step as the ip command that would do the same, to keep expectations readable. */
function asIpCommand(step: ContainerStep): string {
  if (step.op === 'up') return 'link set eth0 up';
  if (step.op === 'address') {
    return `addr add ${formatPrefix(step.prefix)} dev eth0${step.nodad ? ' nodad' : ''}${step.noprefixroute ? ' noprefixroute' : ''}`;
  }
  const r = step.route;
  let line = `route add ${formatPrefix(r.dst)}${r.gateway ? ` via ${formatIp(r.gateway)}` : ''} dev eth0`;
  if (r.priority !== undefined) line += ` metric ${r.priority}`;
  if (r.table !== undefined) line += ` table ${r.table}`;
  if (r.scope !== undefined) line += ` scope ${r.scope}`;
  if (r.mtu !== undefined) line += ` mtu ${r.mtu}`;
  if (r.advmss !== undefined) line += ` advmss ${r.advmss}`;
  return line;
}

describe('compileContainerSide', () => {
  const ips = [
    { address: '10.1.0.5/24', gateway: '10.1.0.1' },
    { address: 'fd00::5/64', gateway: 'fd00::1' },
  ];

  it("adds the addresses, brings the link up, then routes via each family's gateway", () => {
    assert.deepEqual(
      compileContainerSide(
        ips,
        [{ dst: '0.0.0.0/0' }, { dst: '::/0' }, { dst: '192.0.2.0/24', gw: '10.1.0.254' }],
        false,
      ).map(asIpCommand),
      [
        'addr add 10.1.0.5/24 dev eth0',
        'addr add fd00::5/64 dev eth0 nodad',
        'link set eth0 up',
        'route add 0.0.0.0/0 via 10.1.0.1 dev eth0',
        'route add ::/0 via fd00::1 dev eth0',
        'route add 192.0.2.0/24 via 10.1.0.254 dev eth0',
      ],
    );
  });

  // Reference bridge: DAD is off in the container unless `enabledad` is set.
  const dad: { enableDad: boolean; line: string }[] = [
    { enableDad: false, line: 'addr add fd00::5/64 dev eth0 nodad' },
    { enableDad: true, line: 'addr add fd00::5/64 dev eth0' },
  ];
  for (const c of dad) {
    it(`enabledad ${c.enableDad}: ${c.line}`, () => {
      const lines = compileContainerSide(ips, [], c.enableDad).map(asIpCommand);
      assert.equal(lines[1], c.line);
      assert.equal(lines[0], 'addr add 10.1.0.5/24 dev eth0');
    });
  }

  it('carries the 1.1.0 route fields', () => {
    const [, , route] = compileContainerSide(
      [{ address: '10.1.0.5/24', gateway: '10.1.0.1' }],
      [{ dst: '198.51.100.0/24', priority: 100, table: 200, scope: 0, mtu: 1400, advmss: 1360 }],
      false,
    );
    assert.ok(route);
    assert.equal(
      asIpCommand(route),
      'route add 198.51.100.0/24 via 10.1.0.1 dev eth0 metric 100 table 200 scope 0 mtu 1400 advmss 1360',
    );
  });

  it('adds an on-link route when the family has no gateway', () => {
    const steps = compileContainerSide(
      [{ address: '10.1.0.5/24' }],
      [{ dst: '192.0.2.0/24' }],
      false,
    );
    const last = steps.at(-1);
    assert.ok(last);
    assert.equal(asIpCommand(last), 'route add 192.0.2.0/24 dev eth0');
  });

  // routedPods: IPv4 keeps its on-link subnet (the bridge answers ARP for the other pods);
  // an IPv6 subnet is reached via the gateway, as the reference ptp plugin wires a pod.
  it('routedPods: routes an IPv6 subnet via the gateway, after a host route to it', () => {
    assert.deepEqual(
      compileContainerSide(ips, [{ dst: '0.0.0.0/0' }, { dst: '::/0' }], false, true).map(
        asIpCommand,
      ),
      [
        'addr add 10.1.0.5/24 dev eth0',
        'addr add fd00::5/64 dev eth0 nodad noprefixroute',
        'link set eth0 up',
        'route add fd00::1/128 dev eth0',
        'route add fd00::/64 via fd00::1 dev eth0',
        'route add 0.0.0.0/0 via 10.1.0.1 dev eth0',
        'route add ::/0 via fd00::1 dev eth0',
      ],
    );
  });

  it('routedPods: an IPAM route to the subnet itself is not added twice', () => {
    const lines = compileContainerSide(
      [{ address: 'fd00::5/64', gateway: 'fd00::1' }],
      [{ dst: 'fd00::/64' }],
      true,
      true,
    ).map(asIpCommand);
    assert.deepEqual(lines, [
      'addr add fd00::5/64 dev eth0 noprefixroute',
      'link set eth0 up',
      'route add fd00::1/128 dev eth0',
      'route add fd00::/64 via fd00::1 dev eth0',
    ]);
  });

  it('routedPods: two addresses of one subnet get one host route and one subnet route', () => {
    const lines = compileContainerSide(
      [
        { address: 'fd00::5/64', gateway: 'fd00::1' },
        { address: 'fd00::6/64', gateway: 'fd00::1' },
      ],
      [],
      false,
      true,
    ).map(asIpCommand);
    assert.deepEqual(lines.slice(3), [
      'route add fd00::1/128 dev eth0',
      'route add fd00::/64 via fd00::1 dev eth0',
    ]);
  });

  it('refuses an address or a route that is not a prefix', () => {
    assert.throws(() => compileContainerSide([{ address: 'banana' }], [], false), {
      code: CniErrorCode.InvalidNetworkConfig,
    });
    assert.throws(() => compileContainerSide(ips, [{ dst: '10.0.0.0/40' }], false), {
      code: CniErrorCode.InvalidNetworkConfig,
    });
  });
});

describe('routedPods sysctls', () => {
  const routed: BridgeConfig = { ...bridgeConfig, bridge: 'br.pods', routedPods: true };
  const v4 = [{ address: '10.1.0.5/24', gateway: '10.1.0.1' }];
  const v6 = [{ address: 'fd00::5/64', gateway: 'fd00::1' }];

  const lines = (sysctls: { path: string[]; value: string }[]): string[] =>
    sysctls.map((s) => `${s.path.join('/')}=${s.value}`);

  it('turns on proxy ARP (pvlan too, at once) on the bridge for IPv4 pods', () => {
    assert.deepEqual(lines(compileBridgeSysctls(routed, v4)), [
      'net/ipv4/conf/br.pods/proxy_arp=1',
      'net/ipv4/conf/br.pods/proxy_arp_pvlan=1',
      'net/ipv4/neigh/br.pods/proxy_delay=0',
    ]);
    assert.deepEqual(compileBridgeSysctls(bridgeConfig, v4), []);
  });

  it("skips DAD on the bridge's link-local address for IPv6 pods", () => {
    assert.deepEqual(lines(compileBridgeSysctls(routed, v6)), [
      'net/ipv6/conf/br.pods/accept_dad=0',
    ]);
    assert.equal(compileBridgeSysctls(routed, [...v4, ...v6]).length, 4);
    assert.deepEqual(compileBridgeSysctls(bridgeConfig, v6), []);
  });

  it('turns ICMPv6 redirects off in the pod for IPv6 pods', () => {
    assert.deepEqual(lines(compilePodSysctls(routed, 'net1', [...v4, ...v6])), [
      'net/ipv6/conf/net1/accept_redirects=0',
    ]);
    assert.deepEqual(compilePodSysctls(routed, 'eth0', v4), []);
    assert.deepEqual(compilePodSysctls(bridgeConfig, 'eth0', v6), []);
  });
});

describe('gatewayPrefix and firstAddress', () => {
  it('gives the gateway the prefix length of the pod address', () => {
    assert.equal(gatewayPrefix({ address: '10.1.0.5/24', gateway: '10.1.0.1' }), '10.1.0.1/24');
    assert.equal(gatewayPrefix({ address: 'fd00::5/64', gateway: 'fd00::1' }), 'fd00::1/64');
    assert.equal(gatewayPrefix({ address: '10.1.0.5/24' }), undefined);
  });

  // Reference bridge calcGatewayIP: the subnet's first address.
  it('firstAddress is the network address plus one', () => {
    const p = parsePrefix('10.1.0.77/24');
    const q = parsePrefix('fd00::77/64');
    assert.ok(p && q);
    assert.equal(firstAddress(p), '10.1.0.1');
    assert.equal(firstAddress(q), 'fd00::1');
  });
});
