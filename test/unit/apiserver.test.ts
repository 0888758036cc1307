// The API server over HTTP, as kubectl and curl see it: discovery, health,
// create and read (get, list, label and field selectors), with the status
// codes and Status bodies kube-apiserver answers the same requests with;
// curl as the client, over TCP and a unix socket. Writes and watches have
// their own files (apiserver-writes, apiserver-watch).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startApiServer } from '../../src/apiserver/server.js';
import { MemoryStore } from '../../src/store/memory.js';
import {
  assertStatus,
  call,
  createIn,
  createNamespace,
  type Event,
  type Json,
  pod,
  serverUrl,
  startTestServer,
  stopTestServer,
  testStore,
} from '../support/apiserver.js';

const run = promisify(execFile);

/** kubectl, when this machine has it (Debian's kubernetes-client): the real client of this API. */
const kubectl = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((p) => existsSync(p));

before(startTestServer);
after(stopTestServer);

describe('discovery and health', () => {
  it('serves /api, /apis, group and resource lists kubectl discovers resources with', async () => {
    const versions = await call('GET', '/api');
    assert.equal(versions.body.kind, 'APIVersions');
    assert.deepEqual(versions.body.versions, ['v1']);
    const groups = await call('GET', '/apis');
    assert.equal(groups.body.kind, 'APIGroupList');
    const names = groups.body.groups.map((g) => g.name);
    for (const g of [
      'apps',
      'networking.k8s.io',
      'networking.istio.io',
      'security.istio.io',
      'gateway.networking.k8s.io',
    ]) {
      assert.ok(names.includes(g), g);
    }
    assert.deepEqual(groups.body.groups.find((g) => g.name === 'apps')?.preferredVersion, {
      groupVersion: 'apps/v1',
      version: 'v1',
    });
    const core = await call('GET', '/api/v1');
    assert.equal(core.body.kind, 'APIResourceList');
    assert.equal(core.body.groupVersion, 'v1');
    const resources = core.body.resources;
    assert.deepEqual(
      resources.find((r) => r.name === 'pods'),
      {
        name: 'pods',
        singularName: 'pod',
        namespaced: true,
        kind: 'Pod',
        verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
        shortNames: ['po'],
      },
    );
    assert.deepEqual(resources.find((r) => r.name === 'pods/status')?.verbs, [
      'get',
      'patch',
      'update',
    ]);
    assert.equal(resources.find((r) => r.name === 'namespaces')?.namespaced, false);
    const netpol = await call('GET', '/apis/networking.k8s.io/v1');
    assert.equal(netpol.body.resources[0]?.kind, 'NetworkPolicy');
    const apps = await call('GET', '/apis/apps');
    assert.equal(apps.body.kind, 'APIGroup');
    assertStatus(await call('GET', '/apis/example.com/v1'), 404, 'NotFound');
    assertStatus(await call('GET', '/api/v2'), 404, 'NotFound');
  });

  it('publishes the fieldValidation parameter of each PATCH in /openapi/v3, as kubectl checks', async () => {
    const root = await call('GET', '/openapi/v3');
    const paths = root.body.paths as Record<string, { serverRelativeURL: string }>;
    assert.match(
      paths['apis/networking.k8s.io/v1']?.serverRelativeURL ?? '',
      /^\/openapi\/v3\/apis\/networking\.k8s\.io\/v1\?hash=/,
    );
    const core = await call('GET', paths['api/v1']?.serverRelativeURL ?? '');
    const item = (core.body.paths as Record<string, Record<string, Json>>)[
      '/api/v1/namespaces/{namespace}/pods/{name}'
    ];
    assert.deepEqual(item?.patch?.['x-kubernetes-group-version-kind'], {
      group: '',
      version: 'v1',
      kind: 'Pod',
    });
    assert.deepEqual(
      (item?.patch?.parameters as { name: string }[]).map((p) => p.name),
      ['fieldValidation'],
    );
    assertStatus(await call('GET', '/openapi/v3/apis/example.com/v1'), 404, 'NotFound');
  });

  it('answers /healthz, /readyz and /version', async () => {
    assert.deepEqual(await call('GET', '/healthz'), { code: 200, body: { text: 'ok' } });
    assert.deepEqual(await call('GET', '/readyz'), { code: 200, body: { text: 'ok' } });
    const version = await call('GET', '/version');
    assert.equal(version.body.major, '1');
    assert.match(version.body.gitVersion, /^v1\.\d+\.0\+strata-/);
  });

  it('starts with the default, kube-system and istio-system namespaces', async () => {
    const list = await call('GET', '/api/v1/namespaces');
    assert.equal(list.body.kind, 'NamespaceList');
    const names = list.body.items.map((n) => n.metadata.name);
    for (const n of ['default', 'kube-system', 'istio-system']) assert.ok(names.includes(n), n);
    assert.equal(list.body.items[0]?.status?.phase, 'Active');
  });
});

