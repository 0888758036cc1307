// Which identities a node may obtain (src/mesh/identity/authorize.ts, after
// istiod's node authorizer for ztunnel): only those of live pods bound to it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mayIssue, type PodBinding } from '../../src/mesh/identity/authorize.js';
import type { SpiffeId } from '../../src/mesh/identity/spiffe.js';

const trustDomain = 'cluster.local';
const web: SpiffeId = { trustDomain, namespace: 'shop', serviceAccount: 'web' };

const pod = (change: Partial<PodBinding> = {}): PodBinding => ({
  namespace: 'shop',
  serviceAccount: 'web',
  nodeName: 'node-1',
  phase: 'Running',
  ...change,
});

function refusal(decision: ReturnType<typeof mayIssue>): string {
  assert.equal(decision.allowed, false);
  return decision.allowed ? '' : decision.reason;
}

describe('mayIssue', () => {
  it('allows the identity of a pod bound to the node, whatever its phase until it ends', () => {
    for (const phase of ['Pending', 'Running', 'Unknown', undefined]) {
      assert.deepEqual(mayIssue('node-1', web, [pod({ phase })], trustDomain), { allowed: true });
    }
    // One live pod among others is enough.
    const pods = [pod({ nodeName: 'node-2' }), pod({ phase: 'Succeeded' }), pod()];
    assert.deepEqual(mayIssue('node-1', web, pods, trustDomain), { allowed: true });
  });

  it("refuses a pod's identity to any node but the one it is bound to", () => {
    const pods = [pod({ nodeName: 'node-2' }), pod({ nodeName: 'node-3' })];
    assert.equal(
      refusal(mayIssue('node-1', web, pods, trustDomain)),
      'Node "node-1" may not obtain spiffe://cluster.local/ns/shop/sa/web: pods running as ' +
        'service account "web" in namespace "shop" are bound to other nodes ("node-2", "node-3"), not to it',
    );
    // Nor to a node when the pod is not scheduled yet.
    assert.match(
      refusal(mayIssue('node-1', web, [pod({ nodeName: undefined })], trustDomain)),
      /no pod bound to it runs as service account "web" in namespace "shop"/,
    );
  });

  it('refuses when the only pods on the node have finished or are being deleted', () => {
    assert.match(
      refusal(
        mayIssue(
          'node-1',
          web,
          [pod({ phase: 'Succeeded' }), pod({ phase: 'Failed' })],
          trustDomain,
        ),
      ),
      /its only pods running as service account "web" in namespace "shop" are 2 finished$/,
    );
    assert.match(
      refusal(
        mayIssue('node-1', web, [pod({ deleted: true }), pod({ phase: 'Failed' })], trustDomain),
      ),
      /are 1 finished and 1 being deleted$/,
    );
  });

  it('refuses another namespace or service account on the same node', () => {
    const pods = [pod({ namespace: 'other' }), pod({ serviceAccount: 'admin' })];
    assert.match(
      refusal(mayIssue('node-1', web, pods, trustDomain)),
      /^Node "node-1" may not obtain spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web: no pod bound to it runs as/,
    );
  });

  it('refuses a foreign trust domain, even for a pod on the node', () => {
    const foreign = { ...web, trustDomain: 'evil.example' };
    assert.equal(
      refusal(mayIssue('node-1', foreign, [pod()], trustDomain)),
      'spiffe://evil.example/ns/shop/sa/web is outside trust domain "cluster.local", the only one this CA signs for',
    );
  });

  it('refuses a request naming no node, or an identity that is not one', () => {
    assert.equal(
      refusal(mayIssue('', web, [pod({ nodeName: '' })], trustDomain)),
      'The request names no node',
    );
    assert.match(
      refusal(mayIssue('node-1', { ...web, serviceAccount: '' }, [pod()], trustDomain)),
      /serviceAccount must not be empty/,
    );
  });
});
