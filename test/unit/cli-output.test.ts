// The CLI's own layouts: Go's text/tabwriter as kubectl describe uses it, and
// `strata status`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tabwrite } from '../../src/cli/tabwriter.js';
import { type ClusterStatus, formatStatus, isHealthy } from '../../src/cluster/status.js';
import { planCluster } from '../../src/cluster/config.js';

describe('tabwrite (Go text/tabwriter, minwidth 0, padding 2)', () => {
  it('pads each cell of a column to the widest in its block plus two', () => {
    assert.equal(tabwrite('a\tb\nccc\td\n'), 'a    b\nccc  d\n');
  });

  it('ends a block at a line without the column', () => {
    assert.equal(tabwrite('a\tb\nno tabs\nlonger\tc\n'), 'a  b\nno tabs\nlonger  c\n');
  });

  it('aligns later columns only over the lines that have them', () => {
    assert.equal(tabwrite('a\tb\tc\naa\tbbb\tc\nx\ty\n'), 'a   b    c\naa  bbb  c\nx   y\n');
  });

  it('leaves the text after the last tab alone, empty cells padded', () => {
    assert.equal(tabwrite('Labels:\ta=b\n\tc=d\n'), 'Labels:  a=b\n         c=d\n');
  });
});

function clusterStatus(overrides: Partial<ClusterStatus> = {}): ClusterStatus {
  const plan = planCluster({ name: 'lab', nodes: 2, stateDir: '/tmp/lab' });
  return {
    target: { name: 'lab', stateDir: '/tmp/lab' },
    record: {
      ...plan,
      processes: { apiserver: 10, controller: 11, 'agent-node-1': 12, 'agent-node-2': 13 },
    },
    processes: [
      { component: 'apiserver', pid: 10, running: true },
      { component: 'controller', pid: 11, running: true },
      { component: 'agent-node-1', pid: 12, running: true },
      { component: 'agent-node-2', pid: 13, running: true },
    ],
    nodes: plan.nodes.map((node, i) => ({
      ...node,
      registered: true,
      ready: true,
      podCidr: `10.244.${i}.0/24`,
      meshProxyPid: 20 + i,
    })),
    ...overrides,
  };
}

describe('strata status', () => {
  it('shows nodes with IPs, pod CIDRs, readiness and agents, then the components', () => {
    const cluster = clusterStatus();
    assert.equal(isHealthy(cluster), true);
    assert.equal(
      formatStatus(cluster),
      [
        'Cluster "lab": healthy',
        '  state      /tmp/lab',
        '  api        unix:///tmp/lab/api.sock',
        '  networks   cluster 10.244.0.0/16 (/24 per node), services 10.96.0.0/16, underlay 172.31.0.0/24, host-gw',
        '',
        'NODE     IP            POD CIDR        STATUS   AGENT              MESH PROXY',
        'node-1   172.31.0.11   10.244.0.0/24   Ready    running (pid 12)   running (pid 20)',
        'node-2   172.31.0.12   10.244.1.0/24   Ready    running (pid 13)   running (pid 21)',
        '',
        'COMPONENT    PROCESS',
        'apiserver    running (pid 10)',
        'controller   running (pid 11)',
        '',
      ].join('\n'),
    );
  });

  it('is degraded when a process is gone or a node is not Ready, and says where the logs are', () => {
    const base = clusterStatus();
    const cluster = clusterStatus({
      processes: base.processes.map((p) =>
        p.component === 'controller' ? { ...p, running: false } : p,
      ),
      nodes: base.nodes.map((n) => (n.name === 'node-2' ? { ...n, ready: false } : n)),
    });
    assert.equal(isHealthy(cluster), false);
    const text = formatStatus(cluster);
    assert.match(text, /^Cluster "lab": degraded\n/);
    assert.match(
      text,
      /\nnode-2 +172\.31\.0\.12 +10\.244\.1\.0\/24 +NotReady +running \(pid 13\) +running \(pid 21\)\n/,
    );
    assert.match(text, /\ncontroller +exited \(pid 11\)\n/);
    assert.match(
      text,
      /Logs: \/tmp\/lab\/logs\/\. Start again with "strata down --name lab --state-dir \/tmp\/lab"/,
    );
  });

  it("is degraded when a node's mesh proxy is not running", () => {
    const base = clusterStatus();
    const cluster = clusterStatus({
      nodes: base.nodes.map((node) => {
        if (node.name !== 'node-2') return node;
        const { name, ip, netns, registered, ready, podCidr } = node;
        return { name, ip, netns, registered, ready, podCidr };
      }),
    });
    assert.equal(isHealthy(cluster), false);
    assert.match(formatStatus(cluster), /\nnode-2 .* running \(pid 13\) +not running\n/);
  });

  it('says when the API server did not answer', () => {
    const base = clusterStatus();
    const cluster = clusterStatus({
      apiError: 'connect ECONNREFUSED /tmp/lab/api.sock',
      nodes: base.nodes.map(({ name, ip, netns }) => ({ name, ip, netns })),
    });
    assert.equal(isHealthy(cluster), false);
    assert.match(formatStatus(cluster), /node-1 +172\.31\.0\.11 +<none> +unknown/);
    assert.match(formatStatus(cluster), /The API server did not answer: connect ECONNREFUSED/);
  });
});