describe('create (POST)', () => {
  it('returns 201 with uid, creationTimestamp, generation 1 and the store revision as resourceVersion', async () => {
    const created = await createIn('default', pod('create-a'));
    assert.match(created.metadata.uid as string, /^[0-9a-f-]{36}$/);
    assert.match(created.metadata.creationTimestamp as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(created.metadata.generation, 1);
    assert.equal(created.metadata.namespace, 'default');
    assert.equal(created.metadata.resourceVersion, String(testStore().revision()));
    assert.deepEqual(created.status, { phase: 'Pending' });
    const got = await call('GET', '/api/v1/namespaces/default/pods/create-a');
    assert.deepEqual(got.body, created);
  });

  it('generates a name from generateName', async () => {
    const created = await createIn('default', { ...pod(''), metadata: { generateName: 'web-' } });
    assert.match(created.metadata.name as string, /^web-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
  });

  it('answers 409 AlreadyExists, 404 for a missing namespace, 400 for a namespace mismatch', async () => {
    const exists = assertStatus(
      await call('POST', '/api/v1/namespaces/default/pods', pod('create-a')),
      409,
      'AlreadyExists',
    );
    assert.equal(exists.message, 'pods "create-a" already exists');
    assert.deepEqual(exists.details, { name: 'create-a', group: '', kind: 'pods' });
    const missing = assertStatus(
      await call('POST', '/api/v1/namespaces/nowhere/pods', pod('p')),
      404,
      'NotFound',
    );
    assert.equal(missing.message, 'namespaces "nowhere" not found');
    assert.deepEqual(missing.details, { name: 'nowhere', group: '', kind: 'namespaces' });
    const other = { ...pod('p'), metadata: { name: 'p', namespace: 'kube-system' } };
    assertStatus(await call('POST', '/api/v1/namespaces/default/pods', other), 400, 'BadRequest');
    const kind = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'p' } };
    assertStatus(await call('POST', '/api/v1/namespaces/default/pods', kind), 400, 'BadRequest');
    const withVersion = { ...pod('p'), metadata: { name: 'p', resourceVersion: '3' } };
    assertStatus(
      await call('POST', '/api/v1/namespaces/default/pods', withVersion),
      500,
      'InternalError',
    );
  });

  it('answers 422 Invalid with one cause per field error', async () => {
    const bad = assertStatus(
      await call('POST', '/api/v1/namespaces/default/pods', pod('Bad_Name!')),
      422,
      'Invalid',
    );
    assert.equal(bad.details.kind, 'Pod');
    assert.equal(bad.details.name, 'Bad_Name!');
    assert.match(
      bad.message,
      /^Pod "Bad_Name!" is invalid: metadata\.name: Invalid value: "Bad_Name!": /,
    );
    assert.deepEqual(bad.details.causes?.[0]?.field, 'metadata.name');
    assert.equal(bad.details.causes?.[0]?.reason, 'FieldValueInvalid');
    const unnamed = { ...pod(''), metadata: {} };
    const noName = assertStatus(
      await call('POST', '/api/v1/namespaces/default/pods', unnamed),
      422,
      'Invalid',
    );
    assert.deepEqual(noName.details.causes, [
      {
        reason: 'FieldValueRequired',
        message: 'Required value: name or generateName is required',
        field: 'metadata.name',
      },
    ]);
    assert.equal(
      noName.message,
      'Pod "" is invalid: metadata.name: Required value: name or generateName is required',
    );
  });

  it('answers 400 for bad JSON, 415 for another media type, 405 where create is not served', async () => {
    assertStatus(
      await call('POST', '/api/v1/namespaces/default/pods', '{"metadata":'),
      400,
      'BadRequest',
    );
    assertStatus(await call('POST', '/api/v1/namespaces/default/pods', '[]'), 400, 'BadRequest');
    assertStatus(
      await call('POST', '/api/v1/namespaces/default/pods', 'a: b', 'application/yaml'),
      415,
      'UnsupportedMediaType',
    );
    assertStatus(await call('POST', '/api/v1/pods', pod('p')), 405, 'MethodNotAllowed');
    assertStatus(
      await call('PUT', '/api/v1/namespaces/default/pods', pod('p')),
      405,
      'MethodNotAllowed',
    );
    assertStatus(await call('GET', '/api/v1/namespaces/default/pods/a%2Fb'), 400, 'BadRequest');
    assertStatus(await call('GET', '/api/v1/namespaces/default/nosuch'), 404, 'NotFound');
  });

  it('creates cluster-scoped objects, dropping a namespace given to them', async () => {
    const created = await call('POST', '/api/v1/nodes', {
      metadata: { name: 'node-1', namespace: 'default' },
      status: { addresses: [] },
    });
    assert.equal(created.code, 201);
    assert.equal(created.body.metadata.namespace, undefined);
    assert.deepEqual(created.body.status, { addresses: [] });
    assert.equal((await call('GET', '/api/v1/nodes/node-1')).code, 200);
    assertStatus(await call('GET', '/api/v1/namespaces/default/nodes/node-1'), 404, 'NotFound');
  });
});

