// NodePorts from the API server (src/apiserver/node-ports.ts), as
// kube-apiserver's portallocator: NodePort Services get free node ports from
// the node port range at creation and on update, named ones are honoured if
// in range and free, else 422 on spec.ports[i].nodePort; changing to
// ClusterIP and deletion free them; what is taken is rebuilt from the store
// after a restart; a failed write leaks nothing. And the bad Services
// kube-apiserver refuses, with its field paths and messages.
import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import { parsePortRange } from '../../src/apiserver/node-ports.js';
import {
  type ApiServerOptions,
  type RunningApiServer,
  startApiServer,
} from '../../src/apiserver/server.js';
import { apiserverCommand } from '../../src/cluster/apiserver.js';
import { MemoryStore } from '../../src/store/memory.js';
import { type Json, type Reply, assertStatus } from '../support/apiserver.js';

const path = '/api/v1/namespaces/default/services';
// Node ports a test names are below 30086: the allocator picks at random from
// 30086-32767 while any is free there, so they never meet a chosen one.

type Port = Record<string, unknown>;

function nodePortService(name: string, ports: Port[] = [{ port: 80 }], spec: Port = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { type: 'NodePort', selector: { app: name }, ports, ...spec },
  };
}

function nodePortsOf(body: Json): number[] {
  const ports = (body.spec?.ports ?? []) as Port[];
  return ports.map((p) => p.nodePort as number);
}

let store: MemoryStore;
let server: RunningApiServer | undefined;

async function start(options: Partial<ApiServerOptions> = {}): Promise<void> {
  server = await startApiServer({ store, listen: { host: '127.0.0.1', port: 0 }, ...options });
}

async function stop(): Promise<void> {
  await server?.close();
  server = undefined;
}

