// Pods over HTTP: an update may change only what upstream's ValidatePodUpdate
// allows (422 on spec otherwise), and a pod is bound to a node through the
// pods/<name>/binding subresource, as kube-scheduler binds it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertStatus,
  call,
  createIn,
  pod,
  startTestServer,
  stopTestServer,
} from '../support/apiserver.js';

before(startTestServer);
after(stopTestServer);

describe('pod spec updates and the binding subresource', () => {
  const path = '/api/v1/namespaces/default/pods/bindme';
  const binding = (node: unknown, metadata: Record<string, unknown> = {}) => ({
    apiVersion: 'v1',
    kind: 'Binding',
    metadata: { name: 'bindme', ...metadata },
    target: { kind: 'Node', name: node },
  });

  it('refuses an update of spec.nodeName (422 on spec), binds through POST pods/<name>/binding', async () => {
    const created = await createIn('default', pod('bindme', {}, { tolerations: [] }));
    const patched = assertStatus(
      await call('PATCH', path, { spec: { nodeName: 'n1' } }, 'application/merge-patch+json'),
      422,
      'Invalid',
    );
    assert.equal(patched.details.causes?.[0]?.field, 'spec');
    assert.match(
      patched.message,
      /pod updates may not change fields other than `spec.containers\[\*\].image`/,
    );
    const put = { ...created, spec: { ...created.spec, nodeName: 'n1' } };
    assertStatus(await call('PUT', path, put), 422, 'Invalid');

    assertStatus(
      await call('POST', `${path}/binding`, binding('n1', { uid: 'other' })),
      409,
      'Conflict',
    );
    const bound = await call('POST', `${path}/binding`, binding('n1', { annotations: { a: 'b' } }));
    assert.equal(bound.code, 201, JSON.stringify(bound.body));
    assert.deepEqual(bound.body, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Success',
      code: 201,
    });
    const stored = (await call('GET', path)).body;
    assert.equal(stored.spec?.nodeName, 'n1');
    assert.equal(stored.metadata.annotations?.a, 'b');
    const conditions = stored.status?.conditions as { type: string; status: string }[];
    assert.deepEqual(
      conditions.map((c) => [c.type, c.status]),
      [['PodScheduled', 'True']],
    );
    const again = assertStatus(
      await call('POST', `${path}/binding`, binding('n2')),
      409,
      'Conflict',
    );
    assert.equal(
      again.message,
      'Operation cannot be fulfilled on pods/binding "bindme": pod bindme is already assigned to node "n1"',
    );
    // An image may still change; the binding may not be undone.
    const image = [{ op: 'replace', path: '/spec/containers/0/image', value: 'i:2' }];
    assert.equal((await call('PATCH', path, image, 'application/json-patch+json')).code, 200);
    assertStatus(
      await call('PATCH', path, { spec: { nodeName: null } }, 'application/merge-patch+json'),
      422,
      'Invalid',
    );
  });

  it('answers 400, 404, 405 and 422 for bindings that cannot be', async () => {
    await createIn('default', pod('bindme-2'));
    const other = '/api/v1/namespaces/default/pods/bindme-2/binding';
    assertStatus(await call('POST', other, binding('n1')), 400, 'BadRequest');
    const noTarget = assertStatus(
      await call('POST', other, { ...binding(''), metadata: { name: 'bindme-2' } }),
      422,
      'Invalid',
    );
    assert.equal(noTarget.details.causes?.[0]?.field, 'target.name');
    assertStatus(
      await call('POST', '/api/v1/namespaces/default/pods/ghost/binding', {
        ...binding('n1'),
        metadata: { name: 'ghost' },
      }),
      404,
      'NotFound',
    );
    assertStatus(await call('GET', other), 405, 'MethodNotAllowed');
    assertStatus(
      await call('POST', '/api/v1/namespaces/default/services/x/binding', {}),
      404,
      'NotFound',
    );
    const core = await call('GET', '/api/v1');
    assert.deepEqual(
      core.body.resources.find((r) => r.name === 'pods/binding'),
      {
        name: 'pods/binding',
        singularName: '',
        namespaced: true,
        kind: 'Binding',
        verbs: ['create'],
      },
    );
  });
});