describe('get and list with selectors', () => {
  before(async () => {
    await createNamespace('sel');
    await createIn('sel', pod('a', { app: 'web', tier: 'front' }, { nodeName: 'n1' }));
    await createIn('sel', pod('b', { app: 'web', tier: 'back' }, { nodeName: 'n2' }));
    await createIn('sel', pod('c', { app: 'db' }));
  });

  async function names(query: string): Promise<string[]> {
    const reply = await call('GET', `/api/v1/namespaces/sel/pods?${query}`);
    assert.equal(reply.code, 200, JSON.stringify(reply.body));
    return reply.body.items.map((p) => p.metadata.name ?? '');
  }

  it('lists with a resourceVersion a watch can start from', async () => {
    const list = await call('GET', '/api/v1/namespaces/sel/pods');
    assert.equal(list.body.kind, 'PodList');
    assert.equal(list.body.apiVersion, 'v1');
    assert.equal(list.body.metadata.resourceVersion, String(testStore().revision()));
    assert.deepEqual(await names(''), ['a', 'b', 'c']);
    const all = await call('GET', '/api/v1/pods');
    assert.ok(all.body.items.some((p) => p.metadata.namespace === 'default'));
  });

  const labelCases: [string, string[]][] = [
    ['app=web', ['a', 'b']],
    ['app==web', ['a', 'b']],
    ['app!=web', ['c']],
    ['tier in (front,side)', ['a']],
    ['tier notin (front)', ['b', 'c']],
    ['tier', ['a', 'b']],
    ['!tier', ['c']],
    ['app=web,tier!=front', ['b']],
  ];
  for (const [selector, expected] of labelCases) {
    it(`labelSelector ${selector}`, async () => {
      assert.deepEqual(await names(`labelSelector=${encodeURIComponent(selector)}`), expected);
    });
  }

  it('fieldSelector metadata.name, metadata.namespace, spec.nodeName, status.phase', async () => {
    assert.deepEqual(await names('fieldSelector=metadata.name=b'), ['b']);
    assert.deepEqual(await names('fieldSelector=metadata.namespace=sel,metadata.name!=b'), [
      'a',
      'c',
    ]);
    assert.deepEqual(await names('fieldSelector=spec.nodeName=n1'), ['a']);
    assert.deepEqual(await names('fieldSelector=spec.nodeName='), ['c']);
    assert.deepEqual(await names('fieldSelector=status.phase==Pending'), ['a', 'b', 'c']);
  });

  it('answers 400 for a malformed selector or an unsupported field', async () => {
    assertStatus(
      await call('GET', '/api/v1/namespaces/sel/pods?labelSelector=app%20in%20web'),
      400,
      'BadRequest',
    );
    const field = assertStatus(
      await call('GET', '/api/v1/namespaces/sel/pods?fieldSelector=spec.foo=x'),
      400,
      'BadRequest',
    );
    assert.equal(field.message, 'field label not supported: spec.foo');
    assertStatus(
      await call('GET', '/api/v1/services?fieldSelector=spec.nodeName=x'),
      400,
      'BadRequest',
    );
  });

  it('answers 404 NotFound with details for a missing object', async () => {
    const missing = assertStatus(
      await call('GET', '/apis/apps/v1/namespaces/sel/deployments/nope'),
      404,
      'NotFound',
    );
    assert.equal(missing.message, 'deployments.apps "nope" not found');
    assert.deepEqual(missing.details, { name: 'nope', group: 'apps', kind: 'deployments' });
  });
});