async function request(method: string, url: string, body?: unknown): Promise<Reply> {
  const res = await fetch((server?.url ?? '') + url, {
    method,
    headers: {
      'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json',
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { code: res.status, body: (await res.json()) as Json };
}

const create = (manifest: unknown) => request('POST', path, manifest);

async function created(manifest: unknown): Promise<Json> {
  const reply = await create(manifest);
  assert.equal(reply.code, 201, JSON.stringify(reply.body));
  return reply.body;
}

/** The one cause of a 422, as `field: message`, after checking the Status names it too. */
function refusal(reply: Reply): string {
  const status = assertStatus(reply, 422, 'Invalid');
  const causes = status.details.causes ?? [];
  assert.equal(causes.length, 1, JSON.stringify(causes));
  const text = `${causes[0]?.field ?? ''}: ${causes[0]?.message ?? ''}`;
  assert.ok(status.message.endsWith(`is invalid: ${text}`), status.message);
  return text;
}

const fresh = async (options: Partial<ApiServerOptions> = {}): Promise<void> => {
  store = new MemoryStore();
  await start(options);
};

describe('node ports from the API server', () => {
  afterEach(stop);

  it('gives ports without one a free node port in the range, distinct across Services', async () => {
    await fresh();
    const seen = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const body = await created(
        nodePortService(`web-${i}`, [
          { name: 'http', port: 80 },
          { name: 'https', port: 443 },
        ]),
      );
      for (const port of nodePortsOf(body)) {
        assert.ok(port >= 30000 && port <= 32767, String(port));
        assert.ok(!seen.has(port), `${port} given twice`);
        seen.add(port);
      }
    }
    // The stored object carries them; a ClusterIP Service gets none.
    const read = await request('GET', `${path}/web-0`);
    assert.equal(nodePortsOf(read.body).length, 2);
    const plain = await created({ ...nodePortService('plain'), spec: { ports: [{ port: 80 }] } });
    assert.deepEqual(nodePortsOf(plain), [undefined]);
  });

  it('honours a free named port, refuses a taken or out-of-range one on spec.ports[i].nodePort', async () => {
    await fresh();
    const first = await created(nodePortService('first', [{ port: 80, nodePort: 30080 }]));
    assert.deepEqual(nodePortsOf(first), [30080]);
    assert.equal(
      refusal(await create(nodePortService('second', [{ port: 8080, nodePort: 30080 }]))),
      'spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated',
    );
    // Taken across protocols too: the allocator keys by number.
    assert.equal(
      refusal(
        await create(
          nodePortService('udp', [
            { name: 'a', port: 53, protocol: 'UDP', nodePort: 30053 },
            { name: 'b', port: 54, protocol: 'UDP', nodePort: 30080 },
          ]),
        ),
      ),
      'spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated',
    );
    for (const outside of [8080, 32768, 29999]) {
      assert.equal(
        refusal(await create(nodePortService('outside', [{ port: 80, nodePort: outside }]))),
        `spec.ports[0].nodePort: Invalid value: ${outside}: provided port is not in the valid range. The range of valid ports is 30000-32767`,
      );
    }
    // The refused ones leaked nothing: 30053 is free.
    await created(nodePortService('dns', [{ port: 53, nodePort: 30053 }]));
  });

  it('lets one Service use a number for TCP and UDP, and shares one between ports of the same number', async () => {
    await fresh();
    const named = await created(
      nodePortService('dns', [
        { name: 'dns-tcp', port: 53, protocol: 'TCP', nodePort: 30053 },
        { name: 'dns-udp', port: 53, protocol: 'UDP', nodePort: 30053 },
      ]),
    );
    assert.deepEqual(nodePortsOf(named), [30053, 30053]);
    const given = await created(
      nodePortService('dns2', [
        { name: 'dns-tcp', port: 53, protocol: 'TCP' },
        { name: 'dns-udp', port: 53, protocol: 'UDP' },
        { name: 'metrics', port: 9153, protocol: 'TCP' },
      ]),
    );
    const [tcp, udp, metrics] = nodePortsOf(given);
    assert.equal(tcp, udp);
    assert.notEqual(tcp, metrics);
    // A port of the same number that names its node port gives it to the other.
    const asked = await created(
      nodePortService('dns3', [
        { name: 'dns-tcp', port: 53, protocol: 'TCP' },
        { name: 'dns-udp', port: 53, protocol: 'UDP', nodePort: 30054 },
      ]),
    );
    assert.deepEqual(nodePortsOf(asked), [30054, 30054]);
    // Another Service cannot have it for the other protocol.
    assert.match(
      refusal(
        await create(nodePortService('other', [{ port: 53, protocol: 'UDP', nodePort: 30053 }])),
      ),
      /^spec\.ports\[0\]\.nodePort: .*already allocated$/,
    );
    // The same number and protocol twice in one Service is a duplicate (validation).
    assert.equal(
      refusal(
        await create(
          nodePortService('twice', [
            { name: 'a', port: 80, nodePort: 30090 },
            { name: 'b', port: 81, nodePort: 30090 },
          ]),
        ),
      ),
      'spec.ports[1].nodePort: Duplicate value: 30090',
    );
  });

  it('frees node ports on DELETE, on a namespace deletion and on a change to ClusterIP', async () => {
    await fresh();
    await created(nodePortService('gone', [{ port: 80, nodePort: 30060 }]));
    assert.equal((await request('DELETE', `${path}/gone`)).code, 200);
    await created(nodePortService('back', [{ port: 80, nodePort: 30060 }]));

    // A namespace's cascade.
    const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } };
    assert.equal((await request('POST', '/api/v1/namespaces', ns)).code, 201);
    const inTeam = await request(
      'POST',
      '/api/v1/namespaces/team/services',
      nodePortService('t', [{ port: 80, nodePort: 30061 }]),
    );
    assert.equal(inTeam.code, 201, JSON.stringify(inTeam.body));
    assert.match(
      refusal(await create(nodePortService('x', [{ port: 80, nodePort: 30061 }]))),
      /already allocated/,
    );
    assert.equal((await request('DELETE', '/api/v1/namespaces/team')).code, 200);
    for (let i = 0; i < 100; i++) {
      const left = await request('GET', '/api/v1/namespaces/team/services');
      if (left.code === 404 || (left.body.items ?? []).length === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await created(nodePortService('after-team', [{ port: 80, nodePort: 30061 }]));

    // type: ClusterIP by a merge patch: upstream clears the node ports it had.
    await created(nodePortService('switch', [{ port: 80, nodePort: 30062 }]));
    const patched = await request('PATCH', `${path}/switch`, { spec: { type: 'ClusterIP' } });
    assert.equal(patched.code, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.spec?.type, 'ClusterIP');
    assert.deepEqual(nodePortsOf(patched.body), [undefined]);
    assert.equal(patched.body.spec?.externalTrafficPolicy, undefined);
    await created(nodePortService('reuse', [{ port: 80, nodePort: 30062 }]));

    // ... and by a PUT of a ClusterIP manifest.
    await created(nodePortService('put', [{ port: 80, nodePort: 30063 }]));
    const replaced = await request('PUT', `${path}/put`, {
      ...nodePortService('put'),
      spec: { selector: { app: 'put' }, ports: [{ port: 80 }] },
    });
    assert.equal(replaced.code, 200, JSON.stringify(replaced.body));
    assert.deepEqual(nodePortsOf(replaced.body), [undefined]);
    await created(nodePortService('reuse2', [{ port: 80, nodePort: 30063 }]));

    // A ClusterIP Service that names node ports is still refused.
    const named = await request('PATCH', `${path}/put`, {
      spec: { ports: [{ port: 80, nodePort: 30064 }] },
    });
    assert.equal(
      refusal(named),
      "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
    );
  });

  it('keeps node ports on an update that leaves them out, and allocates for new ports and a change to NodePort', async () => {
    await fresh();
    const manifest = nodePortService('keep', [
      { name: 'http', port: 80 },
      { name: 'https', port: 443 },
    ]);
    const first = await created(manifest);
    const [http, https] = nodePortsOf(first);
    // What kubectl replace sends: the manifest, without what the server filled.
    const replaced = await request('PUT', `${path}/keep`, manifest);
    assert.equal(replaced.code, 200, JSON.stringify(replaced.body));
    assert.deepEqual(nodePortsOf(replaced.body), [http, https]);
    // Matched by name: a port whose number changes keeps its node port; a new one gets another.
    const changed = await request('PUT', `${path}/keep`, {
      ...manifest,
      spec: {
        ...manifest.spec,
        ports: [
          { name: 'https', port: 8443 },
          { name: 'http', port: 80 },
          { name: 'admin', port: 9000 },
        ],
      },
    });
    assert.equal(changed.code, 200, JSON.stringify(changed.body));
    const [https2, http2, admin] = nodePortsOf(changed.body);
    assert.deepEqual([https2, http2], [https, http]);
    assert.ok(admin !== undefined && admin >= 30000 && admin <= 32767 && admin !== http);
    // Dropping a port frees its node port.
    const dropped = await request('PUT', `${path}/keep`, {
      ...manifest,
      spec: { ...manifest.spec, ports: [{ name: 'http', port: 80 }] },
    });
    assert.deepEqual(nodePortsOf(dropped.body), [http]);
    await created(nodePortService('takes-https', [{ port: 80, nodePort: https }]));
    await created(nodePortService('takes-admin', [{ port: 80, nodePort: admin }]));
    // Naming a new one on update: free is honoured, taken is refused.
    assert.equal(
      refusal(
        await request('PATCH', `${path}/keep`, {
          spec: { ports: [{ port: 80, nodePort: https }] },
        }),
      ),
      `spec.ports[0].nodePort: Invalid value: ${https}: provided port is already allocated`,
    );
    const moved = await request('PATCH', `${path}/keep`, {
      spec: { ports: [{ name: 'http', port: 80, nodePort: 30070 }] },
    });
    assert.equal(moved.code, 200, JSON.stringify(moved.body));
    assert.deepEqual(nodePortsOf(moved.body), [30070]);
    await created(nodePortService('takes-old-http', [{ port: 80, nodePort: http }]));

    // ClusterIP -> NodePort allocates.
    await created({ ...nodePortService('grow'), spec: { ports: [{ port: 80 }] } });
    const grown = await request('PATCH', `${path}/grow`, { spec: { type: 'NodePort' } });
    assert.equal(grown.code, 200, JSON.stringify(grown.body));
    const [grownPort] = nodePortsOf(grown.body);
    assert.ok(grownPort !== undefined && grownPort >= 30000 && grownPort <= 32767);
    assert.match(
      refusal(await create(nodePortService('clash', [{ port: 80, nodePort: grownPort }]))),
      /already allocated/,
    );
  });

  it('rebuilds what is taken from the store after a restart', async () => {
    await fresh();
    const kept = nodePortsOf(await created(nodePortService('kept')))[0];
    await created(nodePortService('named', [{ port: 80, nodePort: 30071 }]));
    await created(nodePortService('switched', [{ port: 80, nodePort: 30072 }]));
    await request('PATCH', `${path}/switched`, { spec: { type: 'ClusterIP' } });
    await stop();
    await start();
    for (const port of [kept, 30071]) {
      assert.match(
        refusal(await create(nodePortService('again', [{ port: 80, nodePort: port }]))),
        /already allocated/,
      );
    }
    await created(nodePortService('free-again', [{ port: 80, nodePort: 30072 }]));
    // And a deletion after the restart frees what was rebuilt.
    await request('DELETE', `${path}/named`);
    await created(nodePortService('named-again', [{ port: 80, nodePort: 30071 }]));
  });

  it('uses the configured range: allocates in it, refuses outside it, 500 when it is full', async () => {
    await fresh({ serviceNodePortRange: { min: 20000, max: 20002 } });
    // 20001 is outside the default range, but in this one: validation does not refuse it.
    await created(nodePortService('named', [{ port: 80, nodePort: 20001 }]));
    assert.equal(
      refusal(await create(nodePortService('default-range', [{ port: 80, nodePort: 30080 }]))),
      'spec.ports[0].nodePort: Invalid value: 30080: provided port is not in the valid range. The range of valid ports is 20000-20002',
    );
    const [a] = nodePortsOf(await created(nodePortService('a')));
    const [b] = nodePortsOf(await created(nodePortService('b')));
    assert.deepEqual([a, b].sort(), [20000, 20002]);
    const full = await create(nodePortService('c'));
    assertStatus(full, 500, 'InternalError');
    assert.equal(
      full.body.message,
      'Internal error occurred: failed to allocate a nodePort: range is full',
    );
    await request('DELETE', `${path}/a`);
    assert.equal(nodePortsOf(await created(nodePortService('c')))[0], a);
  });

  it('leaks nothing when a create or update fails', async () => {
    await fresh({ serviceNodePortRange: { min: 31000, max: 31001 }, serviceCidr: '10.96.0.0/24' });
    await created(nodePortService('holder', [{ port: 80, nodePort: 31001 }]));
    // Port 0 would get 31000, port 1 is refused: 31000 goes back.
    assert.match(
      refusal(
        await create(
          nodePortService('half', [
            { name: 'a', port: 80 },
            { name: 'b', port: 81, nodePort: 31001 },
          ]),
        ),
      ),
      /^spec\.ports\[1\]\.nodePort: .*already allocated$/,
    );
    // A refused cluster IP holds no node port either.
    await created({
      ...nodePortService('ip'),
      spec: { ports: [{ port: 80 }], clusterIP: '10.96.0.50' },
    });
    assert.match(
      refusal(
        await create(nodePortService('ip-taken', [{ port: 80 }], { clusterIP: '10.96.0.50' })),
      ),
      /^spec\.clusterIP: .*already allocated$/,
    );
    // The write fails (AlreadyExists): what was reserved goes back.
    const again = await create(nodePortService('holder', [{ port: 80 }]));
    assertStatus(again, 409, 'AlreadyExists');
    const last = await created(nodePortService('last'));
    assert.deepEqual(nodePortsOf(last), [31000]);
    await request('DELETE', `${path}/last`);
    // An update refused on one port gives back what it took for another.
    await created({ ...nodePortService('grow'), spec: { ports: [{ port: 80 }] } });
    assert.match(
      refusal(
        await request('PUT', `${path}/grow`, {
          ...nodePortService('grow', [
            { name: 'a', port: 80 },
            { name: 'b', port: 81, nodePort: 31001 },
          ]),
        }),
      ),
      /^spec\.ports\[1\]\.nodePort: .*already allocated$/,
    );
    assert.deepEqual(nodePortsOf(await created(nodePortService('final'))), [31000]);
  });
});

describe('bad Services are refused with kube-apiserver field paths and messages', () => {
  after(stop);

  it('port, port names, cluster IP range and owner, node port owner', async () => {
    await fresh({ serviceCidr: '10.96.0.0/24' });
    const svc = (spec: Port) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'bad' },
      spec: { ports: [{ port: 80 }], ...spec },
    });
    assert.equal(
      refusal(await create(svc({ ports: [{ port: 70000, targetPort: 8080 }] }))),
      'spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive',
    );
    assert.equal(
      refusal(await create(svc({ ports: [{ port: 0, targetPort: 8080 }] }))),
      'spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive',
    );
    assert.equal(
      refusal(
        await create(
          svc({
            ports: [
              { name: 'http', port: 80 },
              { name: 'http', port: 81 },
            ],
          }),
        ),
      ),
      'spec.ports[1].name: Duplicate value: "http"',
    );
    assert.equal(
      refusal(await create(svc({ clusterIP: '10.97.0.5' }))),
      'spec.clusterIP: Invalid value: "10.97.0.5": failed to allocate IP 10.97.0.5: the provided IP (10.97.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/24',
    );
    await created({ ...svc({ clusterIP: '10.96.0.7' }), metadata: { name: 'owner' } });
    assert.equal(
      refusal(await create(svc({ clusterIP: '10.96.0.7' }))),
      'spec.clusterIP: Invalid value: "10.96.0.7": failed to allocate IP 10.96.0.7: provided IP is already allocated',
    );
    await created(nodePortService('np-owner', [{ port: 80, nodePort: 30007 }]));
    assert.equal(
      refusal(await create(svc({ type: 'NodePort', ports: [{ port: 80, nodePort: 30007 }] }))),
      'spec.ports[0].nodePort: Invalid value: 30007: provided port is already allocated',
    );
  });
});

describe('--service-node-port-range', () => {
  it('parses a-b, a+n and one port as utilnet.ParsePortRange', () => {
    assert.deepEqual(parsePortRange('30000-32767'), { min: 30000, max: 32767 });
    assert.deepEqual(parsePortRange('30000+100'), { min: 30000, max: 30100 });
    assert.deepEqual(parsePortRange('31000'), { min: 31000, max: 31000 });
    for (const bad of ['', 'abc', '30000-', '-5', '0-10', '30000-70000', '32767-30000', '1-2-3']) {
      assert.equal(typeof parsePortRange(bad), 'string', bad);
    }
  });

  it('refuses a bad value with a usage error before opening the store', async () => {
    await assert.rejects(
      apiserverCommand([
        '--state-dir',
        '/nonexistent/strata-test',
        '--service-node-port-range',
        '32767-30000',
      ]),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'STRATA_ERR_CLUSTER_OPTION');
        assert.equal(
          error.message,
          '--service-node-port-range "32767-30000" is not a port range: the last port is below the first; for example 30000-32767',
        );
        return true;
      },
    );
  });
});
