// Bad input to strata-cni, end to end in real namespaces: each case must get
// the CNI spec's error code (CNI spec 1.1.0, "Error" and its table of
// well-known codes), a message that names the culprit, a non-zero exit, and
// leave nothing behind: no allocation file, no new link on the node, no
// interface in the pod.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Lab, isRoot, links, netnsPath, uniqueName } from '../support/netns.js';
import {
  type PluginCall,
  allocationFiles,
  assertCniError,
  bridgeConf,
  callPlugin,
  mustCall,
} from '../support/plugin.js';

const skip = isRoot() ? false : 'needs root for network namespaces';

/** One test's world: its own node and pod namespaces, network and bridge names. */
interface World {
  node: string;
  pod: string;
  name: string;
  bridge: string;
  dataDir: string;
  conf: Record<string, unknown>;
}

function linkNames(netns: string): string[] {
  return links(netns)
    .map((l) => l.ifname)
    .sort();
}

void describe('strata-cni: bad input', { skip }, () => {
  const lab = new Lab();
  let dataDir: string;
  before(() => {
    dataDir = lab.dir();
  });
  after(() => {
    lab.cleanup();
  });

  function world(
    subnets: string[],
    options: { extra?: Record<string, unknown>; ipamExtra?: Record<string, unknown> } = {},
    cniVersion?: string,
  ): World {
    const name = uniqueName('net');
    const bridge = uniqueName('br');
    return {
      node: lab.netns('stn'),
      pod: lab.netns('stp'),
      name,
      bridge,
      dataDir,
      conf: bridgeConf({ name, bridge, dataDir, subnets, cniVersion, ...options }),
    };
  }

  /**
   * Makes an ADD (unless `call` says otherwise) that must fail with `code` and
   * a message matching `msg`, and checks that it left nothing behind.
   */
  function refused(
    w: World,
    call: Partial<PluginCall>,
    code: number,
    msg: RegExp,
    cniVersion?: string,
  ): string {
    const nodeBefore = linkNames(w.node);
    const out = callPlugin({
      command: 'ADD',
      node: w.node,
      pod: w.pod,
      containerId: uniqueName('ctr'),
      ifname: 'eth0',
      conf: w.conf,
      ...call,
    });
    const text = assertCniError(out, code, msg, cniVersion);
    assert.deepEqual(allocationFiles(w.dataDir, w.name), [], 'an address is allocated');
    assert.deepEqual(linkNames(w.node), nodeBefore, 'the node has a new link');
    assert.deepEqual(linkNames(w.pod), ['lo'], 'the pod has a new link');
    return text;
  }

  // Spec "Parameters" and libcni's checks: code 4 for a missing or invalid
  // environment variable, and the message names the variable.
  const environmentCases: {
    label: string;
    call: Partial<PluginCall>;
    msg: RegExp;
  }[] = [
    { label: 'missing CNI_COMMAND', call: { unset: ['CNI_COMMAND'] }, msg: /CNI_COMMAND/ },
    {
      label: 'unknown CNI_COMMAND',
      call: { env: { CNI_COMMAND: 'ATTACH' } },
      msg: /CNI_COMMAND.*ATTACH/,
    },
    {
      label: 'missing CNI_CONTAINERID for ADD',
      call: { unset: ['CNI_CONTAINERID'] },
      msg: /CNI_CONTAINERID/,
    },
    { label: 'missing CNI_IFNAME for ADD', call: { unset: ['CNI_IFNAME'] }, msg: /CNI_IFNAME/ },
    { label: 'missing CNI_NETNS for ADD', call: { unset: ['CNI_NETNS'] }, msg: /CNI_NETNS/ },
    {
      label: 'CNI_IFNAME longer than 15 characters',
      call: { ifname: 'eth0123456789abc' },
      msg: /CNI_IFNAME.*eth0123456789abc/,
    },
    { label: 'CNI_IFNAME with "/"', call: { ifname: 'eth/0' }, msg: /CNI_IFNAME.*eth\/0/ },
    {
      label: 'CNI_CONTAINERID starting with "-"',
      call: { containerId: '-ctr' },
      msg: /CNI_CONTAINERID.*-ctr/,
    },
    {
      label: 'CNI_CONTAINERID with "/"',
      call: { containerId: 'ctr/../x' },
      msg: /CNI_CONTAINERID/,
    },
  ];
  for (const c of environmentCases) {
    void it(`${c.label}: code 4 naming the variable`, () => {
      const w = world(['10.97.100.0/24']);
      // The error answers in the configuration's version, which is known even here.
      refused(w, c.call, 4, c.msg, '1.0.0');
    });
  }

  // Spec "Error": code 6, failure to decode content.
  void it('malformed JSON on stdin: code 6', () => {
    const w = world(['10.97.100.0/24']);
    const text = JSON.stringify(w.conf).slice(0, 40);
    refused(w, { conf: text }, 6, /decode.*stdin/);
  });

  // Spec "Error": code 1, incompatible CNI version; the message names it.
  for (const version of ['0.2.0', '9.9.9']) {
    void it(`unsupported cniVersion ${version}: code 1`, () => {
      const w = world(['10.97.100.0/24'], {}, version);
      refused(w, {}, 1, new RegExp(version.replaceAll('.', '\\.')));
    });
  }

  // host-local Range.Canonicalize: an unparseable subnet, one with host bits
  // set, or a prefix too long is refused; spec code 7, naming the field.
  for (const subnet of ['10.97.101.0/33', '10.97.101.5/24', 'banana']) {
    void it(`invalid subnet ${subnet}: code 7 naming ipam.ranges[0][0].subnet`, () => {
      const w = world([subnet]);
      const text = refused(w, {}, 7, /ipam\.ranges\[0\]\[0\]\.subnet/, '1.0.0');
      assert.ok(text.includes(subnet), `message names ${subnet}: ${text}`);
    });
  }

  // host-local: "no IP addresses available in range set" (spec code 11, try
  // again later); STATUS (spec 1.1.0) answers 50 while no ADD can succeed,
  // and succeeds again once an address is free.
  void it('an exhausted range: ADD fails with 11, STATUS with 50 until a DEL', () => {
    // A /30 holds two addresses; the gateway takes one.
    const w = world(['10.97.102.0/30'], {}, '1.1.0');
    const firstCall = {
      node: w.node,
      pod: w.pod,
      containerId: uniqueName('ctr'),
      ifname: 'eth0',
      conf: w.conf,
    };
    const first = mustCall({ command: 'ADD', ...firstCall });
    const firstResult = first.json as { ips: { address: string }[] };
    assert.deepEqual(
      firstResult.ips.map((ip) => ip.address),
      ['10.97.102.2/30'],
    );

    const nodeBefore = linkNames(w.node);
    const pod2 = lab.netns('stp');
    const second = callPlugin({
      command: 'ADD',
      node: w.node,
      pod: pod2,
      containerId: uniqueName('ctr'),
      ifname: 'eth0',
      conf: w.conf,
    });
    assertCniError(second, 11, /10\.97\.102\.(0\/30|1-10\.97\.102\.2)/, '1.1.0');
    assert.deepEqual(allocationFiles(w.dataDir, w.name), ['10.97.102.2']);
    assert.deepEqual(linkNames(w.node), nodeBefore, 'the failed ADD left a link on the node');
    assert.deepEqual(linkNames(pod2), ['lo'], 'the failed ADD left a link in the pod');

    // STATUS gets the configuration and CNI_COMMAND only.
    const status = (): ReturnType<typeof callPlugin> =>
      callPlugin({ command: 'STATUS', node: w.node, conf: w.conf, unset: ['CNI_PATH'] });
    assertCniError(status(), 50, /ipam\.ranges\[0\]|10\.97\.102\./, '1.1.0');

    mustCall({ command: 'DEL', ...firstCall, conf: { ...w.conf, prevResult: firstResult } });
    assert.deepEqual(allocationFiles(w.dataDir, w.name), []);
    const ready = status();
    assert.equal(ready.status, 0, `STATUS after DEL: ${ready.stdout} ${ready.stderr}`);
    assert.equal(ready.stdout, '');
  });

  // Spec "Error": code 3, the container (its network namespace) does not exist.
  void it('a CNI_NETNS path that does not exist: code 3 naming CNI_NETNS', () => {
    const w = world(['10.97.103.0/24']);
    const missing = netnsPath(uniqueName('gone'));
    refused(w, { pod: undefined, netnsPath: missing }, 3, /CNI_NETNS/, '1.0.0');
  });

  // Spec "Delegated plugins": the IPAM plugin is found in CNI_PATH; a missing
  // one is an invalid network configuration (code 7) naming ipam.type.
  void it('an unknown IPAM plugin type: code 7 naming ipam.type', () => {
    const w = world(['10.97.104.0/24'], { ipamExtra: { type: 'no-such-ipam' } });
    refused(w, {}, 7, /ipam\.type.*no-such-ipam/, '1.0.0');
  });

  // Spec "Error": code 2, unsupported field; the message contains key and value.
  void it('an unsupported bridge field ("vlan": 100): code 2 naming key and value', () => {
    const w = world(['10.97.105.0/24'], { extra: { vlan: 100 } });
    refused(w, {}, 2, /vlan.*100/, '1.0.0');
  });

  void it('an unknown top-level field: code 2 naming it', () => {
    const w = world(['10.97.106.0/24'], { extra: { frobnicate: true } });
    refused(w, {}, 2, /frobnicate/, '1.0.0');
  });
});
