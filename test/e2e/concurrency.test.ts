// Parallel attachments on one network. CNI spec 1.1.0, "Lifecycle &
// Ordering": the runtime may run operations for different containers in
// parallel, and plugins must handle that (locking shared resources such as
// the IPAM store). 30 ADDs run at once through the strata runtime: each pod
// gets its own address and is reachable; 30 DELs at once leave nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addNetworkList, delNetworkList } from '../../src/cni/runtime/chain.js';
import { type NetworkConfigList, loadDefaultNetwork } from '../../src/cni/runtime/conflist.js';
import type { CniRuntimeConfig } from '../../src/cni/runtime/invoke.js';
import { Lab, isRoot, links, netnsPath, uniqueName } from '../support/netns.js';
import { allocationFiles } from '../support/plugin.js';
import {
  cachedResultFiles,
  masqueradeElements,
  serveTcpAll,
  tcpReply,
  testRuntime,
  writeConfigFile,
} from '../support/runtime.js';

const skip = isRoot() ? false : 'needs root for network namespaces';
const podCount = 30;

describe('30 attachments at once on one network', { skip }, () => {
  const lab = new Lab();
  let node: string;
  let dataDir: string;
  let bridge: string;
  let runtime: CniRuntimeConfig;
  let list: NetworkConfigList;
  const pods: { netns: string; containerId: string; ip?: string }[] = [];

  before(() => {
    node = lab.netns('stcc');
    dataDir = lab.dir();
    bridge = uniqueName('br');
    runtime = testRuntime(lab, node);
    const confDir = lab.dir('strata-netd-');
    writeConfigFile(confDir, '10-strata.conflist', {
      cniVersion: '1.0.0',
      name: uniqueName('cc'),
      plugins: [
        {
          type: 'strata-cni',
          bridge,
          isGateway: true,
          ipMasq: true,
          ipam: { type: 'strata-ipam', dataDir, ranges: [[{ subnet: '10.96.10.0/24' }]] },
        },
      ],
    });
    list = loadDefaultNetwork(confDir).list;
    for (let i = 0; i < podCount; i++) {
      pods.push({ netns: lab.netns('stcq'), containerId: uniqueName('ctr') });
    }
  });
  after(() => {
    lab.cleanup();
  });

  it('30 parallel ADDs give 30 distinct addresses, each reachable over TCP from the node', async () => {
    // host-local semantics: one address per attachment, never two attachments per address
    // (the store's flock and O_EXCL address files).
    const outcomes = await Promise.allSettled(
      pods.map((pod) =>
        addNetworkList(runtime, list, {
          containerId: pod.containerId,
          netns: netnsPath(pod.netns),
          ifname: 'eth0',
        }),
      ),
    );
    // Every property is checked on the ADDs that succeeded; the failures are asserted last,
    // with their messages, so one failure does not hide the rest.
    const failures: string[] = [];
    const added = pods.filter((pod, i) => {
      const outcome = outcomes[i];
      if (outcome?.status !== 'fulfilled') {
        failures.push(
          `${pod.containerId}: ${String((outcome?.reason as Error | undefined)?.message)}`,
        );
        return false;
      }
      assert.equal(outcome.value.ips.length, 1);
      pod.ip = outcome.value.ips[0]?.address.split('/')[0];
      assert.match(pod.ip ?? '', /^10\.96\.10\.\d+$/);
      return true;
    });
    const addresses = added.map((p) => p.ip ?? '');
    assert.equal(
      new Set(addresses).size,
      added.length,
      `addresses are distinct: ${addresses.join(' ')}`,
    );
    assert.deepEqual(allocationFiles(dataDir, list.name), [...addresses].sort());
    // ipMasq: one masquerade element per pod, none lost to a concurrent nft transaction.
    assert.deepEqual(
      masqueradeElements(node)
        .filter((e) => e.set === 'masq_v4')
        .map((e) => e.address)
        .sort(),
      [...addresses].sort(),
    );

    await serveTcpAll(
      lab,
      added.map((p) => ({
        netns: p.netns,
        host: p.ip ?? '',
        port: 8080,
        reply: `hello-${p.netns}`,
      })),
    );
    const replies = await Promise.all(added.map((p) => tcpReply(node, p.ip ?? '', 8080)));
    assert.deepEqual(
      replies,
      added.map((p) => `hello-${p.netns}`),
    );
    assert.deepEqual(failures, [], `${failures.length} of ${podCount} ADDs failed`);
  });

  it('30 parallel DELs leave no link but the bridge and lo, no allocation and no cached result', async () => {
    await Promise.all(
      pods.map((pod) =>
        delNetworkList(runtime, list, {
          containerId: pod.containerId,
          netns: netnsPath(pod.netns),
          ifname: 'eth0',
        }),
      ),
    );
    assert.deepEqual(
      links(node)
        .map((l) => l.ifname)
        .sort(),
      [bridge, 'lo'].sort(),
    );
    assert.deepEqual(allocationFiles(dataDir, list.name), []);
    assert.deepEqual(masqueradeElements(node), []);
    assert.deepEqual(cachedResultFiles(runtime), []);
  });
});
