// `strata up`'s options, checked before anything is made (src/cluster/config.ts):
// the defaults of docs/cluster.md, node IPs from .11, CIDR parsing, the overlap rule
// naming both ranges, and the limits on --nodes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type UpOptions,
  clusterDefaults,
  defaultStateDir,
  isClusterNamespace,
  planCluster,
  resolveTarget,
  targetFlags,
} from '../../src/cluster/config.js';

function refused(options: UpOptions, message: RegExp): void {
  assert.throws(() => planCluster(options), { code: 'STRATA_ERR_CLUSTER_OPTION', message });
}

describe('planCluster', () => {
  it("plans docs/cluster.md's default cluster", () => {
    const plan = planCluster({});
    assert.deepEqual(plan, {
      name: 'default',
      stateDir: '/var/lib/strata/default',
      apiSocket: '/var/lib/strata/default/api.sock',
      clusterCidr: '10.244.0.0/16',
      nodeCidrMaskSize: 24,
      serviceCidr: '10.96.0.0/16',
      underlayCidr: '172.31.0.0/24',
      backend: 'host-gw',
      underlay: { netns: 'strata-default-underlay', bridge: 'underlay0' },
      nodes: [{ name: 'node-1', netns: 'strata-default-node-1', ip: '172.31.0.11' }],
    });
  });

  it('numbers nodes from 1 with underlay addresses from .11, named after the cluster', () => {
    const plan = planCluster({ name: 'lab', nodes: 3, underlayCidr: '192.168.50.0/24' });
    assert.deepEqual(
      plan.nodes.map((n) => [n.name, n.netns, n.ip]),
      [
        ['node-1', 'strata-lab-node-1', '192.168.50.11'],
        ['node-2', 'strata-lab-node-2', '192.168.50.12'],
        ['node-3', 'strata-lab-node-3', '192.168.50.13'],
      ],
    );
    assert.equal(plan.underlay.netns, 'strata-lab-underlay');
    assert.equal(plan.stateDir, '/var/lib/strata/lab');
  });

  it('takes the ranges with host bits cleared, and the state dir given', () => {
    const plan = planCluster({
      clusterCidr: '10.1.2.3/16',
      serviceCidr: '10.2.9.9/20',
      underlayCidr: '10.3.0.77/24',
      stateDir: '/tmp/s',
      backend: 'vxlan',
    });
    assert.equal(plan.clusterCidr, '10.1.0.0/16');
    assert.equal(plan.serviceCidr, '10.2.0.0/20');
    assert.equal(plan.underlayCidr, '10.3.0.0/24');
    assert.equal(plan.nodes[0]?.ip, '10.3.0.11');
    assert.equal(plan.apiSocket, '/tmp/s/api.sock');
    assert.equal(plan.backend, 'vxlan');
  });

  describe('refuses overlapping ranges, naming both', () => {
    const cases: [UpOptions, RegExp][] = [
      [
        { clusterCidr: '10.0.0.0/8' },
        /^--cluster-cidr 10\.0\.0\.0\/8 and --service-cidr 10\.96\.0\.0\/16 overlap: the cluster, service and underlay ranges must not share addresses$/,
      ],
      [
        { underlayCidr: '10.244.7.0/24' },
        /^--cluster-cidr 10\.244\.0\.0\/16 and --underlay-cidr 10\.244\.7\.0\/24 overlap/,
      ],
      [
        { serviceCidr: '172.31.0.0/16' },
        /^--service-cidr 172\.31\.0\.0\/16 and --underlay-cidr 172\.31\.0\.0\/24 overlap/,
      ],
      [
        { clusterCidr: '10.96.0.0/16', serviceCidr: '10.96.0.0/16' },
        /^--cluster-cidr 10\.96\.0\.0\/16 and --service-cidr 10\.96\.0\.0\/16 overlap/,
      ],
    ];
    for (const [options, message] of cases) {
      it(JSON.stringify(options), () => {
        refused(options, message);
      });
    }
  });

  it('accepts adjacent ranges that share no address', () => {
    const plan = planCluster({ clusterCidr: '10.0.0.0/16', serviceCidr: '10.1.0.0/16' });
    assert.equal(plan.serviceCidr, '10.1.0.0/16');
  });

  it('refuses what is not a CIDR, and IPv6 for now', () => {
    refused({ clusterCidr: '10.244.0.0' }, /^--cluster-cidr "10\.244\.0\.0" is not a CIDR/);
    refused({ serviceCidr: '10.96.0.0/33' }, /^--service-cidr "10\.96\.0\.0\/33" is not a CIDR/);
    refused({ underlayCidr: 'underlay' }, /^--underlay-cidr "underlay" is not a CIDR/);
    refused({ clusterCidr: 'fd00:10:244::/56' }, /IPv4 clusters only/);
  });

  it('needs at least one node, and no more than the pod CIDRs', () => {
    refused({ nodes: 0 }, /^--nodes 0: must be an integer from 1 to 1000$/);
    refused({ nodes: 1.5 }, /^--nodes 1\.5: must be an integer/);
    refused(
      { nodes: 5, clusterCidr: '10.244.0.0/22' },
      /^--nodes 5: the cluster CIDR 10\.244\.0\.0\/22 holds 4 pod CIDRs of \/24, one per node$/,
    );
    assert.equal(planCluster({ nodes: 4, clusterCidr: '10.244.0.0/22' }).nodes.length, 4);
    refused(
      { nodes: 3, clusterCidr: '10.244.0.0/24', nodeCidrMaskSize: 25 },
      /holds 2 pod CIDRs of \/25/,
    );
  });

  it('needs room on the underlay for every node IP', () => {
    refused(
      { nodes: 5, underlayCidr: '172.31.0.0/28' },
      /^--nodes 5: the underlay CIDR 172\.31\.0\.0\/28 has addresses for 4 nodes/,
    );
    // .11 to .14: .15 is the broadcast address.
    const nodes = planCluster({ nodes: 4, underlayCidr: '172.31.0.0/28' }).nodes;
    assert.equal(nodes[3]?.ip, '172.31.0.14');
  });

  it('refuses a node CIDR larger than the cluster CIDR', () => {
    refused({ clusterCidr: '10.244.0.0/25' }, /smaller than one node's pod CIDR \(\/24\)/);
  });

  it('refuses an unknown backend, naming the ones there are', () => {
    refused({ backend: 'bgp' }, /^--backend "bgp": must be one of host-gw, vxlan$/);
  });

  it('refuses cluster names that cannot name namespaces', () => {
    for (const name of ['', 'Upper', '-x', 'x-', 'a_b', 'a'.repeat(41)]) {
      refused({ name }, /is not a valid cluster name/);
    }
  });

  it('refuses a state dir too long for the API socket path', () => {
    refused({ stateDir: `/tmp/${'d'.repeat(120)}` }, /must fit in 107 bytes/);
  });
});

describe('cluster targets', () => {
  it('defaults to the default cluster under /var/lib/strata', () => {
    assert.deepEqual(resolveTarget({}), { name: 'default', stateDir: '/var/lib/strata/default' });
    assert.equal(defaultStateDir('lab'), '/var/lib/strata/lab');
    assert.equal(clusterDefaults.name, 'default');
  });

  it('prints only the flags that differ from the defaults', () => {
    assert.equal(targetFlags({ name: 'default', stateDir: '/var/lib/strata/default' }), '');
    assert.equal(targetFlags({ name: 'lab', stateDir: '/var/lib/strata/lab' }), ' --name lab');
    assert.equal(
      targetFlags({ name: 'lab', stateDir: '/tmp/lab' }),
      ' --name lab --state-dir /tmp/lab',
    );
  });

  it("knows a cluster's namespaces, and not those of a cluster whose name extends it", () => {
    const ours = [
      'strata-a-underlay',
      'strata-a-node-1',
      'strata-a-node-12',
      'strata-a-3f2a9c1e-7b4',
    ];
    for (const netns of ours) assert.equal(isClusterNamespace('a', netns), true, netns);
    const theirs = [
      'strata-a-b-underlay',
      'strata-a-b-node-1',
      'strata-a-b-3f2a9c1e-7b4',
      'strata-a-bcd-underlay',
      'strata-ab-node-1',
      'strata-a-',
      'other',
    ];
    for (const netns of theirs) assert.equal(isClusterNamespace('a', netns), false, netns);
  });
});
