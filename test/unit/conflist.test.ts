// The conflist the agent writes for its node (docs/cluster.md): strata-cni in
// routed pod mode on cni0, strata-ipam on the node's pod CIDR.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileConflist } from '../../src/agent/conflist.js';
import { parseBridgeConfig } from '../../src/cni/bridge/config.js';
import { parseNetConf } from '../../src/cni/netconf.js';

describe('compileConflist', () => {
  const conflist = compileConflist({ podCidr: '10.244.1.0/24', ipamDir: '/state/ipam' });
  const plugins = conflist.plugins as Record<string, unknown>[];

  it('is one strata-cni plugin on cni0, the pods default gateway, routing between pods', () => {
    assert.equal(conflist.cniVersion, '1.1.0');
    assert.equal(conflist.name, 'strata');
    assert.equal(plugins.length, 1);
    assert.deepEqual(plugins[0], {
      type: 'strata-cni',
      bridge: 'cni0',
      isGateway: true,
      isDefaultGateway: true,
      ipMasq: false,
      routedPods: true,
      ipam: {
        type: 'strata-ipam',
        dataDir: '/state/ipam',
        ranges: [[{ subnet: '10.244.1.0/24' }]],
      },
    });
  });

  it('is a configuration strata-cni accepts: isolated ports, routed pods', () => {
    const config = parseBridgeConfig(
      parseNetConf({ cniVersion: conflist.cniVersion, name: conflist.name, ...plugins[0] }),
    );
    assert.equal(config.routedPods, true);
    assert.equal(config.portIsolation, true);
    assert.equal(config.isGateway, true);
    assert.equal(config.hairpinMode, false);
  });

  it('carries the MTU when the backend needs one', () => {
    const vxlan = compileConflist({ podCidr: '10.244.1.0/24', ipamDir: '/d', mtu: 1450 });
    assert.equal((vxlan.plugins as Record<string, unknown>[])[0]?.mtu, 1450);
  });
});
