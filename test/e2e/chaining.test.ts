// Plugin chains run the way container runtimes run them, with strata's own
// runtime code (src/cni/runtime): a .conflist loaded from a config directory,
// VERSION checked on every plugin, ADD in order with prevResult, DEL in
// reverse order with the cached result (CNI spec 1.1.0, section 3
// "Execution of Network Configurations"). strata-cni is chained with the
// reference portmap and tuning plugins; strata-ipam serves the reference
// bridge plugin; strata-cni delegates to the reference host-local.
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { CniErrorCode } from '../../src/cni/errors.js';
import {
  addNetworkList,
  checkNetworkList,
  delNetworkList,
  getNetworkListCachedResult,
  statusNetworkList,
} from '../../src/cni/runtime/chain.js';
import { loadDefaultNetwork, parseNetworkConfigList } from '../../src/cni/runtime/conflist.js';
import {
  type CniRuntimeConfig,
  PluginError,
  execPlugin,
  execPluginWithResult,
  findInPath,
} from '../../src/cni/runtime/invoke.js';
import {
  Lab,
  inNetns,
  isRoot,
  link,
  netnsPath,
  strataHostVeths,
  uniqueName,
} from '../support/netns.js';
import { allocationFiles } from '../support/plugin.js';
import {
  allocationOwner,
  cachedResultFiles,
  installRecorder,
  natRules,
  serveTcpAll,
  tcpReply,
  testRuntime,
  writeConfigFile,
} from '../support/runtime.js';

const skip = isRoot() ? false : 'needs root for network namespaces';

/** The pod's address without its prefix length. */
function podAddress(result: { ips: { address: string }[] }): string {
  const address = result.ips[0]?.address.split('/')[0];
  assert.ok(address, 'the result has an address');
  return address;
}

