// kill -9 of strata-cni at each point of ADD, then GC. CNI spec 1.1.0,
// "GC": the plugin must release everything held by attachments not listed in
// cni.dev/valid-attachments (libcni also sends the spec's first spelling,
// cni.dev/attachments, containernetworking/cni#1101), and leave the listed
// ones alone. The plugin is stopped at a named point with
// STRATA_CNI_FAULT=pause:<point>, killed with SIGKILL, then GC runs through
// the strata runtime (src/cni/runtime) or directly.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addNetworkList, gcNetworkList } from '../../src/cni/runtime/chain.js';
import {
  type NetworkConfigList,
  loadDefaultNetwork,
  parseNetworkConfigList,
} from '../../src/cni/runtime/conflist.js';
import { type CniRuntimeConfig, execPlugin, findInPath } from '../../src/cni/runtime/invoke.js';
import {
  Lab,
  isRoot,
  link,
  links,
  netnsPath,
  strataHostVeths,
  uniqueName,
} from '../support/netns.js';
import { allocationFiles } from '../support/plugin.js';
import {
  allocationOwner,
  cachedResultFiles,
  childPids,
  masqueradeElements,
  serveTcpAll,
  startStrataAdd,
  tcpReply,
  testRuntime,
  waitUntilGone,
  waitUntilStopped,
  writeConfigFile,
} from '../support/runtime.js';

const skip = isRoot() ? false : 'needs root for network namespaces';

const points = [
  'after-ipam',
  'after-bridge',
  // The pair exists but its owner alias is not written yet: GC must find it from the allocation.
  'after-veth-created',
  'after-veth',
  'after-container',
  'after-masquerade',
] as const;
type Point = (typeof points)[number];

