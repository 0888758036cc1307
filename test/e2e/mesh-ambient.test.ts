// The ambient mesh end to end on a real two-node cluster (`strata up --nodes 2`):
// every agent runs the node proxy (src/agent/mesh.ts) with certificates from the
// controller's CA service. Namespace `mesh` is labelled
// istio.io/dataplane-mode=ambient; `plain` is not. Servers are `ncat` answering
// each connection with the address it came from ($NCAT_REMOTE_ADDR); clients are
// `ncat` in the client pod's network namespace.
//
// 1. client (node-1) → server (node-2), both enrolled: the connection works over
//    HBONE, the server sees the client pod's address, and node-2's access log
//    names the client's SPIFFE ID.
//    client → a ClusterIP of server: Service DNAT picks the endpoint first, the
//    tunnel carries it. neighbour (node-2) → server (node-2): the same over a
//    tunnel that node-2's proxy opens to itself.
// 2. outsider (`plain`, not enrolled) → server: refused under a STRICT
//    PeerAuthentication, accepted under PERMISSIVE.
// 3. An ALLOW AuthorizationPolicy for the client's principal: the client gets
//    through, `other` does not; a DENY rule with HTTP attributes fails closed and
//    the node proxy logs a warning naming the policy.
// 4. A NetworkPolicy allowing only the client into `guarded` still denies
//    `other` when both are in the mesh.
// 5. metrics on node-2's 15020 count the connections with the source principal.
// 6. Each node's proxy is a process of its own (`strata mesh-proxy`); killed, its
//    agent starts it again and meshed traffic resumes.
// 7. Un-labelling the namespace returns its pods to plain traffic: the capture
//    sets empty on both nodes, the connection works, no new access-log line.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resourceForKind } from '../../src/api/registry.js';
import type { KubeObject, ResourceType } from '../../src/api/types.js';
import { meshProxyPid } from '../../src/cluster/processes.js';
import { type Pod, podResource } from '../support/agent-cluster.js';
import { clusterSkipReason } from '../support/cluster.js';
import { LiveCluster, isRunning } from '../support/live-cluster.js';
import { uniqueName } from '../support/netns.js';

const meshNs = uniqueName('mesh');
const plainNs = uniqueName('plain');
const trustDomain = 'cluster.local';
const principal = (sa: string, ns = meshNs) => `${trustDomain}/ns/${ns}/sa/${sa}`;
const spiffe = (sa: string, ns = meshNs) => `spiffe://${principal(sa, ns)}`;

const namespaceResource = resourceForKind('v1', 'Namespace') as ResourceType;
const peerAuthResource = resourceForKind(
  'security.istio.io/v1',
  'PeerAuthentication',
) as ResourceType;
const authzResource = resourceForKind(
  'security.istio.io/v1',
  'AuthorizationPolicy',
) as ResourceType;
const netpolResource = resourceForKind('networking.k8s.io/v1', 'NetworkPolicy') as ResourceType;
const serviceResource = resourceForKind('v1', 'Service') as ResourceType;

