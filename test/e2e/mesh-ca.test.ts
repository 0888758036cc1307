// The mesh CA on a real cluster (`strata up --nodes 2`): the controller serves
// it on <state dir>/ca.sock, `up` gives each node a token only it can read, and
// a node obtains the identities of its own pods and never those of a pod on
// another node (issue 6: "A node cannot obtain a certificate for a pod on
// another node").
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import { CertificateRefusedError } from '../../src/mesh/certificates/errors.js';
import { CertificateManager } from '../../src/mesh/certificates/manager.js';
import type { SpiffeId } from '../../src/mesh/identity/spiffe.js';
import { verifyPeerChain } from '../../src/mesh/identity/verify.js';
import { clusterSkipReason } from '../support/cluster.js';
import { LiveCluster, isRunning } from '../support/live-cluster.js';

/** A pod bound to `node`, running as `serviceAccount`. */
function pinnedPod(name: string, node: string, serviceAccount: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName: node,
      serviceAccountName: serviceAccount,
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'app', image: 'sh', command: ['sleep', '3600'] }],
    },
  };
}

const identity = (serviceAccount: string): SpiffeId => ({
  trustDomain: 'cluster.local',
  namespace: 'default',
  serviceAccount,
});

const mode = (path: string): number => statSync(path).mode & 0o777;

describe('mesh CA on a live cluster', { skip: clusterSkipReason(), timeout: 60_000 }, () => {
  let cluster: LiveCluster | undefined;
  const managers: CertificateManager[] = [];

  after(async () => {
    for (const manager of managers) manager.close();
    if (cluster) assert.deepEqual(await cluster.down(), [], 'nothing of the cluster is left');
  });

  it("gives node-1 its own pod's identity and refuses it node-2's", async () => {
    cluster = LiveCluster.create();
    const c = cluster;
    await c.up(2, { dns: false });
    const state = c.stateDir;

    // What `up` made: the CA's key and the token digests for root alone, a token per node.
    assert.equal(mode(join(state, 'ca')), 0o700);
    assert.equal(mode(join(state, 'ca', 'ca-key.pem')), 0o600);
    assert.equal(mode(join(state, 'ca', 'node-tokens.json')), 0o600);
    assert.equal(mode(join(state, 'ca.sock')), 0o600);
    const digests = readFileSync(join(state, 'ca', 'node-tokens.json'), 'utf8');
    for (const node of ['node-1', 'node-2']) {
      const tokenFile = join(c.nodeDir(node), 'ca-token');
      assert.equal(mode(tokenFile), 0o600);
      const token = readFileSync(tokenFile, 'utf8').trim();
      assert.ok(!digests.includes(token), `${node}'s token is in node-tokens.json`);
    }

    await c.client.create(pinnedPod('local', 'node-1', 'local'));
    await c.client.create(pinnedPod('remote', 'node-2', 'remote'));
    await c.waitFor('both pods to run', async () => {
      const pods = await c.pods();
      return pods.length === 2 && pods.every(isRunning) ? pods : undefined;
    });

    const nodeOne = new CertificateManager({
      caSocket: join(state, 'ca.sock'),
      tokenFile: join(c.nodeDir('node-1'), 'ca-token'),
      trustDomain: 'cluster.local',
      log: () => undefined,
    });
    managers.push(nodeOne);

    const own = await nodeOne.certificateFor(identity('local'));
    assert.deepEqual(
      verifyPeerChain(own.certChainPem, await nodeOne.trustBundle(), {
        trustDomain: 'cluster.local',
        expected: identity('local'),
      }),
      identity('local'),
    );

    const refused = await nodeOne.certificateFor(identity('remote')).then(
      () => assert.fail("node-1 obtained the identity of node-2's pod"),
      (error: unknown) => error,
    );
    assert.ok(refused instanceof CertificateRefusedError, String(refused));
    assert.equal(
      refused.message,
      'Node "node-1" may not obtain spiffe://cluster.local/ns/default/sa/remote: pods running as ' +
        'service account "remote" in namespace "default" are bound to other nodes ("node-2"), not to it',
    );

    // The controller's log has both decisions, and no token.
    const log = readFileSync(join(state, 'logs', 'controller.log'), 'utf8');
    assert.match(
      log,
      /ca: issued spiffe:\/\/cluster\.local\/ns\/default\/sa\/local to node "node-1" \(serial [0-9a-f]+, notAfter /,
    );
    assert.match(
      log,
      /ca: refused spiffe:\/\/cluster\.local\/ns\/default\/sa\/remote to node "node-1"/,
    );
    for (const node of ['node-1', 'node-2']) {
      const token = readFileSync(join(c.nodeDir(node), 'ca-token'), 'utf8').trim();
      assert.ok(!log.includes(token), `${node}'s token is in the controller's log`);
    }
  });
});
