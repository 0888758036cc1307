// The reference bridge plugin's own cases (containernetworking/plugins,
// plugins/main/bridge/bridge_test.go) that this kernel supports, run against
// strata-cni end to end: bridge creation and reuse, MTU, hairpin and
// promiscuous mode, ipMasq, DEL idempotence, rollback of a failed ADD,
// forceAddress, result versions, VERSION, and the runtime's MAC and IP requests.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  Lab,
  inNetns,
  isRoot,
  link,
  links,
  netnsPath,
  sh,
  strataHostVeths,
  uniqueName,
} from '../support/netns.js';
import {
  type PluginCall,
  allocationFiles,
  assertCniError,
  bridgeConf,
  callPlugin,
  mustCall,
} from '../support/plugin.js';

const skip = isRoot() ? false : 'needs root for network namespaces';

interface AddResult {
  cniVersion: string;
  interfaces: { name: string; mac?: string; mtu?: number; sandbox?: string }[];
  ips: { version?: string; address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
}

/** One test's world: its own node and pod namespaces, network and bridge names. */
interface World {
  node: string;
  pod: string;
  name: string;
  bridge: string;
  dataDir: string;
  conf: Record<string, unknown>;
}

/** Global addresses on a link, as `address/prefix`. */
function addrs(netns: string, dev: string): string[] {
  const json = JSON.parse(sh('ip', ['-n', netns, '-j', 'addr', 'show', 'dev', dev])) as {
    addr_info: { local: string; prefixlen: number; scope: string }[];
  }[];
  return (json[0]?.addr_info ?? [])
    .filter((a) => a.scope === 'global')
    .map((a) => `${a.local}/${a.prefixlen}`);
}

/** The address without its prefix length. */
function bare(address: string): string {
  return address.split('/')[0] ?? address;
}

interface MasqueradeState {
  /** Set name → elements: `10.1.0.5` for masq_v*, `10.1.0.5 . 10.1.0.0/24` for exempt_v*. */
  sets: Map<string, string[]>;
  /** A nat chain hooked at postrouting exists. */
  postroutingNat: boolean;
  /** The sets whose members a `masquerade` rule in postrouting applies to, e.g. `@masq_v4`. */
  masqueradedSets: string[];
}

type NftValue = string | { concat?: NftValue[]; prefix?: { addr: string; len: number } };

function nftValueText(value: NftValue): string {
  if (typeof value === 'string') return value;
  if (value.prefix) return `${value.prefix.addr}/${value.prefix.len}`;
  return (value.concat ?? []).map(nftValueText).join(' . ');
}

/** strata-cni's masquerade table in a namespace, read back with `nft -j`. */
function masqueradeState(netns: string): MasqueradeState {
  const state: MasqueradeState = { sets: new Map(), postroutingNat: false, masqueradedSets: [] };
  const out = inNetns(netns, ['nft', '-j', 'list', 'table', 'inet', 'strata_cni']);
  if (out.status !== 0) return state;
  const items = (JSON.parse(out.stdout) as { nftables: Record<string, unknown>[] }).nftables;
  for (const item of items) {
    const set = item.set as { name: string; elem?: (NftValue | { elem: { val: NftValue } })[] };
    if (item.set) {
      state.sets.set(
        set.name,
        (set.elem ?? []).map((e) =>
          nftValueText(typeof e === 'object' && 'elem' in e ? e.elem.val : e),
        ),
      );
    }
    const chain = item.chain as { name: string; type?: string; hook?: string } | undefined;
    if (chain?.name === 'postrouting' && chain.type === 'nat' && chain.hook === 'postrouting') {
      state.postroutingNat = true;
    }
    const rule = item.rule as { chain: string; expr: Record<string, unknown>[] } | undefined;
    if (rule?.chain === 'postrouting' && rule.expr.some((e) => 'masquerade' in e)) {
      for (const e of rule.expr) {
        const right = (e.match as { right?: unknown } | undefined)?.right;
        if (typeof right === 'string' && right.startsWith('@')) state.masqueradedSets.push(right);
      }
    }
  }
  return state;
}

/** Every masquerade element (in any set) that mentions an address starting with `prefix`. */
function masqueradeElementsFor(netns: string, prefix: string): string[] {
  return [...masqueradeState(netns).sets.values()].flat().filter((e) => e.startsWith(prefix));
}

void describe('strata-cni: the reference bridge plugin cases', { skip }, () => {
  const lab = new Lab();
  let dataDir: string;
  before(() => {
    dataDir = lab.dir();
  });
  after(() => {
    lab.cleanup();
  });

  function world(subnets: string[], extra: Record<string, unknown> = {}, cniVersion?: string) {
    const name = uniqueName('net');
    const bridge = uniqueName('br');
    const w: World = {
      node: lab.netns('stn'),
      pod: lab.netns('stp'),
      name,
      bridge,
      dataDir,
      conf: bridgeConf({ name, bridge, dataDir, subnets, extra, cniVersion }),
    };
    return w;
  }

  function attach(
    w: World,
    options: Partial<PluginCall> = {},
  ): { result: AddResult; containerId: string; pod: string } {
    const containerId = options.containerId ?? uniqueName('ctr');
    const pod = options.pod ?? w.pod;
    const out = mustCall({
      command: 'ADD',
      node: w.node,
      pod,
      containerId,
      ifname: 'eth0',
      conf: w.conf,
      ...options,
    });
    return { result: out.json as unknown as AddResult, containerId, pod };
  }

  /** Asserts the attempt left nothing: no address file, no host veth, no eth0 in the pod. */
  function assertNothingLeft(w: World, subnetPrefix: string): void {
    assert.deepEqual(allocationFiles(w.dataDir, w.name), [], 'an address is still allocated');
    assert.deepEqual(
      strataHostVeths(w.node).map((l) => l.ifname),
      [],
      'a host veth is left in the node',
    );
    assert.deepEqual(masqueradeElementsFor(w.node, subnetPrefix), [], 'masquerade elements left');
  }

  // bridge_test.go "creates a bridge": a missing bridge is created under the
  // configured name and MTU, set up, and listed first in the result.
  void it('creates a new bridge with the configured name and mtu', () => {
    const w = world(['10.97.1.0/24'], { mtu: 1480 });
    assert.equal(link(w.node, w.bridge), undefined);
    const { result } = attach(w);
    const br = link(w.node, w.bridge);
    assert.ok(br, 'bridge exists');
    assert.equal(br.linkinfo?.info_kind, 'bridge');
    assert.equal(br.mtu, 1480);
    assert.ok(br.flags.includes('UP'), `bridge is up: ${br.flags.join(',')}`);
    assert.equal(result.interfaces[0]?.name, w.bridge);
    assert.equal(result.interfaces[0]?.mac, br.address);
    const hostVeth = link(w.node, result.interfaces[1]?.name ?? '');
    assert.equal(hostVeth?.master, w.bridge, 'host veth is a port of the bridge');
    assert.deepEqual(addrs(w.node, w.bridge), ['10.97.1.1/24']);
  });

  // bridge_test.go "uses an existing bridge" / bridge.go ensureBridge: an
  // existing bridge is reused (same link) and set up (netlink.LinkSetUp).
  void it('reuses an existing bridge and sets it up', () => {
    const w = world(['10.97.2.0/24'], { isDefaultGateway: true });
    sh('ip', ['-n', w.node, 'link', 'add', w.bridge, 'type', 'bridge']);
    const before = link(w.node, w.bridge);
    assert.ok(before);
    const { result } = attach(w);
    const br = link(w.node, w.bridge);
    assert.equal(br?.ifindex, before.ifindex, 'the same bridge, not a new one');
    assert.equal(br?.linkinfo?.info_kind, 'bridge');
    assert.equal(link(w.node, result.interfaces[1]?.name ?? '')?.master, w.bridge);
    assert.ok(br?.flags.includes('UP'), `existing bridge was set up: ${br?.flags.join(',')}`);
    // The pod reaches the node through the reused bridge.
    lab.serveTcp(w.node, '10.97.2.1', 8080, `hello-from-${w.node}`);
    const got = inNetns(w.pod, ['ncat', '--recv-only', '-w', '2', '10.97.2.1', '8080']);
    assert.match(got.stdout, new RegExp(`hello-from-${w.node}`), got.stderr);
  });

  // bridge.go ensureBridge: promiscMode sets the bridge promiscuous
  // (netlink.SetPromiscOn), whether the plugin created it or found it.
  void it('promiscMode makes the bridge promiscuous, new or existing', () => {
    const fresh = world(['10.97.3.0/24'], { promiscMode: true });
    attach(fresh);
    assert.ok(link(fresh.node, fresh.bridge)?.flags.includes('PROMISC'), 'new bridge promisc');

    const existing = world(['10.97.4.0/24'], { promiscMode: true });
    sh('ip', ['-n', existing.node, 'link', 'add', existing.bridge, 'type', 'bridge']);
    attach(existing);
    const br = link(existing.node, existing.bridge);
    assert.ok(br?.flags.includes('PROMISC'), `existing bridge promisc: ${br?.flags.join(',')}`);
  });

  // bridge.go bridgeByName: a link of the bridge's name that is not a bridge
  // fails the ADD ("already exists but is not a bridge"); spec code 7 here,
  // and the allocation made before is released.
  void it('fails with code 7 when a link of the bridge name is not a bridge', () => {
    const w = world(['10.97.5.0/24']);
    sh('ip', [
      '-n',
      w.node,
      'link',
      'add',
      w.bridge,
      'type',
      'veth',
      'peer',
      'name',
      uniqueName('pe'),
    ]);
    const out = callPlugin({
      command: 'ADD',
      node: w.node,
      pod: w.pod,
      containerId: uniqueName('ctr'),
      ifname: 'eth0',
      conf: w.conf,
    });
    assertCniError(out, 7, new RegExp(`${w.bridge}.*not a bridge`), '1.0.0');
    assertNothingLeft(w, '10.97.5.');
    assert.equal(link(w.node, w.bridge)?.linkinfo?.info_kind, 'veth', 'the veth is untouched');
    assert.equal(link(w.pod, 'eth0'), undefined, 'no eth0 in the pod');
  });

  // bridge_test.go "configures and deconfigures a bridge and veth with MTU":
  // the bridge, the host end and the container end all get the MTU.
  void it('sets mtu 1400 on the bridge, the host veth and the container eth0', () => {
    const w = world(['10.97.6.0/24'], { mtu: 1400 }, '1.1.0');
    const { result } = attach(w);
    assert.equal(link(w.node, w.bridge)?.mtu, 1400, 'bridge mtu');
    assert.equal(link(w.node, result.interfaces[1]?.name ?? '')?.mtu, 1400, 'host veth mtu');
    assert.equal(link(w.pod, 'eth0')?.mtu, 1400, 'container eth0 mtu');
    // CNI 1.1.0 results carry each interface's mtu.
    assert.deepEqual(
      result.interfaces.map((i) => i.mtu),
      [1400, 1400, 1400],
    );
  });

  // bridge.go setupVeth: netlink.LinkSetHairpin(hostVeth, hairpinMode) on the host end.
  void it('hairpinMode turns hairpin on for the host veth only when asked', () => {
    const w = world(['10.97.7.0/24'], { hairpinMode: true });
    const { result } = attach(w);
    const hostVeth = result.interfaces[1]?.name ?? '';
    const hairpin = inNetns(w.node, ['cat', `/sys/class/net/${hostVeth}/brport/hairpin_mode`]);
    assert.equal(hairpin.stdout.trim(), '1', hairpin.stderr);
    // A second pod on the same network without hairpinMode keeps the kernel's default, off.
    const pod2 = lab.netns('stp');
    const plain = attach({ ...w, conf: { ...w.conf, hairpinMode: false } }, { pod: pod2 });
    const other = plain.result.interfaces[1]?.name ?? '';
    const off = inNetns(w.node, ['cat', `/sys/class/net/${other}/brport/hairpin_mode`]);
    assert.equal(off.stdout.trim(), '0', off.stderr);
  });

  // bridge.go cmdAdd: "cannot set hairpin mode and promiscuous mode at the
  // same time", checked before anything is created.
  void it('refuses promiscMode together with hairpinMode (code 7), creating nothing', () => {
    const w = world(['10.97.8.0/24'], { hairpinMode: true, promiscMode: true });
    const out = callPlugin({
      command: 'ADD',
      node: w.node,
      pod: w.pod,
      containerId: uniqueName('ctr'),
      ifname: 'eth0',
      conf: w.conf,
    });
    assertCniError(out, 7, /hairpinMode.*promiscMode|promiscMode.*hairpinMode/);
    assertNothingLeft(w, '10.97.8.');
    assert.equal(link(w.node, w.bridge), undefined, 'no bridge was created');
  });

  // bridge.go cmdAdd/cmdDel with ipMasq: each pod address is masqueraded
  // for traffic leaving its subnet (ip.SetupIPMasq), and DEL removes it
  // (ip.TeardownIPMasq) without touching other pods'.
  void it('ipMasq adds the pod to masq_v4 and exempt_v4, and DEL removes only its own', () => {
    const w = world(['10.97.9.0/24'], { ipMasq: true });
    const a = attach(w);
    const b = attach(w, { pod: lab.netns('stp') });
    const ipA = bare(a.result.ips[0]?.address ?? '');
    const ipB = bare(b.result.ips[0]?.address ?? '');
    let state = masqueradeState(w.node);
    assert.ok(state.sets.get('masq_v4')?.includes(ipA), `masq_v4 lacks ${ipA}`);
    assert.ok(state.sets.get('exempt_v4')?.includes(`${ipA} . 10.97.9.0/24`), 'exempt_v4');
    assert.ok(state.postroutingNat, 'a nat chain hooked at postrouting');
    assert.ok(state.masqueradedSets.includes('@masq_v4'), 'a masquerade rule for @masq_v4');
    assert.equal(masqueradeElementsFor(w.node, '10.97.9.').length, 4, 'two pods, two sets each');

    mustCall({
      command: 'DEL',
      node: w.node,
      pod: a.pod,
      containerId: a.containerId,
      ifname: 'eth0',
      conf: { ...w.conf, prevResult: a.result },
    });
    state = masqueradeState(w.node);
    assert.equal(state.sets.get('masq_v4')?.includes(ipA), false, `${ipA} still masqueraded`);
    assert.equal(
      state.sets.get('exempt_v4')?.some((e) => e.startsWith(`${ipA} `)),
      false,
      `${ipA} still exempt`,
    );
    assert.ok(state.sets.get('masq_v4')?.includes(ipB), 'the other pod keeps its element');
    assert.ok(state.masqueradedSets.includes('@masq_v4'), 'the rule stays for other pods');
  });

  // Same, dual stack: the reference plugin masquerades every IP of the result.
  void it('ipMasq on dual stack fills masq_v4 and masq_v6, and DEL empties them', () => {
    const w = world(['10.97.10.0/24', 'fd97:10::/64'], { ipMasq: true });
    const a = attach(w);
    const [v4 = '', v6 = ''] = a.result.ips.map((ip) => bare(ip.address));
    assert.ok(v4.startsWith('10.97.10.') && v6.startsWith('fd97:10::'), JSON.stringify(a.result));
    let state = masqueradeState(w.node);
    assert.ok(state.sets.get('masq_v4')?.includes(v4));
    assert.ok(state.sets.get('masq_v6')?.includes(v6), `masq_v6 lacks ${v6}`);
    assert.ok(state.sets.get('exempt_v4')?.includes(`${v4} . 10.97.10.0/24`));
    assert.ok(state.sets.get('exempt_v6')?.includes(`${v6} . fd97:10::/64`), 'exempt_v6');
    assert.ok(state.masqueradedSets.includes('@masq_v6'), 'a masquerade rule for @masq_v6');

    mustCall({
      command: 'DEL',
      node: w.node,
      pod: a.pod,
      containerId: a.containerId,
      ifname: 'eth0',
      conf: { ...w.conf, prevResult: a.result },
    });
    state = masqueradeState(w.node);
    assert.deepEqual(state.sets.get('masq_v4') ?? [], []);
    assert.deepEqual(state.sets.get('masq_v6') ?? [], []);
    assert.deepEqual(state.sets.get('exempt_v4') ?? [], []);
    assert.deepEqual(state.sets.get('exempt_v6') ?? [], []);
  });

  // CNI spec 1.1.0 "DEL": plugins should succeed when the attachment is
  // already gone, so a repeated DEL is a success with no output.
  void it('DEL twice succeeds both times with empty stdout', () => {
    const w = world(['10.97.11.0/24']);
    const a = attach(w);
    const call = {
      command: 'DEL' as const,
      node: w.node,
      pod: a.pod,
      containerId: a.containerId,
      ifname: 'eth0',
      conf: { ...w.conf, prevResult: a.result },
    };
    for (const attempt of ['first', 'second']) {
      const out = callPlugin(call);
      assert.equal(out.status, 0, `${attempt} DEL: ${out.stdout} ${out.stderr}`);
      assert.equal(out.stdout, '', `${attempt} DEL prints nothing`);
    }
    assertNothingLeft(w, '10.97.11.');
    assert.equal(link(w.pod, 'eth0'), undefined, 'eth0 is gone from the pod');
  });

  // bridge.go cmdDel: a netns that no longer exists (NSPathNotExistErr) still
  // releases the IPAM allocation and succeeds (kubernetes/kubernetes#43014).
  void it('DEL after the pod netns was deleted succeeds and releases everything', () => {
    const w = world(['10.97.12.0/24'], { ipMasq: true });
    const a = attach(w);
    const ip = bare(a.result.ips[0]?.address ?? '');
    assert.deepEqual(allocationFiles(w.dataDir, w.name), [ip]);
    sh('ip', ['netns', 'del', w.pod]);
    const out = callPlugin({
      command: 'DEL',
      node: w.node,
      netnsPath: netnsPath(w.pod),
      containerId: a.containerId,
      ifname: 'eth0',
      conf: { ...w.conf, prevResult: a.result },
    });
    assert.equal(out.status, 0, `${out.stdout} ${out.stderr}`);
    assert.equal(out.stdout, '');
    assert.ok(!allocationFiles(w.dataDir, w.name).includes(ip), `${ip} is still allocated`);
    assertNothingLeft(w, '10.97.12.');
  });

  // CNI spec 1.1.0 "Parameters": CNI_NETNS is optional for DEL; the plugin
  // must still remove what it made on the node and release the address.
  void it('DEL without CNI_NETNS removes the host veth and releases the address', () => {
    const w = world(['10.97.13.0/24'], { ipMasq: true });
    const a = attach(w);
    assert.equal(strataHostVeths(w.node).length, 1);
    const out = callPlugin({
      command: 'DEL',
      node: w.node,
      containerId: a.containerId,
      ifname: 'eth0',
      conf: { ...w.conf, prevResult: a.result },
    });
    assert.equal(out.status, 0, `${out.stdout} ${out.stderr}`);
    assertNothingLeft(w, '10.97.13.');
    assert.equal(link(w.pod, 'eth0'), undefined, 'deleting the host end removed eth0 too');
  });

  // bridge.go cmdAdd: once IPAM has allocated, any later failure releases the
  // address (deferred ipam.ExecDel); strata also undoes its links and
  // masquerade elements. The failure is injected at each named step.
  ['after-ipam', 'after-bridge', 'after-veth', 'after-container', 'after-masquerade'].forEach(
    (point, i) => {
      void it(`a failure ${point} releases the address and removes what ADD made`, () => {
        const subnet = `10.97.${20 + i}.`;
        const w = world([`${subnet}0/24`], { ipMasq: true });
        const out = callPlugin({
          command: 'ADD',
          node: w.node,
          pod: w.pod,
          containerId: uniqueName('ctr'),
          ifname: 'eth0',
          conf: w.conf,
          env: { STRATA_CNI_TEST_HOOKS: '1', STRATA_CNI_FAULT: `fail:${point}` },
        });
        assert.notEqual(out.status, 0, out.stdout);
        assert.match(String(out.json?.msg), new RegExp(`injected failure at ${point}`));
        assertNothingLeft(w, subnet);
        assert.equal(link(w.pod, 'eth0'), undefined, 'no eth0 left in the pod');
        // Nothing stands in the way of the next attempt.
        const again = attach(w);
        assert.ok(again.result.ips[0]?.address.startsWith(subnet));
      });
    },
  );

  // Same rollback on a real failure: the pod already has an eth0, so the
  // container end cannot be made; the pod's own eth0 must survive it.
  void it('a pod that already has eth0 fails the ADD and nothing is left behind', () => {
    const w = world(['10.97.30.0/24'], { ipMasq: true });
    sh('ip', ['-n', w.pod, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
    const out = callPlugin({
      command: 'ADD',
      node: w.node,
      pod: w.pod,
      containerId: uniqueName('ctr'),
      ifname: 'eth0',
      conf: w.conf,
    });
    assert.notEqual(out.status, 0, out.stdout);
    assert.match(String(out.json?.msg), /eth0/);
    assertNothingLeft(w, '10.97.30.');
    assert.equal(link(w.pod, 'eth0')?.linkinfo?.info_kind, 'veth', "the pod's eth0 survives");
    assert.ok(link(w.pod, 'peer0'), "the pod's peer0 survives");
    assert.deepEqual(addrs(w.pod, 'eth0'), [], "the pod's eth0 got no address");
  });

  // bridge.go ensureAddr: a bridge carrying another IPv4 address fails the
  // ADD unless forceAddress is set, in which case the old address is replaced.
  void it('isGateway with another address on the bridge needs forceAddress', () => {
    const w = world(['10.97.31.0/24']);
    sh('ip', ['-n', w.node, 'link', 'add', w.bridge, 'type', 'bridge']);
    sh('ip', ['-n', w.node, 'addr', 'add', '10.97.32.1/24', 'dev', w.bridge]);
    const out = callPlugin({
      command: 'ADD',
      node: w.node,
      pod: w.pod,
      containerId: uniqueName('ctr'),
      ifname: 'eth0',
      conf: w.conf,
    });
    const msg = assertCniError(out, 7, new RegExp(w.bridge));
    assert.match(msg, /forceAddress/);
    assertNothingLeft(w, '10.97.31.');
    assert.deepEqual(addrs(w.node, w.bridge), ['10.97.32.1/24'], 'the address is kept');

    const forced = attach({ ...w, conf: { ...w.conf, forceAddress: true } });
    assert.ok(forced.result.ips[0]?.address.startsWith('10.97.31.'));
    assert.deepEqual(addrs(w.node, w.bridge), ['10.97.31.1/24'], 'the old address is replaced');
  });

  // CNI spec 1.1.0 "Version considerations" / libcni types: 0.x results give
  // each IP a "version"; 1.0.0 dropped it. CHECK exists from 0.4.0 on.
  void it('prints the result in the requested cniVersion; CHECK needs 0.4.0 or later', () => {
    const w = world(['10.97.33.0/24', 'fd97:33::/64']);
    const byVersion = new Map<string, ReturnType<typeof attach>>();
    for (const version of ['0.4.0', '1.0.0', '1.1.0']) {
      const attached = attach(
        { ...w, conf: { ...w.conf, cniVersion: version } },
        { pod: lab.netns('stp') },
      );
      byVersion.set(version, attached);
      const r = attached.result;
      assert.equal(r.cniVersion, version);
      assert.equal(r.ips.length, 2);
      for (const ip of r.ips) {
        if (version === '0.4.0') {
          assert.equal(ip.version, ip.address.includes(':') ? '6' : '4', JSON.stringify(ip));
        } else {
          assert.equal('version' in ip, false, `${version} result has ips[].version`);
        }
      }
    }
    const old = byVersion.get('0.4.0');
    assert.ok(old);
    const check = (cniVersion: string) =>
      callPlugin({
        command: 'CHECK',
        node: w.node,
        pod: old.pod,
        containerId: old.containerId,
        ifname: 'eth0',
        conf: { ...w.conf, cniVersion, prevResult: old.result },
      });
    assertCniError(check('0.3.1'), 1, /CHECK.*0\.4\.0|0\.3\.1/, '0.3.1');
    const ok = check('0.4.0');
    assert.equal(ok.status, 0, `${ok.stdout} ${ok.stderr}`);
  });

  // CNI spec 1.1.0 "VERSION": prints cniVersion and supportedVersions.
  void it('VERSION reports 1.1.0 and the supported versions', () => {
    const node = lab.netns('stn');
    const out = mustCall({ command: 'VERSION', node, conf: { cniVersion: '1.1.0' } });
    assert.deepEqual(Object.keys(out.json ?? {}).sort(), ['cniVersion', 'supportedVersions']);
    assert.equal(out.json?.cniVersion, '1.1.0');
    const supported = out.json?.supportedVersions as string[];
    for (const v of ['0.4.0', '1.0.0', '1.1.0']) assert.ok(supported.includes(v), v);
  });

  // bridge.go loadNetConf: runtimeConfig.mac (the "mac" capability) sets the
  // container end's MAC, reported in the result.
  void it('runtimeConfig.mac sets the container MAC', () => {
    const mac = '02:97:34:00:00:01';
    const w = world(['10.97.34.0/24'], { runtimeConfig: { mac } });
    const { result } = attach(w);
    assert.equal(link(w.pod, 'eth0')?.address, mac);
    assert.equal(result.interfaces[2]?.mac, mac);
  });

  // host-local: runtimeConfig.ips (the "ips" capability) requests exactly that address.
  void it('runtimeConfig.ips gets exactly the requested address', () => {
    const w = world(['10.97.35.0/24'], { runtimeConfig: { ips: ['10.97.35.50/24'] } });
    const { result } = attach(w);
    assert.deepEqual(
      result.ips.map((ip) => ip.address),
      ['10.97.35.50/24'],
    );
    assert.deepEqual(addrs(w.pod, 'eth0'), ['10.97.35.50/24']);
    assert.deepEqual(allocationFiles(w.dataDir, w.name), ['10.97.35.50']);
  });

  // host-local: CNI_ARGS IP= requests an address; IgnoreUnknown=1 lets
  // other keys through (types.LoadArgs).
  void it('CNI_ARGS IP= with IgnoreUnknown gets that address', () => {
    const w = world(['10.97.36.0/24']);
    const { result } = attach(w, {
      env: { CNI_ARGS: 'IgnoreUnknown=1;IP=10.97.36.51;SOME_RUNTIME_KEY=x' },
    });
    assert.deepEqual(
      result.ips.map((ip) => ip.address),
      ['10.97.36.51/24'],
    );
    assert.deepEqual(addrs(w.pod, 'eth0'), ['10.97.36.51/24']);
  });

  // types.LoadArgs: an unknown CNI_ARGS key without IgnoreUnknown is an
  // error; spec code 4 (invalid environment variables).
  void it('an unknown CNI_ARGS key without IgnoreUnknown fails with code 4', () => {
    const w = world(['10.97.37.0/24']);
    const out = callPlugin({
      command: 'ADD',
      node: w.node,
      pod: w.pod,
      containerId: uniqueName('ctr'),
      ifname: 'eth0',
      conf: w.conf,
      env: { CNI_ARGS: 'IP=10.97.37.51;SOME_RUNTIME_KEY=x' },
    });
    assertCniError(out, 4, /SOME_RUNTIME_KEY/, '1.0.0');
    assertNothingLeft(w, '10.97.37.');
    assert.deepEqual(
      links(w.node).map((l) => l.ifname),
      ['lo'],
      'no link was created in the node',
    );
  });
});
