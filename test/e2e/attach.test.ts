// Attach and detach a pod with strata-cni, end to end in real namespaces:
// the reference bridge plugin's basic cases (plugins/main/bridge/bridge_test.go),
// IPv4, IPv6 and dual stack, with CHECK and DEL.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Lab, inNetns, isRoot, netnsPath, sh, uniqueName } from '../support/netns.js';
import { bridgeConf, callPlugin, mustCall } from '../support/plugin.js';

const skip = isRoot() ? false : 'needs root for network namespaces';

function addrs(netns: string, dev: string): string[] {
  const json = JSON.parse(sh('ip', ['-n', netns, '-j', 'addr', 'show', 'dev', dev])) as {
    addr_info: { local: string; prefixlen: number; scope: string }[];
  }[];
  return (json[0]?.addr_info ?? [])
    .filter((a) => a.scope === 'global')
    .map((a) => `${a.local}/${a.prefixlen}`);
}

describe('strata-cni attach', { skip }, () => {
  const lab = new Lab();
  let node: string;
  let dataDir: string;
  before(() => {
    node = lab.netns('stn');
    dataDir = lab.dir();
  });
  after(() => {
    lab.cleanup();
  });

  for (const stack of [
    { label: 'IPv4', subnets: ['10.99.1.0/24'], gw: ['10.99.1.1'] },
    { label: 'IPv6', subnets: ['fd99:1::/64'], gw: ['fd99:1::1'] },
    {
      label: 'dual stack',
      subnets: ['10.99.2.0/24', 'fd99:2::/64'],
      gw: ['10.99.2.1', 'fd99:2::1'],
    },
  ]) {
    it(`ADD, CHECK and DEL a pod on ${stack.label}`, () => {
      const pod = lab.netns('stp');
      const bridge = uniqueName('br');
      const name = uniqueName('net');
      const conf = bridgeConf({
        name,
        bridge,
        dataDir,
        subnets: stack.subnets,
        extra: { isDefaultGateway: true },
      });
      const id = uniqueName('ctr');
      const add = mustCall({ command: 'ADD', node, pod, containerId: id, ifname: 'eth0', conf });
      const result = add.json as {
        cniVersion: string;
        interfaces: { name: string; mac: string; sandbox?: string }[];
        ips: { address: string; gateway: string; interface: number }[];
        routes: { dst: string; gw?: string }[];
      };
      assert.equal(result.cniVersion, '1.0.0');
      // Spec: interfaces lists the bridge, the host end and the container end (with its sandbox).
      assert.equal(result.interfaces.length, 3);
      assert.equal(result.interfaces[0]?.name, bridge);
      assert.equal(result.interfaces[2]?.name, 'eth0');
      assert.equal(result.interfaces[2]?.sandbox, netnsPath(pod));
      assert.deepEqual(
        result.ips.map((ip) => ip.gateway),
        stack.gw,
      );
      assert.ok(result.ips.every((ip) => ip.interface === 2));
      // The container end really carries the addresses and the MAC the result names.
      assert.deepEqual(addrs(pod, 'eth0').sort(), result.ips.map((ip) => ip.address).sort());
      const link = JSON.parse(sh('ip', ['-n', pod, '-j', 'link', 'show', 'dev', 'eth0'])) as {
        address: string;
      }[];
      assert.equal(link[0]?.address, result.interfaces[2]?.mac);
      // And the host end's and the bridge's MACs are the ones the node shows.
      for (const i of [0, 1]) {
        const shown = JSON.parse(
          sh('ip', ['-n', node, '-j', 'link', 'show', 'dev', result.interfaces[i]?.name ?? '']),
        ) as { address: string }[];
        assert.equal(shown[0]?.address, result.interfaces[i]?.mac);
      }
      // isGateway: the gateway addresses are on the bridge; isDefaultGateway: default routes via them.
      const onBridge = addrs(node, bridge);
      for (const ip of result.ips) {
        const len = ip.address.split('/')[1];
        assert.ok(onBridge.includes(`${ip.gateway}/${len}`), `bridge lacks ${ip.gateway}`);
      }
      for (const gw of stack.gw) {
        assert.ok(
          result.routes.some((r) => (r.dst === '0.0.0.0/0' || r.dst === '::/0') && r.gw === gw),
        );
      }

      const withPrev = { ...conf, prevResult: result };
      mustCall({ command: 'CHECK', node, pod, containerId: id, ifname: 'eth0', conf: withPrev });

      mustCall({ command: 'DEL', node, pod, containerId: id, ifname: 'eth0', conf: withPrev });
      assert.notEqual(inNetns(pod, ['ip', 'link', 'show', 'eth0']).status, 0, 'eth0 is gone');
      // After DEL, CHECK fails: the attachment is gone.
      const check = callPlugin({
        command: 'CHECK',
        node,
        pod,
        containerId: id,
        ifname: 'eth0',
        conf: withPrev,
      });
      assert.notEqual(check.status, 0);
    });
  }

  it('two pods on one bridge reach each other and the gateway over TCP', () => {
    const bridge = uniqueName('br');
    const name = uniqueName('net');
    const conf = bridgeConf({
      name,
      bridge,
      dataDir,
      subnets: ['10.99.3.0/24'],
      extra: { isDefaultGateway: true },
    });
    const pods = [lab.netns('stp'), lab.netns('stp')];
    const ips = pods.map((pod, i) => {
      const out = mustCall({
        command: 'ADD',
        node,
        pod,
        containerId: `c${i}${name}`,
        ifname: 'eth0',
        conf,
      });
      const ip = (out.json as { ips: { address: string }[] }).ips[0]?.address.split('/')[0];
      assert.ok(ip);
      return ip;
    });
    const [a, b] = pods as [string, string];
    const [ipA, ipB] = ips as [string, string];
    // pod A serves, pod B connects to it by pod IP.
    lab.serveTcp(a, ipA, 8080, `hello-from-${a}`);
    const got = inNetns(b, ['ncat', '--recv-only', '-w', '3', ipA, '8080']);
    assert.equal(got.status, 0, got.stderr);
    assert.match(got.stdout, new RegExp(`hello-from-${a}`));
    // The node (host side of the bridge) serves on the gateway; pod B reaches it.
    lab.serveTcp(node, '10.99.3.1', 8080, `hello-from-${node}`);
    const toHost = inNetns(b, ['ncat', '--recv-only', '-w', '3', '10.99.3.1', '8080']);
    assert.match(toHost.stdout, new RegExp(`hello-from-${node}`));
    // And the other way round: A reaches B.
    lab.serveTcp(b, ipB, 8081, `hello-from-${b}`);
    const back = inNetns(a, ['ncat', '--recv-only', '-w', '3', ipB, '8081']);
    assert.match(back.stdout, new RegExp(`hello-from-${b}`));
  });

  // CNI spec 1.1.0, "Parameters": CNI_NETNS is a path, any path to a network namespace,
  // such as /proc/<pid>/ns/net of a process that holds one (no bind mount under /var/run/netns).
  it('attaches a namespace given as /proc/<pid>/ns/net', async () => {
    const holder = spawn('unshare', ['--net', 'sleep', '60'], { stdio: 'ignore' });
    lab.onCleanup(() => holder.kill('SIGKILL'));
    const pid = holder.pid;
    assert.ok(pid);
    const path = `/proc/${pid}/ns/net`;
    // Wait until unshare has made the namespace (its ns link differs from ours).
    for (let i = 0; i < 100 && readlinkSync(path) === readlinkSync('/proc/self/ns/net'); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const name = uniqueName('net');
    const conf = bridgeConf({ name, bridge: uniqueName('br'), dataDir, subnets: ['10.99.4.0/24'] });
    const id = uniqueName('ctr');
    const add = mustCall({
      command: 'ADD',
      node,
      netnsPath: path,
      containerId: id,
      ifname: 'eth0',
      conf,
    });
    const ip = (add.json as { ips: { address: string }[] }).ips[0]?.address;
    assert.equal(ip, '10.99.4.2/24');
    const shown = sh('nsenter', [`--net=${path}`, 'ip', '-j', 'addr', 'show', 'dev', 'eth0']);
    assert.match(shown, /"local":"10\.99\.4\.2"/);
    mustCall({ command: 'DEL', node, netnsPath: path, containerId: id, ifname: 'eth0', conf });
    assert.doesNotMatch(sh('nsenter', [`--net=${path}`, 'ip', '-br', 'link']), /eth0/);
  });
});