/** An ncat server on 8080 answering with the peer's address, or a sleeping client. */
function pod(
  namespace: string,
  name: string,
  node: string,
  serviceAccount: string,
  serve: boolean,
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': node },
      serviceAccountName: serviceAccount,
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'main',
          image: 'ncat',
          command: serve
            ? ['ncat', '-lk', '8080', '--sh-exec', 'echo $NCAT_REMOTE_ADDR']
            : ['sleep', 'infinity'],
        },
      ],
    },
  };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function inNetns(netns: string, args: readonly string[], timeoutMs = 8000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', netns, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => {
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

describe('the ambient mesh on two nodes', { skip: clusterSkipReason() }, () => {
  let live: LiveCluster | undefined;
  const netns: Record<string, string> = {};
  const ip: Record<string, string> = {};
  const cluster = (): LiveCluster => {
    if (!live) throw new Error('The cluster is not up');
    return live;
  };
  const accessLog = (node: string) => join(cluster().nodeDir(node), 'mesh-access.log');
  const accessLines = (node: string): Record<string, unknown>[] => {
    const file = accessLog(node);
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  };
  /** What `to` answers `from` on 8080 (the address it saw), '' when refused or dropped. */
  const ask = async (from: string, to: string): Promise<string> => {
    const run = await inNetns(
      netns[from] ?? '',
      ['ncat', '--recv-only', '-w', '2', '-i', '3', ip[to] ?? '', '8080'],
      6000,
    );
    return run.stdout.trim();
  };
  const until = (from: string, to: string, expect: (answer: string) => boolean, what: string) =>
    cluster().waitFor(
      what,
      async () => {
        const answer = await ask(from, to);
        return expect(answer) ? answer : undefined;
      },
      15_000,
    );
  const enrolledSet = async (node: string): Promise<string> => {
    const run = await inNetns(cluster().nodeNetns(node), [
      'nft',
      'list',
      'set',
      'inet',
      'strata_mesh',
      'enrolled_v4',
    ]);
    return run.stdout;
  };
  const create = (object: KubeObject) => cluster().client.create(object);

  before(async () => {
    live = LiveCluster.create();
    await live.up(2, { dns: false });
    await create({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: meshNs, labels: { 'istio.io/dataplane-mode': 'ambient' } },
    });
    await create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: plainNs } });
    const pods = [
      pod(meshNs, 'client', 'node-1', 'client', false),
      pod(meshNs, 'other', 'node-1', 'other', false),
      pod(meshNs, 'server', 'node-2', 'server', true),
      pod(meshNs, 'guarded', 'node-2', 'guarded', true),
      pod(meshNs, 'neighbour', 'node-2', 'neighbour', false),
      pod(plainNs, 'outsider', 'node-1', 'default', false),
    ];
    for (const p of pods) await create(p);
    for (const p of pods) {
      const name = p.metadata.name ?? '';
      const running = await live.waitFor(`${name} running`, async () => {
        const got = await cluster().client.get<Pod>(podResource, name, {
          namespace: p.metadata.namespace ?? '',
        });
        return isRunning(got) && got.status?.podIP ? got : undefined;
      });
      netns[name] = live.podNetns(running);
      ip[name] = running.status?.podIP ?? '';
    }
    // Both nodes capture their enrolled pods.
    await live.waitFor('the capture sets', async () => {
      const [one, two] = await Promise.all([enrolledSet('node-1'), enrolledSet('node-2')]);
      return one.includes(ip.client ?? '?') && two.includes(ip.server ?? '?') ? true : undefined;
    });
  });

  after(async () => {
    if (live) assert.deepEqual(await live.down(), [], 'nothing of the cluster is left');
  });

  it('carries an enrolled pod to an enrolled pod on another node over HBONE', async () => {
    const before = accessLines('node-2').length;
    const seen = await until('client', 'server', (a) => a !== '', 'an answer from server');
    assert.equal(
      seen,
      ip.client,
      `the server sees the client pod address; access logs:\n${JSON.stringify([accessLines('node-1'), accessLines('node-2')], null, 1)}\n${cluster().logs(1500)}`,
    );
    const line = await cluster().waitFor('an access-log line on node-2', () =>
      accessLines('node-2')
        .slice(before)
        .find((l) => l.direction === 'inbound' && l['src.identity'] === spiffe('client')),
    );
    assert.equal(line['dst.identity'], spiffe('server'));
    assert.equal(line['src.namespace'], meshNs);
    // The source workload's address, not the node the tunnel came from.
    assert.equal(line['src.addr'], ip.client);
  });

  it('carries a connection to a Service VIP to the endpoint the kernel chose, over HBONE', async () => {
    const service = await create({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'server', namespace: meshNs },
      spec: {
        selector: { app: 'server' },
        ports: [{ protocol: 'TCP', port: 80, targetPort: 8080 }],
      },
    });
    const vip = String((service.spec as { clusterIP?: string } | undefined)?.clusterIP);
    try {
      const before = accessLines('node-1').length;
      const seen = await cluster().waitFor(
        'an answer through the ClusterIP',
        async () => {
          const run = await inNetns(
            netns.client ?? '',
            ['ncat', '--recv-only', '-w', '2', '-i', '3', vip, '80'],
            6000,
          );
          const answer = run.stdout.trim();
          return answer === '' ? undefined : answer;
        },
        15_000,
      );
      assert.equal(seen, ip.client, 'the server sees the client pod address');
      // Service DNAT ran before the capture: the tunnel names the endpoint, not the VIP.
      const line = await cluster().waitFor('an outbound line on node-1', () =>
        accessLines('node-1')
          .slice(before)
          .find((l) => l.direction === 'outbound' && l['src.identity'] === spiffe('client')),
      );
      assert.equal(line['dst.identity'], spiffe('server'));
      assert.equal(line['dst.hbone_addr'], `${ip.server}:8080`);
    } finally {
      await cluster().client.delete(serviceResource, 'server', { namespace: meshNs });
    }
  });

  it('carries two enrolled pods of the same node over HBONE', async () => {
    const before = accessLines('node-2').length;
    const seen = await until('neighbour', 'server', (a) => a !== '', 'an answer from server');
    assert.equal(seen, ip.neighbour, 'the server sees the neighbour pod address');
    // Both ends of the tunnel are node-2's proxy: one outbound and one inbound line.
    const lines = await cluster().waitFor('both access-log lines on node-2', () => {
      const fresh = accessLines('node-2')
        .slice(before)
        .filter((l) => l['src.identity'] === spiffe('neighbour'));
      const inbound = fresh.find((l) => l.direction === 'inbound');
      const outbound = fresh.find((l) => l.direction === 'outbound');
      return inbound && outbound ? { inbound, outbound } : undefined;
    });
    assert.equal(lines.inbound['dst.identity'], spiffe('server'));
    assert.equal(lines.inbound['src.addr'], ip.neighbour);
  });

  it('refuses a pod outside the mesh under STRICT and accepts it under PERMISSIVE', async () => {
    const pa = (mode: string): KubeObject => ({
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'mtls', namespace: meshNs },
      spec: { mtls: { mode } },
    });
    await create(pa('STRICT'));
    try {
      await until('outsider', 'server', (a) => a === '', 'STRICT refusing the outsider');
      assert.equal(await ask('outsider', 'server'), '', 'refused under STRICT');
      assert.equal(await ask('client', 'server'), ip.client, 'mTLS still passes under STRICT');
      await cluster().client.delete(peerAuthResource, 'mtls', { namespace: meshNs });
      await create(pa('PERMISSIVE'));
      const seen = await until('outsider', 'server', (a) => a !== '', 'PERMISSIVE accepting');
      assert.equal(seen, ip.outsider, 'the server sees the outsider address');
    } finally {
      await cluster().client.delete(peerAuthResource, 'mtls', { namespace: meshNs });
    }
  });

  it('allows one principal and denies another by AuthorizationPolicy', async () => {
    await create({
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'only-client', namespace: meshNs },
      spec: {
        selector: { matchLabels: { app: 'server' } },
        action: 'ALLOW',
        rules: [{ from: [{ source: { principals: [principal('client')] } }] }],
      },
    });
    try {
      await until('other', 'server', (a) => a === '', 'the policy denying other');
      assert.equal(await ask('client', 'server'), ip.client, 'the allowed principal passes');
      assert.equal(await ask('other', 'server'), '', 'the other principal is denied');
    } finally {
      await cluster().client.delete(authzResource, 'only-client', { namespace: meshNs });
    }
    await until('other', 'server', (a) => a === ip.other, 'other allowed again');
  });

  it('fails a DENY rule with HTTP attributes closed, and says so in the log', async () => {
    // A node proxy cannot see methods: the rule denies what its L4 part matches.
    await create({
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'no-posts-from-other', namespace: meshNs },
      spec: {
        selector: { matchLabels: { app: 'server' } },
        action: 'DENY',
        rules: [
          {
            from: [{ source: { principals: [principal('other')] } }],
            to: [{ operation: { methods: ['POST'] } }],
          },
        ],
      },
    });
    try {
      await until('other', 'server', (a) => a === '', 'the DENY rule failing closed');
      assert.equal(await ask('client', 'server'), ip.client, 'another principal still passes');
      await cluster().waitFor('the warning in the agent log', () =>
        /mesh proxy: warning: AuthorizationPolicy \S+\/no-posts-from-other .*HTTP/.test(
          cluster().logs(200_000),
        )
          ? true
          : undefined,
      );
    } finally {
      await cluster().client.delete(authzResource, 'no-posts-from-other', { namespace: meshNs });
    }
    await until('other', 'server', (a) => a === ip.other, 'other allowed again');
  });

  it('keeps a NetworkPolicy deny between two pods in the mesh', async () => {
    assert.equal(
      await until('other', 'guarded', (a) => a !== '', 'guarded open'),
      ip.other,
      'other reaches guarded before the policy',
    );
    await create({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'guard', namespace: meshNs },
      spec: {
        podSelector: { matchLabels: { app: 'guarded' } },
        policyTypes: ['Ingress'],
        // As Istio asks of NetworkPolicy in ambient mode: the HBONE port beside
        // the application's. The tunnel leaves from the client pod's address,
        // so the same `from` governs both.
        ingress: [
          {
            from: [{ podSelector: { matchLabels: { app: 'client' } } }],
            ports: [
              { protocol: 'TCP', port: 8080 },
              { protocol: 'TCP', port: 15008 },
            ],
          },
        ],
      },
    });
    try {
      await until('other', 'guarded', (a) => a === '', 'the NetworkPolicy denying other');
      assert.equal(await ask('client', 'guarded'), ip.client, 'the client is still allowed');
      assert.equal(await ask('other', 'guarded'), '', 'other is denied');
    } finally {
      await cluster().client.delete(netpolResource, 'guard', { namespace: meshNs });
    }
  });

  it('counts connections with the source principal on 15020', async () => {
    const run = await inNetns(cluster().nodeNetns('node-2'), [
      'curl',
      '-sS',
      '--max-time',
      '3',
      'http://127.0.0.1:15020/metrics',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const line = run.stdout
      .split('\n')
      .find(
        (l) =>
          l.startsWith('istio_tcp_connections_opened_total{') &&
          l.includes(`source_principal="${spiffe('client')}"`) &&
          l.includes('reporter="destination"'),
      );
    assert.ok(line, `no opened-connections counter for the client:\n${run.stdout.slice(0, 3000)}`);
    assert.ok(Number(line.split(' ').at(-1)) >= 1, line);
  });

  it('restarts a node proxy that dies; meshed traffic resumes through the new one', async () => {
    const proxyPid = (node: string) => meshProxyPid(cluster().stateDir, node);
    const first = proxyPid('node-2');
    assert.ok(first !== undefined, 'node-2 runs its mesh proxy as a process of its own');
    process.kill(first, 'SIGKILL');
    const second = await cluster().waitFor('a new mesh proxy on node-2', () => {
      const pid = proxyPid('node-2');
      return pid !== undefined && pid !== first ? pid : undefined;
    });
    assert.notEqual(second, first);
    const before = accessLines('node-2').length;
    assert.equal(
      await until('client', 'server', (a) => a !== '', 'an answer through the new proxy'),
      ip.client,
    );
    await cluster().waitFor('an access-log line from the new proxy', () =>
      accessLines('node-2')
        .slice(before)
        .find((l) => l.direction === 'inbound' && l['src.identity'] === spiffe('client')),
    );
    assert.match(cluster().logs(200_000), /mesh: the proxy exited \(signal SIGKILL\)/);
  });

  it('returns the pods of an un-labelled namespace to plain traffic', async () => {
    await cluster().client.patch(namespaceResource, meshNs, {
      metadata: { labels: { 'istio.io/dataplane-mode': null } },
    });
    await cluster().waitFor('empty capture sets', async () => {
      const [one, two] = await Promise.all([enrolledSet('node-1'), enrolledSet('node-2')]);
      return !one.includes(ip.client ?? '?') && !two.includes(ip.server ?? '?') ? true : undefined;
    });
    // Lines about server only: an earlier test's refused connection may still close now.
    const toServer = (node: string) =>
      accessLines(node).filter((l) => String(l['dst.addr']).startsWith(`${ip.server}:`));
    const before = toServer('node-2').length;
    const beforeSource = toServer('node-1').length;
    assert.equal(await ask('client', 'server'), ip.client, 'plain traffic still works');
    assert.equal(await ask('other', 'server'), ip.other);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(toServer('node-2').length, before, 'no HBONE: no access-log line on node-2');
    assert.equal(toServer('node-1').length, beforeSource, 'nor on node-1');
  });
});
