// What belongs to whom, end to end: the bridge's MAC (the pods' gateway) does
// not follow its ports; a masquerade element is only ever removed for its own
// attachment; names of any length fit the alias and comment limits; the IPAM
// plugin answers under a symlinked name; the README's configuration works.
import assert from 'node:assert/strict';
import { readFileSync, rmSync, symlinkSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Lab, inNetns, isRoot, link, sh, strataHostVeths, uniqueName } from '../support/netns.js';
import { allocationFiles, bridgeConf, callPlugin, mustCall, strataCni } from '../support/plugin.js';

const skip = isRoot() ? false : 'needs root for network namespaces';

interface AddResult {
  ips: { address: string }[];
  routes: { dst: string; gw?: string }[];
}

function masqueradeOwners(node: string): Map<string, string> {
  const out = inNetns(node, ['nft', '-j', 'list', 'set', 'inet', 'strata_cni', 'masq_v4']);
  const owners = new Map<string, string>();
  if (out.status !== 0) return owners;
  const json = JSON.parse(out.stdout) as {
    nftables: { set?: { elem?: { elem?: { val: string; comment?: string } }[] } }[];
  };
  for (const item of json.nftables) {
    for (const e of item.set?.elem ?? []) {
      if (e.elem) owners.set(e.elem.val, e.elem.comment ?? '');
    }
  }
  return owners;
}

