// `strata mesh-proxy`'s command line (src/agent/mesh-command.ts): what the node
// agent passes it, checked before anything runs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MeshProxyUsageError,
  meshProxyCommand,
  parseMeshProxyArgs,
} from '../../src/agent/mesh-command.js';

const base = [
  '--state-dir',
  '/var/lib/strata',
  '--api',
  '/var/lib/strata/api.sock',
  '--node',
  'node-1',
  '--ca-socket',
  '/var/lib/strata/ca.sock',
  '--ca-token-file',
  '/var/lib/strata/nodes/node-1/ca-token',
];

describe('strata mesh-proxy arguments', () => {
  it('takes what the agent passes, with the defaults filled', () => {
    assert.deepEqual(parseMeshProxyArgs([...base, '--workload-cert-ttl', '90s']), {
      stateDir: '/var/lib/strata',
      api: '/var/lib/strata/api.sock',
      nodeName: 'node-1',
      caSocket: '/var/lib/strata/ca.sock',
      caTokenFile: '/var/lib/strata/nodes/node-1/ca-token',
      trustDomain: 'cluster.local',
      workloadCertTtlSeconds: 90,
    });
  });

  it('names a missing flag, an unknown one and a bad lifetime', () => {
    assert.throws(() => parseMeshProxyArgs(base.slice(2)), /--state-dir is required/);
    assert.throws(() => parseMeshProxyArgs([...base, '--bogus', 'x']), MeshProxyUsageError);
    assert.throws(
      () => parseMeshProxyArgs([...base, '--workload-cert-ttl', '5s']),
      /--workload-cert-ttl/,
    );
  });

  it('exits 2 with the usage for a bad command line, before starting anything', async () => {
    let err = '';
    const code = await meshProxyCommand(['--node', 'node-1'], {
      out: { write: () => true },
      err: { write: (text: string) => (err += text) },
    });
    assert.equal(code, 2);
    assert.match(err, /^strata mesh-proxy: --state-dir is required\n\nUsage: strata mesh-proxy/);
  });
});
