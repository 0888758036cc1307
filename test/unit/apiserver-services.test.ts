// Services' cluster IPs in the API server: an update without them keeps the
// allocated ones (upstream's patchAllocatedValues), and with a service CIDR
// (startApiServer's serviceCidr) the server allocates them at creation and
// refuses addresses that are taken or outside the range, as kube-apiserver.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { resourceForKind } from '../../src/api/registry.js';
import type { ResourceType } from '../../src/api/types.js';
import { type RunningApiServer, startApiServer } from '../../src/apiserver/server.js';
import { createObject } from '../../src/apiserver/storage.js';
import { MemoryStore } from '../../src/store/memory.js';
import {
  type Json,
  type Reply,
  assertStatus,
  call,
  createIn,
  startTestServer,
  stopTestServer,
} from '../support/apiserver.js';

const services = resourceForKind('v1', 'Service') as ResourceType;
const path = '/api/v1/namespaces/default/services';

function service(name: string, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { ports: [{ port: 80 }], ...spec },
  };
}

describe('a Service update without cluster IPs', () => {
  before(startTestServer);
  after(stopTestServer);

  it('keeps the allocated ones, their families, and a headless Service headless', async () => {
    const created = await createIn(
      'default',
      service('kept', {
        clusterIP: '10.96.0.10',
        ipFamilies: ['IPv4'],
        ipFamilyPolicy: 'SingleStack',
      }),
      'services',
    );
    // What kubectl replace sends: the manifest, without what the server filled.
    const replaced = await call('PUT', `${path}/kept`, {
      ...service('kept', { selector: { app: 'web' } }),
      metadata: { name: 'kept', resourceVersion: created.metadata.resourceVersion },
    });
    assert.equal(replaced.code, 200, JSON.stringify(replaced.body));
    assert.equal(replaced.body.spec?.clusterIP, '10.96.0.10');
    assert.deepEqual(replaced.body.spec?.clusterIPs, ['10.96.0.10']);
    assert.deepEqual(replaced.body.spec?.ipFamilies, ['IPv4']);
    assert.equal(replaced.body.spec?.ipFamilyPolicy, 'SingleStack');
    const patched = await call(
      'PATCH',
      `${path}/kept`,
      { spec: { clusterIP: null, clusterIPs: null } },
      'application/merge-patch+json',
    );
    assert.equal(patched.body.spec?.clusterIP, '10.96.0.10');
    await createIn('default', service('headless', { clusterIP: 'None' }), 'services');
    const headless = await call('PUT', `${path}/headless`, service('headless'));
    assert.equal(headless.code, 200, JSON.stringify(headless.body));
    assert.deepEqual(headless.body.spec?.clusterIPs, ['None']);
    // Changing an allocated address is still refused.
    const moved = await call('PUT', `${path}/kept`, service('kept', { clusterIP: '10.96.0.11' }));
    const causes = assertStatus(moved, 422, 'Invalid').details.causes ?? [];
    assert.ok(causes.some((c) => c.field === 'spec.clusterIP' && /immutable/.test(c.message)));
  });
});