describe('strata-cni ownership', { skip }, () => {
  const lab = new Lab();
  let node: string;
  let dataDir: string;
  before(() => {
    node = lab.netns('sto');
    dataDir = lab.dir();
  });
  after(() => {
    lab.cleanup();
  });

  // The reference plugin pins the bridge MAC (ensureAddr sets it to itself): a bridge
  // whose MAC followed its lowest-numbered port would change the pods' gateway MAC
  // whenever that pod left.
  it('keeps the bridge MAC when the pods come and go', () => {
    const bridge = uniqueName('br');
    const conf = bridgeConf({
      name: uniqueName('net'),
      bridge,
      dataDir,
      subnets: ['10.95.1.0/24'],
    });
    const pods = [lab.netns('stp'), lab.netns('stp'), lab.netns('stp')];
    const ids = pods.map(() => uniqueName('ctr'));
    mustCall({ command: 'ADD', node, pod: pods[0], containerId: ids[0], ifname: 'eth0', conf });
    const mac = link(node, bridge)?.address;
    assert.ok(mac);
    assert.equal(
      inNetns(node, ['cat', `/sys/class/net/${bridge}/addr_assign_type`]).stdout.trim(),
      '3',
    );
    mustCall({ command: 'ADD', node, pod: pods[1], containerId: ids[1], ifname: 'eth0', conf });
    mustCall({ command: 'DEL', node, pod: pods[0], containerId: ids[0], ifname: 'eth0', conf });
    mustCall({ command: 'ADD', node, pod: pods[2], containerId: ids[2], ifname: 'eth0', conf });
    assert.equal(link(node, bridge)?.address, mac);
  });

  // Masquerade elements are keyed by address: DEL must remove them before the
  // address can go to another pod, and GC must leave a valid pod's element alone.
  it('never removes another attachment’s masquerade element', () => {
    const name = uniqueName('net');
    const conf = bridgeConf({
      name,
      bridge: uniqueName('br'),
      dataDir,
      subnets: ['10.95.2.0/24'],
      extra: { ipMasq: true },
    });
    const [podA, podB] = [lab.netns('stp'), lab.netns('stp')];
    const [idA, idB] = [uniqueName('ctr'), uniqueName('ctr')];
    const a = mustCall({ command: 'ADD', node, pod: podA, containerId: idA, ifname: 'eth0', conf });
    const ip = (a.json as unknown as AddResult).ips[0]?.address.split('/')[0] ?? '';
    mustCall({ command: 'DEL', node, pod: podA, containerId: idA, ifname: 'eth0', conf });
    assert.equal(masqueradeOwners(node).has(ip), false, 'DEL removed the element');
    // B gets the very same address, and its element is B's.
    const b = mustCall({
      command: 'ADD',
      node,
      pod: podB,
      containerId: idB,
      ifname: 'eth0',
      conf,
      env: { CNI_ARGS: `IP=${ip}` },
    });
    assert.equal((b.json as unknown as AddResult).ips[0]?.address, `${ip}/24`);
    const ownerB = masqueradeOwners(node).get(ip);
    const vethB = strataHostVeths(node).find((l) => l.ifalias?.includes(` ${idB} `))?.ifname;
    assert.ok(
      vethB && ownerB?.endsWith(` ${vethB}`),
      `${ownerB ?? 'no owner'} is not ${vethB ?? '?'}`,
    );
    // A late DEL of A (a runtime retrying, with A's prevResult naming the address) and a
    // GC that lists only B keep B's element.
    mustCall({
      command: 'DEL',
      node,
      pod: podA,
      containerId: idA,
      ifname: 'eth0',
      conf: { ...conf, prevResult: a.json },
    });
    mustCall({
      command: 'GC',
      node,
      conf: {
        ...conf,
        cniVersion: '1.1.0',
        'cni.dev/valid-attachments': [{ containerID: idB, ifname: 'eth0' }],
      },
    });
    assert.equal(masqueradeOwners(node).get(ip), ownerB);
    assert.deepEqual(allocationFiles(dataDir, name), [ip]);
  });

  // The spec puts no limit on network names or container IDs; the kernel limits an
  // alias to 255 bytes and nft a comment to 128.
  it('attaches, checks, collects and detaches with a 200-character network name', () => {
    const name = `n${'x'.repeat(199)}`;
    const conf = bridgeConf({
      name,
      bridge: uniqueName('br'),
      dataDir,
      subnets: ['10.95.3.0/24'],
      extra: { ipMasq: true },
    });
    const pod = lab.netns('stp');
    const id = 'c'.repeat(160);
    const add = mustCall({ command: 'ADD', node, pod, containerId: id, ifname: 'eth0', conf });
    mustCall({
      command: 'CHECK',
      node,
      pod,
      containerId: id,
      ifname: 'eth0',
      conf: { ...conf, prevResult: add.json },
    });
    const gc = { ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] };
    mustCall({ command: 'GC', node, conf: gc });
    assert.deepEqual(allocationFiles(dataDir, name), []);
    assert.equal(strataHostVeths(node).filter((l) => l.ifalias?.includes(' nxxxx')).length, 0);
  });

  // Installing the plugin by symlink must not turn strata-ipam into strata-cni.
  it('answers as strata-ipam when run through a symlink of that name', () => {
    const dir = lab.dir();
    const linkPath = `${dir}/strata-ipam`;
    symlinkSync(strataCni, linkPath);
    lab.onCleanup(() => {
      rmSync(linkPath, { force: true });
    });
    const out = callPlugin({
      plugin: linkPath,
      command: 'STATUS',
      node,
      conf: {
        cniVersion: '1.1.0',
        name: uniqueName('net'),
        type: 'bridge',
        ipam: { type: 'strata-ipam', dataDir, ranges: [[{ subnet: '10.95.4.0/24' }]] },
      },
    });
    assert.equal(out.status, 0, out.stdout);
  });

  // README.md's example configuration, as a user would copy it.
  it("runs the README's example configuration", () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const block = /cat > \/etc\/cni\/net\.d\/10-strata\.conflist <<'JSON'\n([\s\S]*?)\nJSON/.exec(
      readme,
    )?.[1];
    assert.ok(block, 'the README has the conflist');
    const list = JSON.parse(block) as {
      cniVersion: string;
      name: string;
      plugins: Record<string, unknown>[];
    };
    const first = list.plugins[0] ?? {};
    const ipam = first.ipam as Record<string, unknown>;
    const conf = {
      ...first,
      cniVersion: list.cniVersion,
      name: uniqueName('readme'),
      bridge: uniqueName('br'),
      ipam: { ...ipam, dataDir },
    };
    delete (conf as Record<string, unknown>).capabilities;
    const pod = lab.netns('stp');
    const id = uniqueName('ctr');
    const add = mustCall({ command: 'ADD', node, pod, containerId: id, ifname: 'eth0', conf });
    const routes = (add.json as unknown as AddResult).routes;
    assert.equal(routes.filter((r) => r.dst === '0.0.0.0/0').length, 1, JSON.stringify(routes));
    assert.match(
      sh('ip', ['-n', pod, 'route', 'show', 'default']),
      /default via 10\.244\.1\.1 dev eth0/,
    );
    mustCall({ command: 'DEL', node, pod, containerId: id, ifname: 'eth0', conf });
  });
});