describe('plugin chains run by the strata runtime', { skip }, () => {
  const lab = new Lab();
  // Each test gets its own node namespace, so one test's leftovers cannot fail another.
  let node: string;
  let dataDir: string;
  let runtime: CniRuntimeConfig;
  beforeEach(() => {
    node = lab.netns('stcn');
    dataDir = lab.dir();
    runtime = testRuntime(lab, node);
  });
  after(() => {
    lab.cleanup();
  });

  /** Writes the conflist into a fresh config dir and loads it as kubelet would. */
  function loadList(body: Record<string, unknown>): ReturnType<typeof loadDefaultNetwork>['list'] {
    const confDir = lab.dir('strata-netd-');
    writeConfigFile(confDir, '10-chain.conflist', body);
    // A later file is ignored: kubelet uses the lexically first valid one.
    writeConfigFile(confDir, '99-other.conflist', { ...body, name: 'not-this-one' });
    const { list } = loadDefaultNetwork(confDir);
    assert.equal(list.name, body.name);
    return list;
  }

  function strataPlugin(...subnets: string[]): Record<string, unknown> {
    return {
      type: 'strata-cni',
      bridge: uniqueName('br'),
      isGateway: true,
      isDefaultGateway: true,
      ipam: { type: 'strata-ipam', dataDir, ranges: subnets.map((subnet) => [{ subnet }]) },
    };
  }

  it('strata-cni then portmap: a host port on the node reaches the pod; DEL in reverse leaves nothing', async () => {
    // CONVENTIONS.md "portMappings": the runtime passes runtimeConfig.portMappings only to
    // plugins declaring the capability. strata-cni refuses a non-empty portMappings with code 2,
    // so a successful ADD also shows the runtime filtered it out of strata-cni's configuration.
    const name = uniqueName('pm');
    const list = loadList({
      cniVersion: '1.0.0',
      name,
      // Spec "Configuration format": disableCheck is for "a combination of plugins known to
      // return spurious errors". portmap v1.1.1's CHECK looks for its IPv4 rules in the ip6tables
      // nat table too and always fails where ip6tables exists (containernetworking/plugins#819).
      disableCheck: true,
      plugins: [
        strataPlugin('10.96.1.0/24'),
        { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      ],
    });
    const pod = lab.netns('stcp');
    const gateway = '10.96.1.1';
    const rt = {
      containerId: uniqueName('ctr'),
      netns: netnsPath(pod),
      ifname: 'eth0',
      capabilityArgs: {
        portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }],
      },
    };
    const result = await addNetworkList(runtime, list, rt);
    const ip = podAddress(result);
    assert.match(ip, /^10\.96\.1\./);
    // Spec "Adding an attachment": the runtime stores the final result for CHECK and DEL.
    assert.deepEqual(cachedResultFiles(runtime), [`${name}-${rt.containerId}-eth0`]);
    assert.deepEqual(
      (await getNetworkListCachedResult(runtime, list, rt))?.ips.map((i) => i.address),
      result.ips.map((i) => i.address),
    );

    await serveTcpAll(lab, [{ netns: pod, host: ip, port: 8080, reply: `pod-${pod}` }]);
    // portmap DNATs locally generated traffic to a local address (its OUTPUT rule with
    // --dst-type LOCAL): the node reaches the pod through the gateway address and through
    // localhost (portmap sets route_localnet on the bridge and masquerades 127.0.0.0/8).
    assert.equal(await tcpReply(node, gateway, 18080), `pod-${pod}`);
    assert.equal(await tcpReply(node, '127.0.0.1', 18080), `pod-${pod}`);
    assert.match(natRules(node), new RegExp(`--dport 18080 .*--to-destination ${ip}:8080`));

    // Spec "CHECK": a runtime must not call CHECK when disableCheck is set (portmap would fail).
    await checkNetworkList(runtime, list, rt);

    await delNetworkList(runtime, list, rt);
    assert.deepEqual(allocationFiles(dataDir, name), [], 'the address is released');
    assert.deepEqual(strataHostVeths(node), [], 'no host veth is left');
    const nat = natRules(node);
    assert.doesNotMatch(nat, /CNI-DN-/, 'portmap removed its per-container chain');
    assert.doesNotMatch(nat, /18080/, 'no rule mentions the host port');
    assert.equal(await tcpReply(node, gateway, 18080), '', 'the host port is closed again');
    // Spec "DEL": the runtime deletes the cached result on a successful DEL.
    assert.deepEqual(cachedResultFiles(runtime), []);
  });

  it('strata-cni then tuning: the MAC from runtimeConfig and a sysctl are set in the pod', async () => {
    // tuning's "mac" capability (CONVENTIONS.md) and its sysctl map, applied after strata-cni;
    // tuning rewrites the MAC in the result it passes on, and CHECK gets that final result.
    const name = uniqueName('tn');
    const tuningData = lab.dir('strata-tuning-');
    const list = loadList({
      cniVersion: '1.0.0',
      name,
      plugins: [
        strataPlugin('10.96.2.0/24'),
        {
          type: 'tuning',
          capabilities: { mac: true },
          sysctl: { 'net.ipv4.conf.eth0.rp_filter': '2' },
          dataDir: tuningData,
        },
      ],
    });
    const pod = lab.netns('stcp');
    const mac = '0a:58:0a:60:02:42';
    const rt = {
      containerId: uniqueName('ctr'),
      netns: netnsPath(pod),
      ifname: 'eth0',
      capabilityArgs: { mac },
    };
    const result = await addNetworkList(runtime, list, rt);
    assert.equal(link(pod, 'eth0')?.address, mac);
    assert.equal(
      inNetns(pod, ['cat', '/proc/sys/net/ipv4/conf/eth0/rp_filter']).stdout.trim(),
      '2',
    );
    const sandbox = result.interfaces.find((i) => i.sandbox === netnsPath(pod));
    assert.equal(sandbox?.mac, mac, 'the final result is the last plugin’s');
    await checkNetworkList(runtime, list, rt);

    await delNetworkList(runtime, list, rt);
    assert.equal(link(pod, 'eth0'), undefined);
    assert.deepEqual(allocationFiles(dataDir, name), []);
    assert.deepEqual(strataHostVeths(node), []);
    assert.deepEqual(readdirSync(tuningData), [], 'tuning dropped its saved state');
  });

  it('refuses a list whose cniVersion a plugin does not support, before any ADD', async () => {
    // libcni ValidateNetworkList: every plugin's VERSION must list the list's cniVersion.
    // The reference portmap (v1.1.1) speaks up to 1.0.0.
    const name = uniqueName('vr');
    const list = loadList({
      cniVersion: '1.1.0',
      name,
      plugins: [
        strataPlugin('10.96.5.0/24'),
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    });
    const pod = lab.netns('stcp');
    await assert.rejects(
      addNetworkList(runtime, list, {
        containerId: uniqueName('ctr'),
        netns: netnsPath(pod),
        ifname: 'eth0',
      }),
      (error: unknown) => {
        assert.ok(error instanceof PluginError);
        assert.equal(error.code, CniErrorCode.IncompatibleVersion);
        assert.equal(error.plugin, 'portmap');
        assert.match(error.message, /plugins\[1\] \(portmap\).*"1\.1\.0".*supports \[.*1\.0\.0\]/);
        return true;
      },
    );
    assert.deepEqual(allocationFiles(dataDir, name), [], 'strata-cni was never called');
    assert.equal(link(pod, 'eth0'), undefined);
    assert.deepEqual(cachedResultFiles(runtime), []);
  });

  it('a failing ADD deletes the list in reverse; prevResult and runtimeConfig flow as the spec says', async () => {
    // Spec "Deriving execution configuration": name and cniVersion injected, capabilities
    // removed, runtimeConfig limited to declared capabilities, prevResult the previous result.
    // Spec "Lifecycle & Ordering": a failed ADD is followed by DEL of the list, in reverse.
    const recorder = installRecorder(lab, ['rec-a', 'rec-b']);
    const chainRuntime = testRuntime(lab, node, {
      binDirs: [recorder.dir, ...runtime.binDirs],
    });
    const name = uniqueName('rb');
    const plugins = [
      strataPlugin('10.96.6.0/24'),
      { type: 'rec-a', capabilities: { portMappings: true, mac: false }, keep: 'me' },
      { type: 'rec-b', failAdd: true },
    ];
    const list = loadList({ cniVersion: '1.0.0', name, plugins });
    const pod = lab.netns('stcp');
    const rt = {
      containerId: uniqueName('ctr'),
      netns: netnsPath(pod),
      ifname: 'eth0',
      capabilityArgs: {
        portMappings: [{ hostPort: 18081, containerPort: 80, protocol: 'tcp' }],
        mac: '0a:58:00:00:00:01',
      },
    };
    await assert.rejects(addNetworkList(chainRuntime, list, rt), (error: unknown) => {
      assert.ok(error instanceof PluginError);
      assert.equal(error.code, 110, 'the plugin’s own code is kept');
      assert.equal(error.msg, 'rec-b refuses this ADD');
      assert.equal(error.details, 'failAdd is set');
      assert.deepEqual(error.rollbackErrors, []);
      return true;
    });
    const calls = recorder.calls().filter((c) => c.command !== 'VERSION');
    assert.deepEqual(
      calls.map((c) => `${c.command} ${c.type}`),
      ['ADD rec-a', 'ADD rec-b', 'DEL rec-b', 'DEL rec-a'],
    );
    const [addA, addB] = calls;
    assert.equal(addA?.config.name, name);
    assert.equal(addA?.config.cniVersion, '1.0.0');
    assert.equal(addA?.config.keep, 'me', 'unknown fields pass through');
    assert.equal(addA?.config.capabilities, undefined, 'capabilities are removed');
    assert.deepEqual(addA?.config.runtimeConfig, { portMappings: rt.capabilityArgs.portMappings });
    assert.equal(addB?.config.runtimeConfig, undefined);
    const prevA = addA?.config.prevResult as { cniVersion: string; ips: { address: string }[] };
    assert.equal(prevA.cniVersion, '1.0.0');
    assert.match(prevA.ips[0]?.address ?? '', /^10\.96\.6\.\d+\/24$/);
    assert.deepEqual(addB?.config.prevResult, prevA, 'rec-a passed its prevResult on');
    // strata-cni (plugin 0) was deleted last: its address and veth are gone.
    assert.deepEqual(allocationFiles(dataDir, name), []);
    assert.deepEqual(strataHostVeths(node), []);
    assert.equal(link(pod, 'eth0'), undefined);
    assert.deepEqual(cachedResultFiles(chainRuntime), []);
  });

  // containerd and CRI-O DEL every plugin of the list after a failed ADD, including
  // those after the one that failed (a plugin must accept a DEL of what it never added).
  it('a failing ADD in the middle deletes the plugins after it too', async () => {
    const recorder = installRecorder(lab, ['rec-a', 'rec-b']);
    const chainRuntime = testRuntime(lab, node, { binDirs: [recorder.dir, ...runtime.binDirs] });
    const name = uniqueName('rm');
    const list = loadList({
      cniVersion: '1.0.0',
      name,
      plugins: [strataPlugin('10.96.7.0/24'), { type: 'rec-a', failAdd: true }, { type: 'rec-b' }],
    });
    const pod = lab.netns('stcp');
    const rt = { containerId: uniqueName('ctr'), netns: netnsPath(pod), ifname: 'eth0' };
    await assert.rejects(addNetworkList(chainRuntime, list, rt), PluginError);
    assert.deepEqual(
      recorder
        .calls()
        .filter((c) => c.command !== 'VERSION')
        .map((c) => `${c.command} ${c.type}`),
      ['ADD rec-a', 'DEL rec-b', 'DEL rec-a'],
    );
    assert.deepEqual(allocationFiles(dataDir, name), []);
  });

  it('DEL runs in reverse order with the cached final result', async () => {
    const recorder = installRecorder(lab, ['rec-a', 'rec-b']);
    const chainRuntime = testRuntime(lab, node, { binDirs: [recorder.dir, ...runtime.binDirs] });
    const name = uniqueName('dl');
    const list = loadList({
      cniVersion: '1.0.0',
      name,
      plugins: [strataPlugin('10.96.7.0/24'), { type: 'rec-a' }, { type: 'rec-b' }],
    });
    const pod = lab.netns('stcp');
    const rt = { containerId: uniqueName('ctr'), netns: netnsPath(pod), ifname: 'eth0' };
    const result = await addNetworkList(chainRuntime, list, rt);
    await delNetworkList(chainRuntime, list, rt);
    const dels = recorder.calls().filter((c) => c.command === 'DEL');
    assert.deepEqual(
      dels.map((c) => c.type),
      ['rec-b', 'rec-a'],
    );
    for (const del of dels) {
      const prev = del.config.prevResult as { ips: { address: string }[] };
      assert.deepEqual(
        prev.ips.map((i) => i.address),
        result.ips.map((i) => i.address),
      );
    }
    assert.deepEqual(allocationFiles(dataDir, name), []);
    assert.deepEqual(strataHostVeths(node), []);
  });

  it('STATUS is asked of every plugin from 1.1.0 and carries code 50; CHECK needs a cached ADD', async () => {
    // Spec 1.1.0 "STATUS": code 50 when the plugin cannot serve ADD; a list older than 1.1.0
    // has no STATUS (libcni GetStatusNetworkList returns nil). Spec "CHECK": a runtime must not
    // CHECK an attachment it has not ADDed.
    const name = uniqueName('st');
    // A /30 has one address to hand out: .2 (.1 is the gateway, .3 the broadcast).
    const list = loadList({ cniVersion: '1.1.0', name, plugins: [strataPlugin('10.96.8.0/30')] });
    await statusNetworkList(runtime, list);
    const pod = lab.netns('stcp');
    const rt = { containerId: uniqueName('ctr'), netns: netnsPath(pod), ifname: 'eth0' };
    await assert.rejects(checkNetworkList(runtime, list, rt), {
      code: CniErrorCode.UnknownContainer,
      message: /no cached result .*CHECK needs the result of its ADD/,
    });
    await addNetworkList(runtime, list, rt);
    await checkNetworkList(runtime, list, rt);
    await assert.rejects(statusNetworkList(runtime, list), (error: unknown) => {
      assert.ok(error instanceof PluginError);
      assert.equal(error.code, CniErrorCode.PluginNotAvailable);
      assert.equal(error.command, 'STATUS');
      return true;
    });
    const older = parseNetworkConfigList(
      JSON.stringify({ ...JSON.parse(list.bytes), cniVersion: '1.0.0' }),
      'older',
    );
    await statusNetworkList(runtime, older);
    await delNetworkList(runtime, list, rt);
    await statusNetworkList(runtime, list);
  });

  it('kills a plugin that hangs, and reports output that is not a CNI error object', async () => {
    // libcni runs plugins under a context deadline; its pluginErr reports undecodable output.
    const dir = lab.dir('strata-bad-plugins-');
    writeFileSync(join(dir, 'hangs'), '#!/bin/sh\nsleep 30\n', { mode: 0o755 });
    writeFileSync(join(dir, 'garbles'), '#!/bin/sh\necho not json\nexit 3\n', { mode: 0o755 });
    writeFileSync(join(dir, 'mute'), '#!/bin/sh\necho disk on fire >&2\nexit 4\n', { mode: 0o755 });
    const quick: CniRuntimeConfig = { ...runtime, binDirs: [dir], timeoutMs: 300 };
    const request = { command: 'DEL' as const, containerId: 'c1', ifname: 'eth0', config: {} };
    const started = Date.now();
    await assert.rejects(execPlugin(quick, join(dir, 'hangs'), request), {
      name: 'PluginError',
      message: /hangs failed on DEL: did not finish within 300 ms and was killed/,
    });
    assert.ok(Date.now() - started < 5000, 'the sleeping child did not hold the call open');
    await assert.rejects(execPlugin(quick, join(dir, 'garbles'), request), {
      code: CniErrorCode.Internal,
      message:
        /garbles failed on DEL: failed \(3\) but its output is not a CNI error object: "not json"/,
    });
    await assert.rejects(execPlugin(quick, join(dir, 'mute'), request), {
      message: /mute failed on DEL: failed \(exit status 4\): disk on fire/,
    });
  });

  it('strata-ipam serves the reference bridge plugin', async () => {
    // CNI spec 1.1.0 section 4 "Plugin Delegation": bridge finds ipam.type in CNI_PATH.
    const name = uniqueName('ri');
    const list = loadList({
      cniVersion: '1.0.0',
      name,
      plugins: [
        {
          type: 'bridge',
          bridge: uniqueName('br'),
          isGateway: true,
          ipam: { type: 'strata-ipam', dataDir, ranges: [[{ subnet: '10.96.3.0/24' }]] },
        },
      ],
    });
    const pod = lab.netns('stcp');
    const rt = { containerId: uniqueName('ctr'), netns: netnsPath(pod), ifname: 'eth0' };
    const result = await addNetworkList(runtime, list, rt);
    const ip = podAddress(result);
    assert.match(ip, /^10\.96\.3\./);
    // host-local's layout: <dataDir>/<network>/<ip> holding "containerID\r\nifname".
    assert.deepEqual(allocationFiles(dataDir, name), [ip]);
    assert.equal(allocationOwner(dataDir, name, ip), `${rt.containerId}\r\neth0`);
    await serveTcpAll(lab, [{ netns: pod, host: ip, port: 8080, reply: `pod-${pod}` }]);
    assert.equal(await tcpReply(node, ip, 8080), `pod-${pod}`);

    await delNetworkList(runtime, list, rt);
    assert.deepEqual(allocationFiles(dataDir, name), []);
    assert.equal(link(pod, 'eth0'), undefined);
  });

  it('strata-cni delegates to host-local, and releases its address when a later step fails', async () => {
    // Spec section 4 "Plugin Delegation"; and a plugin whose ADD fails must not leave its
    // delegate's allocation behind (reference bridge: ipam.ExecDel on failure after IPAM).
    const name = uniqueName('hl');
    const hostLocalData = lab.dir('strata-host-local-');
    const plugin = {
      type: 'strata-cni',
      bridge: uniqueName('br'),
      isGateway: true,
      ipam: { type: 'host-local', dataDir: hostLocalData, ranges: [[{ subnet: '10.96.4.0/24' }]] },
    };
    const list = loadList({ cniVersion: '1.0.0', name, plugins: [plugin] });
    const pod = lab.netns('stcp');
    const rt = { containerId: uniqueName('ctr'), netns: netnsPath(pod), ifname: 'eth0' };
    const result = await addNetworkList(runtime, list, rt);
    const ip = podAddress(result);
    assert.deepEqual(allocationFiles(hostLocalData, name), [ip]);
    assert.equal(allocationOwner(hostLocalData, name, ip), `${rt.containerId}\r\neth0`);
    await delNetworkList(runtime, list, rt);
    assert.deepEqual(allocationFiles(hostLocalData, name), []);

    // One plain ADD, no runtime rollback: strata-cni itself must undo what it did.
    const faulty: CniRuntimeConfig = {
      ...runtime,
      env: { ...runtime.env, STRATA_CNI_TEST_HOOKS: '1', STRATA_CNI_FAULT: 'fail:after-veth' },
    };
    const failedId = uniqueName('ctr');
    await assert.rejects(
      execPluginWithResult(faulty, findInPath('strata-cni', runtime.binDirs), {
        command: 'ADD',
        containerId: failedId,
        netns: netnsPath(pod),
        ifname: 'eth0',
        config: { ...plugin, name, cniVersion: '1.0.0' },
      }),
      (error: unknown) => {
        assert.ok(error instanceof PluginError);
        assert.equal(error.code, CniErrorCode.Internal);
        assert.match(error.msg, /injected failure at after-veth/);
        return true;
      },
    );
    assert.deepEqual(allocationFiles(hostLocalData, name), [], 'host-local’s address was released');
    assert.deepEqual(strataHostVeths(node), []);
    assert.equal(link(pod, 'eth0'), undefined);
    assert.ok(
      readdirSync(join(hostLocalData, name)).every(
        (f) => f === 'lock' || f.startsWith('last_reserved_ip'),
      ),
    );
  });
});