describe('kill -9 during ADD, then GC', { skip }, () => {
  const lab = new Lab();
  let node: string;
  let dataDir: string;
  let bridge: string;
  let name: string;
  let plugin: Record<string, unknown>;
  let listBody: Record<string, unknown>;
  let list: NetworkConfigList;
  let runtime: CniRuntimeConfig;
  /** The attachment added before every crash; GC must leave it intact. */
  const valid = { containerId: '', pod: '', files: [] as string[], veth: '', reply: '' };

  function ownedFiles(containerId: string): string[] {
    return allocationFiles(dataDir, name).filter(
      (ip) => allocationOwner(dataDir, name, ip) === `${containerId}\r\neth0`,
    );
  }

  function vethOf(containerId: string): string | undefined {
    return strataHostVeths(node).find((l) => l.ifalias === `strata-cni ${name} ${containerId} eth0`)
      ?.ifname;
  }

  before(async () => {
    node = lab.netns('stgn');
    dataDir = lab.dir();
    bridge = uniqueName('br');
    name = uniqueName('gc');
    plugin = {
      type: 'strata-cni',
      bridge,
      isGateway: true,
      ipMasq: true,
      ipam: {
        type: 'strata-ipam',
        dataDir,
        ranges: [[{ subnet: '10.96.20.0/24' }], [{ subnet: 'fd96:20::/64' }]],
      },
    };
    listBody = { cniVersion: '1.1.0', name, plugins: [plugin] };
    const confDir = lab.dir('strata-netd-');
    writeConfigFile(confDir, '10-strata.conflist', listBody);
    list = loadDefaultNetwork(confDir).list;
    runtime = testRuntime(lab, node);

    valid.pod = lab.netns('stgv');
    valid.containerId = uniqueName('valid');
    const result = await addNetworkList(runtime, list, {
      containerId: valid.containerId,
      netns: netnsPath(valid.pod),
      ifname: 'eth0',
    });
    valid.files = ownedFiles(valid.containerId);
    assert.equal(valid.files.length, 2, 'the valid attachment holds an IPv4 and an IPv6 address');
    valid.veth = vethOf(valid.containerId) ?? '';
    assert.notEqual(valid.veth, '');
    const ip = result.ips[0]?.address.split('/')[0] ?? '';
    valid.reply = `valid-${valid.pod}`;
    await serveTcpAll(lab, [{ netns: valid.pod, host: ip, port: 8080, reply: valid.reply }]);
    assert.equal(await tcpReply(node, ip, 8080), valid.reply);
  });
  after(() => {
    lab.cleanup();
  });

  /** The valid attachment is as ADD left it: its address files, its veth, its masquerade elements, its traffic. */
  async function assertValidIntact(): Promise<void> {
    assert.deepEqual(ownedFiles(valid.containerId), valid.files);
    assert.deepEqual(
      strataHostVeths(node).map((l) => l.ifname),
      [valid.veth],
    );
    assert.ok(link(node, valid.veth)?.flags.includes('UP'));
    const owner = `${name} ${valid.veth}`;
    const elements = masqueradeElements(node);
    // One element per address in masq_v4/masq_v6 and exempt_v4/exempt_v6.
    assert.deepEqual(
      elements.map((e) => `${e.set} ${e.address} ${e.comment}`).sort(),
      valid.files
        .flatMap((ip) => {
          const f = ip.includes(':') ? 6 : 4;
          return [`exempt_v${f} ${ip} ${owner}`, `masq_v${f} ${ip} ${owner}`];
        })
        .sort(),
    );
    const ip = valid.files.find((f) => !f.includes(':')) ?? '';
    assert.equal(await tcpReply(node, ip, 8080), valid.reply);
  }

  /** Nothing of the killed attachment is left: no address file, no veth, no element. */
  function assertNoTrace(containerId: string, addresses: readonly string[], pod: string): void {
    assert.deepEqual(ownedFiles(containerId), [], 'its address files are released');
    assert.equal(vethOf(containerId), undefined, 'its host veth is deleted');
    // No other link was left either, even one a crash left without its alias.
    assert.deepEqual(
      links(node)
        .map((l) => l.ifname)
        .sort(),
      ['lo', bridge, valid.veth].sort(),
    );
    assert.equal(link(pod, 'eth0'), undefined, 'the container end went with the host end');
    const left = masqueradeElements(node).filter((e) => addresses.includes(e.address));
    assert.deepEqual(left, [], 'its masquerade elements are removed');
  }

  /** Starts ADD, waits until it stops at `point`, records what it did so far, kills it. */
  async function crashAt(
    point: Point,
  ): Promise<{ containerId: string; pod: string; addresses: string[] }> {
    const pod = lab.netns('stgk');
    const containerId = uniqueName('killed');
    const { child, exited } = startStrataAdd({
      node,
      pod,
      containerId,
      ifname: 'eth0',
      conf: { ...plugin, name, cniVersion: '1.1.0' },
      env: { STRATA_CNI_TEST_HOOKS: '1', STRATA_CNI_FAULT: `pause:${point}` },
    });
    lab.onCleanup(() => child.kill('SIGKILL'));
    assert.ok(child.pid);
    await waitUntilStopped(child.pid);
    const addresses = ownedFiles(containerId);
    // What ADD has done by each point, so GC is shown to remove something real.
    if (point !== 'after-bridge')
      assert.equal(addresses.length, 2, `${point}: addresses allocated`);
    if (['after-veth', 'after-container', 'after-masquerade'].includes(point)) {
      assert.ok(vethOf(containerId), `${point}: host veth exists`);
    }
    if (point === 'after-masquerade') {
      const masqueraded = masqueradeElements(node).filter((e) => addresses.includes(e.address));
      assert.equal(masqueraded.length, 4, `${point}: masquerade elements exist`);
    }
    // Commands the plugin had started (ip, nft) run on after it dies; a runtime's GC comes
    // long after them, so wait for them rather than race them.
    const inFlight = childPids(child.pid);
    process.kill(child.pid, 'SIGKILL');
    await exited;
    await waitUntilGone(inFlight);
    return { containerId, pod, addresses };
  }

  for (const point of points) {
    it(`kill -9 at ${point}: GC removes what the killed ADD left; the valid attachment survives`, async () => {
      const killed = await crashAt(point);
      await gcNetworkList(runtime, list, {
        validAttachments: [{ containerId: valid.containerId, ifname: 'eth0' }],
      });
      assertNoTrace(killed.containerId, killed.addresses, killed.pod);
      await assertValidIntact();
    });
  }

  it('GC with only the older key cni.dev/attachments', async () => {
    // The spec's first spelling of the key; libcni sends both (containernetworking/cni#1101).
    const killed = await crashAt('after-masquerade');
    await execPlugin(runtime, findInPath('strata-cni', runtime.binDirs), {
      command: 'GC',
      config: {
        ...plugin,
        name,
        cniVersion: '1.1.0',
        'cni.dev/attachments': [{ containerID: valid.containerId, ifname: 'eth0' }],
      },
    });
    assertNoTrace(killed.containerId, killed.addresses, killed.pod);
    await assertValidIntact();
  });

  it('GC follows the list: nothing with disableGC, only cached DELs before 1.1.0, plugin GC from 1.1.0', async () => {
    // libcni GCNetworkList: disableGC skips GC; stale cached attachments are DELed; the GC
    // command goes to plugins only for cniVersion 1.1.0 and later (spec 1.1.0, "GC").
    const stalePod = lab.netns('stgs');
    const stale = { containerId: uniqueName('stale'), netns: netnsPath(stalePod), ifname: 'eth0' };
    await addNetworkList(runtime, list, stale);
    const staleFiles = ownedFiles(stale.containerId);
    assert.equal(staleFiles.length, 2);
    const killed = await crashAt('after-masquerade');
    const gcArgs = { validAttachments: [{ containerId: valid.containerId, ifname: 'eth0' }] };

    const disabled = parseNetworkConfigList(
      JSON.stringify({ ...listBody, disableGC: true }),
      'disabled',
    );
    await gcNetworkList(runtime, disabled, gcArgs);
    assert.deepEqual(
      ownedFiles(stale.containerId),
      staleFiles,
      'disableGC: the stale attachment stays',
    );
    assert.equal(ownedFiles(killed.containerId).length, 2, 'disableGC: the leftovers stay');

    const older = parseNetworkConfigList(
      JSON.stringify({ ...listBody, cniVersion: '1.0.0' }),
      'older',
    );
    await gcNetworkList(runtime, older, gcArgs);
    assert.deepEqual(ownedFiles(stale.containerId), [], 'the stale cached attachment was DELed');
    assert.equal(vethOf(stale.containerId), undefined);
    assert.deepEqual(
      cachedResultFiles(runtime),
      [`${name}-${valid.containerId}-eth0`],
      'only the valid attachment stays cached',
    );
    assert.equal(
      ownedFiles(killed.containerId).length,
      2,
      '1.0.0: no GC command reached the plugin',
    );

    await gcNetworkList(runtime, list, gcArgs);
    assertNoTrace(killed.containerId, killed.addresses, killed.pod);
    await assertValidIntact();
  });
});