describe('plain HTTP clients', () => {
  it('serves kubectl: discovery, apply, get, label, delete', { skip: !kubectl }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-kubectl-'));
    const k = (...args: string[]) =>
      run(kubectl ?? 'kubectl', ['-s', serverUrl(), '--cache-dir', join(dir, 'cache'), ...args], {
        env: { ...process.env, KUBECONFIG: join(dir, 'none') },
      });
    try {
      const resources = await k('api-resources', '-o', 'name');
      assert.match(resources.stdout, /^networkpolicies\.networking\.k8s\.io$/m);
      const manifest = join(dir, 'pod.yaml');
      writeFileSync(manifest, JSON.stringify(pod('kubectl-made', { via: 'kubectl' })));
      assert.match((await k('apply', '-f', manifest)).stdout, /pod\/kubectl-made created/);
      await k('label', 'pod', 'kubectl-made', 'tier=front');
      const got = await k('get', 'po', '-l', 'via=kubectl,tier in (front)', '-o', 'json');
      const items = (JSON.parse(got.stdout) as Json).items;
      assert.deepEqual(
        items.map((p) => p.metadata.name),
        ['kubectl-made'],
      );
      await k('delete', 'pod', 'kubectl-made', '--wait=false');
      assertStatus(
        await call('GET', '/api/v1/namespaces/default/pods/kubectl-made'),
        404,
        'NotFound',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves curl: create, get and watch', async () => {
    const manifest = JSON.stringify(pod('curled', { via: 'curl' }));
    const created = await run('curl', [
      '-sS',
      '-X',
      'POST',
      '-H',
      'Content-Type: application/json',
      '-d',
      manifest,
      '-w',
      '\n%{http_code}',
      `${serverUrl()}/api/v1/namespaces/default/pods`,
    ]);
    const [body, code] = created.stdout.split('\n');
    assert.equal(code, '201');
    assert.equal((JSON.parse(body ?? '') as Json).metadata.name, 'curled');
    const got = await run('curl', [
      '-sS',
      '-f',
      `${serverUrl()}/api/v1/namespaces/default/pods?labelSelector=via%3Dcurl`,
    ]);
    assert.deepEqual(
      (JSON.parse(got.stdout) as Json).items.map((p) => p.metadata.name),
      ['curled'],
    );
    const watched = await run('curl', [
      '-sSN',
      `${serverUrl()}/api/v1/namespaces/default/pods?watch=1&labelSelector=via%3Dcurl&timeoutSeconds=1`,
    ]);
    const lines = watched.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Event);
    assert.deepEqual(
      lines.map((e) => [e.type, e.object.metadata.name]),
      [['ADDED', 'curled']],
    );
  });

  it('serves on a unix socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strata-api-'));
    const socketPath = join(dir, 'api.sock');
    const local = await startApiServer({ store: new MemoryStore(), listen: { socketPath } });
    try {
      assert.equal(local.url, `unix://${socketPath}`);
      const health = await run('curl', [
        '-sS',
        '--unix-socket',
        socketPath,
        'http://localhost/healthz',
      ]);
      assert.equal(health.stdout, 'ok');
      const list = await run('curl', [
        '-sS',
        '--unix-socket',
        socketPath,
        'http://localhost/api/v1/namespaces/kube-system',
      ]);
      assert.equal((JSON.parse(list.stdout) as Json).metadata.name, 'kube-system');
    } finally {
      await local.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