describe('cluster IPs from the API server with a service CIDR', () => {
  let store: MemoryStore;
  let server: RunningApiServer;
  const start = async (serviceCidr: string): Promise<void> => {
    server = await startApiServer({ store, serviceCidr, listen: { host: '127.0.0.1', port: 0 } });
  };
  const request = async (method: string, url: string, body?: unknown): Promise<Reply> => {
    const res = await fetch(server.url + url, {
      method,
      headers: {
        'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json',
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { code: res.status, body: (await res.json()) as Json };
  };
  const create = (spec: Record<string, unknown>, name = 'svc') =>
    request('POST', path, service(name, spec));
  const refusal = (reply: Reply) => {
    const cause = assertStatus(reply, 422, 'Invalid').details.causes?.[0];
    return `${cause?.field ?? ''}: ${cause?.message ?? ''}`;
  };

  before(async () => {
    store = new MemoryStore();
    await start('10.96.0.0/24');
  });
  after(() => server.close());

  it('allocates at creation from the upper band, and the response carries it', async () => {
    const reply = await create({}, 'first');
    assert.equal(reply.code, 201, JSON.stringify(reply.body));
    assert.equal(reply.body.spec?.clusterIP, '10.96.0.16');
    assert.deepEqual(reply.body.spec?.clusterIPs, ['10.96.0.16']);
    assert.deepEqual(reply.body.spec?.ipFamilies, ['IPv4']);
    assert.equal(reply.body.spec?.ipFamilyPolicy, 'SingleStack');
    assert.equal((await create({}, 'second')).body.spec?.clusterIP, '10.96.0.17');
    assert.equal((await create({ clusterIP: 'None' }, 'none')).body.spec?.clusterIP, 'None');
  });

  it('refuses a taken or out-of-range address with 422 on spec.clusterIP, and frees a deleted one', async () => {
    assert.equal(
      refusal(await create({ clusterIP: '10.96.0.16' })),
      'spec.clusterIP: Invalid value: "10.96.0.16": failed to allocate IP 10.96.0.16: provided IP is already allocated',
    );
    for (const outside of ['10.97.0.5', '10.96.0.0', '10.96.0.255', 'fd00::5']) {
      assert.match(
        refusal(await create({ clusterIP: outside })),
        new RegExp(
          `^spec\\.clusterIP: .*failed to allocate IP ${outside}: the provided IP \\(${outside}\\) is not in the valid range. The range of valid IPs is 10\\.96\\.0\\.0/24$`,
        ),
      );
    }
    assert.equal((await create({ clusterIP: '10.96.0.5' }, 'chosen')).code, 201);
    assert.match(refusal(await create({ clusterIP: '10.96.0.5' })), /already allocated/);
    assert.equal((await request('DELETE', `${path}/chosen`)).code, 200);
    assert.equal((await create({ clusterIP: '10.96.0.5' }, 'reused')).code, 201);
    assert.match(
      refusal(await create({ ipFamilyPolicy: 'RequireDualStack' })),
      /^spec\.ipFamilyPolicy: .*not configured for dual-stack/,
    );
    assert.match(
      refusal(await create({ ipFamilies: ['IPv6'] })),
      /^spec\.ipFamilies\[0\]: .*not configured/,
    );
  });

  it('holds an update that adds an address to the same rules, and rebuilds what is taken after a restart', async () => {
    // A Service stored without a cluster IP (made before the server had a range).
    await createObject(store, services, {
      ...service('bare'),
      metadata: { name: 'bare', namespace: 'default', uid: 'bare-uid' },
    });
    const url = `${path}/bare`;
    assert.match(
      refusal(await request('PATCH', url, { spec: { clusterIP: '10.96.0.17' } })),
      /already allocated/,
    );
    assert.equal((await request('PATCH', url, { spec: { clusterIP: '10.96.0.40' } })).code, 200);
    await server.close();
    await start('10.96.0.0/24');
    assert.match(refusal(await create({ clusterIP: '10.96.0.40' })), /already allocated/);
    assert.match(refusal(await create({ clusterIP: '10.96.0.16' })), /already allocated/);
  });

  it('gives a dual-stack Service one address per family', async () => {
    await server.close();
    store = new MemoryStore();
    await start('10.96.0.0/24,fd00:96::/120');
    const reply = await create({ ipFamilyPolicy: 'PreferDualStack' }, 'dual');
    assert.equal(reply.code, 201, JSON.stringify(reply.body));
    assert.deepEqual(reply.body.spec?.clusterIPs, ['10.96.0.16', 'fd00:96::10']);
    assert.deepEqual(reply.body.spec?.ipFamilies, ['IPv4', 'IPv6']);
    const v6 = await create({ ipFamilies: ['IPv6'] }, 'v6');
    assert.deepEqual(v6.body.spec?.clusterIPs, ['fd00:96::11']);
    assert.match(
      refusal(await create({ clusterIPs: ['10.96.0.30', 'fd00:96::10'] }, 'taken-v6')),
      /^spec\.clusterIPs\[1\]: .*already allocated/,
    );
  });
});
