// The controller against a real API server (MemoryStore on a temp unix
// socket), in-process. No agent runs: the tests (and FakeAgent) play its
// part, setting pods Running/Ready with addresses and finishing graceful
// deletions. Every wait is for a condition, with a deadline.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import { parseIp } from '../../src/netaddr/ip.js';
import { controllerCommand } from '../../src/controller/index.js';
import { type Endpoint, desiredSlices } from '../../src/controller/endpoint-slices.js';
import { findCondition } from '../../src/controller/object-state.js';
import {
  deployments,
  endpointSlices,
  nodes,
  pods,
  services,
} from '../../src/controller/resources.js';
import {
  FakeAgent,
  PodRecorder,
  TestCluster,
  deployment,
  eventually,
  node,
  pod,
  service,
  setPodReady,
} from '../support/controller-cluster.js';

const ns = { namespace: 'default' };

describe('node IPAM', () => {
  const cluster = new TestCluster({
    controllers: ['node-ipam'],
    clusterCidr: '10.244.0.0/22',
    nodeCidrMaskSize: 24,
  });
  const { client } = cluster;
  before(() => cluster.startApi());
  after(() => cluster.stop());

  const cidrOf = async (name: string): Promise<string | undefined> => {
    const found = await client.get(nodes, name);
    const cidr = found.spec?.podCIDR as string | undefined;
    if (cidr !== undefined) assert.deepEqual(found.spec?.podCIDRs, [cidr]);
    return cidr;
  };

  it('allocates distinct CIDRs, remembers them across restarts, reports a full range and reuses freed CIDRs', async () => {
    // Assigned before this controller ever ran: it must never be handed out again.
    await client.create(node('n0', { spec: { podCIDR: '10.244.0.0/24' } }));
    await cluster.startController();
    await client.create(node('n1'));
    await client.create(node('n2'));
    const first = await eventually('n1 and n2 to get CIDRs', async () => {
      const cidrs = [await cidrOf('n1'), await cidrOf('n2')];
      return cidrs.every((c) => c !== undefined) && cidrs;
    });
    assert.equal(new Set(['10.244.0.0/24', ...first]).size, 3, `not distinct: ${first.join(' ')}`);

    // A new controller process learns the assignments from the Nodes.
    await cluster.stopController();
    await client.create(node('n3'));
    await cluster.startController();
    const third = await eventually('n3 to get a CIDR', () => cidrOf('n3'));
    assert.deepEqual([await cidrOf('n0'), await cidrOf('n1'), await cidrOf('n2'), third].sort(), [
      '10.244.0.0/24',
      '10.244.1.0/24',
      '10.244.2.0/24',
      '10.244.3.0/24',
    ]);

    // Four /24s in a /22: the fifth Node is told.
    await client.create(node('n4'));
    const full = await eventually('n4 to be marked CIDRNotAvailable', async () => {
      const condition = findCondition(await client.get(nodes, 'n4'), 'NetworkUnavailable');
      return condition?.reason === 'CIDRNotAvailable' && condition;
    });
    assert.equal(full.status, 'True');
    assert.match(full.message ?? '', /cluster CIDR 10\.244\.0\.0\/22 is full \(4 of 4 \/24/);
    assert.ok(
      cluster.logs.some((l) => /Node "n4".*is full/.test(l)),
      cluster.logs.join('\n'),
    );
    assert.equal(await cidrOf('n4'), undefined);

    // Deleting n1 frees its CIDR, and the waiting Node gets it.
    await client.delete(nodes, 'n1');
    assert.equal(await eventually("n4 to get n1's CIDR", () => cidrOf('n4')), first[0]);
    const cleared = findCondition(await client.get(nodes, 'n4'), 'NetworkUnavailable');
    assert.equal(cleared?.status, 'False');
  });
});

describe('scheduler', () => {
  const cluster = new TestCluster({ controllers: ['scheduler'] });
  const { client } = cluster;
  before(async () => {
    await cluster.startApi();
    await client.create(node('busy'));
    await client.create(node('idle'));
    await client.create(node('down', { ready: false, labels: { disk: 'ssd' } }));
    await client.create(node('cordoned', { spec: { unschedulable: true } }));
    await client.create(pod('busy-1', {}, { nodeName: 'busy' }));
    await client.create(pod('busy-2', {}, { nodeName: 'busy' }));
    // A finished pod takes no room.
    const done = await client.create(pod('idle-done', {}, { nodeName: 'idle' }));
    await client.updateStatus({ ...done, status: { phase: 'Succeeded' } });
    await cluster.startController();
  });
  after(() => cluster.stop());

  const boundNode = async (name: string): Promise<string | undefined> =>
    (await client.get(pods, name, ns)).spec?.nodeName as string | undefined;

  it('binds each pod to the Ready node with the fewest pods, never to a not-Ready or cordoned one', async () => {
    // Created back to back: the scheduler must count its own bindings before the cache shows them.
    for (const name of ['p1', 'p2', 'p3']) await client.create(pod(name));
    const placed = await eventually('p1-p3 to be bound', async () => {
      const all = [await boundNode('p1'), await boundNode('p2'), await boundNode('p3')];
      return all.every((n) => n !== undefined) && all;
    });
    // idle has 0 (its pod finished), busy 2: idle, idle, then a 2-2 tie goes to the first name.
    assert.deepEqual(placed, ['idle', 'idle', 'busy']);
    const scheduled = findCondition(await client.get(pods, 'p1', ns), 'PodScheduled');
    assert.equal(scheduled?.status, 'True');
  });

  it('keeps a pod that fits nowhere Pending as Unschedulable, and binds it when a node becomes Ready', async () => {
    await client.create(pod('needs-ssd', {}, { nodeSelector: { disk: 'ssd' } }));
    const condition = await eventually('PodScheduled=False', async () => {
      const found = findCondition(await client.get(pods, 'needs-ssd', ns), 'PodScheduled');
      return found?.status === 'False' && found;
    });
    assert.equal(condition.reason, 'Unschedulable');
    assert.equal(
      condition.message,
      "0/4 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector.",
    );
    assert.equal(await boundNode('needs-ssd'), undefined);
    const down = await client.get(nodes, 'down');
    await client.updateStatus({
      ...down,
      status: { conditions: [{ type: 'Ready', status: 'True' }] },
    });
    assert.equal(await eventually('needs-ssd to be bound', () => boundNode('needs-ssd')), 'down');
  });
});

describe('deployments', () => {
  const cluster = new TestCluster({ controllers: ['scheduler', 'deployment'] });
  const { client } = cluster;
  let agent: FakeAgent;
  before(async () => {
    await cluster.startApi();
    await client.create(node('node-a'));
    await client.create(node('node-b'));
    agent = new FakeAgent(client, { readyDelayMs: 25, deleteDelayMs: 25 });
    await cluster.startController();
  });
  after(async () => {
    await agent.stop();
    await cluster.stop();
    assert.deepEqual(agent.errors, []);
  });

  const podsOf = async (app: string): Promise<KubeObject[]> =>
    (await client.list(pods, { ...ns, labelSelector: { app } })).items;
  const activePods = async (app: string): Promise<KubeObject[]> =>
    (await podsOf(app)).filter((p) => p.metadata.deletionTimestamp === undefined);
  const status = async (name: string): Promise<Record<string, unknown>> =>
    (await client.get(deployments, name, ns)).status ?? {};
  const settled = (name: string, replicas: number) =>
    eventually(`${name} to have ${replicas} available`, async () => {
      const s = await status(name);
      const active = await activePods(name);
      return (
        active.length === replicas &&
        s.availableReplicas === (replicas || undefined) &&
        s.updatedReplicas === (replicas || undefined) &&
        s.replicas === (replicas || undefined) &&
        s
      );
    });
  const scale = (name: string, replicas: number) =>
    client.patch(deployments, name, { spec: { replicas } }, ns);
  const changeImage = (name: string, image: string) =>
    client.patch(
      deployments,
      name,
      { spec: { template: { spec: { containers: [{ name: 'c', image }] } } } },
      ns,
    );

  it('creates the replicas as owned pods named and labelled by template hash, with status', async () => {
    const created = await client.create(deployment('web', 3));
    const final = await settled('web', 3);
    assert.equal(final.observedGeneration, 1);
    assert.equal(final.readyReplicas, 3);
    const conditions = final.conditions as { type: string; status: string; reason: string }[];
    assert.deepEqual(conditions.map((c) => [c.type, c.status, c.reason]).sort(), [
      ['Available', 'True', 'MinimumReplicasAvailable'],
      ['Progressing', 'True', 'NewReplicaSetAvailable'],
    ]);
    for (const p of await podsOf('web')) {
      const hash = p.metadata.labels?.['pod-template-hash'] ?? '';
      assert.match(hash, /^[bcdfghjklmnpqrstvwxz2456789]{1,10}$/);
      assert.match(
        p.metadata.name ?? '',
        new RegExp(`^web-${hash}-[bcdfghjklmnpqrstvwxz2456789]{5}$`),
      );
      assert.deepEqual(p.metadata.labels, { app: 'web', tier: 'web', 'pod-template-hash': hash });
      assert.deepEqual(p.metadata.ownerReferences, [
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          name: 'web',
          uid: created.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      assert.ok(['node-a', 'node-b'].includes(p.spec?.nodeName as string));
    }
  });

  it('scales up, and scales down deleting a not-ready pod first', async () => {
    await scale('web', 5);
    await settled('web', 5);
    // Five pods on two nodes: take one from the node with fewer, which ranks last on every
    // criterion after readiness (a doubled-up node's pods go first), so only readiness picks it.
    const active = await activePods('web');
    const onNode = (p: KubeObject) => active.filter((q) => q.spec?.nodeName === p.spec?.nodeName);
    const unready = active.reduce((a, b) => (onNode(b).length < onNode(a).length ? b : a));
    await setPodReady(client, unready, false);
    await eventually('readyReplicas 4', async () => (await status('web')).readyReplicas === 4);
    await scale('web', 4);
    await eventually('4 active pods', async () => (await activePods('web')).length === 4);
    const left = (await activePods('web')).map((p) => p.metadata.name);
    assert.ok(!left.includes(unready.metadata.name), `${unready.metadata.name} should have gone`);
    // 4 replicas may have 1 unavailable (25 %, rounded down): 2 is too many.
    const [first, second] = await activePods('web');
    assert.ok(first && second);
    await setPodReady(client, first, false);
    await setPodReady(client, second, false);
    await eventually('Available=False', async () => {
      const conditions = (await status('web')).conditions as { type: string; reason: string }[];
      return (
        conditions.find((c) => c.type === 'Available')?.reason === 'MinimumReplicasUnavailable'
      );
    });
    await scale('web', 1);
    await settled('web', 1);
  });

  for (const [strategy, surge, unavailable] of [
    // 25 % of 3: surge rounds up to 1, unavailability down to 0.
    [{}, 1, 0],
    [{ type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } }, 0, 1],
  ] as const) {
    it(`rolls out a template change within maxSurge ${surge} / maxUnavailable ${unavailable}`, async () => {
      const name = `roll-${surge}-${unavailable}`;
      await client.create(deployment(name, 3, strategy));
      await settled(name, 3);
      const recorder = new PodRecorder(client, { app: name });
      await recorder.start();
      const oldHash = recorder.latest[0]?.hash;
      await changeImage(name, 'i:2');
      await eventually('the rollout to finish', () => {
        const now = recorder.latest;
        return now.length === 3 && now.every((p) => p.hash !== oldHash && p.ready);
      });
      await recorder.stop();
      // Terminating pods are on their way out and not counted, as upstream counts them.
      const active = recorder.snapshots.map((s) => s.filter((p) => !p.terminating));
      const most = Math.max(...active.map((s) => s.length));
      const fewestReady = Math.min(...active.map((s) => s.filter((p) => p.ready).length));
      assert.equal(most, 3 + surge, 'pods at most replicas + maxSurge (and the surge was used)');
      assert.equal(fewestReady, 3 - unavailable, 'ready pods at least replicas - maxUnavailable');
      const final = await settled(name, 3);
      assert.equal(final.observedGeneration, 2);
    });
  }

  it('Recreate deletes every old pod before it creates a new one', async () => {
    await client.create(deployment('recreate', 2, { type: 'Recreate' }));
    await settled('recreate', 2);
    const recorder = new PodRecorder(client, { app: 'recreate' });
    await recorder.start();
    const oldHash = recorder.latest[0]?.hash;
    await changeImage('recreate', 'i:2');
    await eventually('the new pods to be ready', () => {
      const now = recorder.latest;
      return now.length === 2 && now.every((p) => p.hash !== oldHash && p.ready);
    });
    await recorder.stop();
    const withOld = recorder.snapshots.map((s, i) => (s.some((p) => p.hash === oldHash) ? i : -1));
    const lastOld = Math.max(...withOld);
    const firstNew = recorder.snapshots.findIndex((s) => s.some((p) => p.hash !== oldHash));
    assert.ok(lastOld < firstNew, `old pods at ${lastOld}, a new one at ${firstNew}`);
  });

  it('garbage-collects the pods of a deleted Deployment, and pods whose Deployment never was', async () => {
    const orphan = pod(
      'orphan',
      { app: 'ghost' },
      {},
      {
        ownerReferences: [
          {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            name: 'ghost',
            uid: 'no-such-uid',
            controller: true,
          },
        ],
      },
    );
    await client.create(orphan);
    await client.delete(deployments, 'web', ns);
    await eventually(
      'web and ghost pods to be gone',
      async () => (await podsOf('web')).length === 0 && (await podsOf('ghost')).length === 0,
      5000,
      async () => JSON.stringify([...(await podsOf('web')), ...(await podsOf('ghost'))]),
    );
  });
});

describe('endpoint slices', () => {
  const cluster = new TestCluster({ controllers: ['endpointslice'] });
  const { client } = cluster;
  before(async () => {
    await cluster.startApi();
    await cluster.startController();
  });
  after(() => cluster.stop());

  const httpPort = (port: number) => ({
    containers: [
      {
        name: 'c',
        image: 'i',
        ports: [
          { name: 'admin', containerPort: 9000 },
          { name: 'http', containerPort: port },
        ],
      },
    ],
  });
  /** A pod as the agent would report it: Running, with addresses and readiness. */
  const runPod = async (object: KubeObject, ips: string[], ready: boolean): Promise<void> => {
    const created = await client.create(object);
    if (ips.length === 0) return;
    await client.updateStatus({
      ...created,
      status: {
        phase: 'Running',
        podIP: ips[0],
        podIPs: ips.map((ip) => ({ ip })),
        conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
      },
    });
  };
  type Slice = KubeObject & {
    addressType: string;
    endpoints: {
      addresses: string[];
      conditions: { ready: boolean; serving: boolean; terminating: boolean };
      nodeName?: string;
      targetRef: { name: string };
    }[];
    ports: { name: string; port: number; protocol: string }[];
  };
  const slicesOf = async (name: string): Promise<Slice[]> =>
    (
      await client.list<Slice>(endpointSlices, {
        ...ns,
        labelSelector: { 'kubernetes.io/service-name': name },
      })
    ).items;
  /** Each endpoint as `pod address ready/serving/terminating :ports`, sorted. */
  const summary = async (name: string): Promise<string[]> =>
    (await slicesOf(name))
      .flatMap((s) =>
        s.endpoints.map((e) => {
          const c = e.conditions;
          const flags = `${c.ready ? 'R' : '-'}${c.serving ? 'S' : '-'}${c.terminating ? 'T' : '-'}`;
          const ports = s.ports.map((p) => `${p.name}=${p.port}`).join(',');
          return `${e.targetRef.name} ${s.addressType} ${e.addresses.join(',')} ${flags} ${ports}`;
        }),
      )
      .sort();
  const expect = (name: string, wanted: string[]) =>
    eventually(`slices of ${name} to be ${JSON.stringify(wanted)}`, async () => {
      const now = await summary(name);
      return JSON.stringify(now) === JSON.stringify(wanted) && now;
    });

  it('publishes matching pods with their readiness and targetPorts resolved per pod', async () => {
    const created = await client.create(
      service('web', { app: 'web' }, [
        { name: 'http', port: 80, targetPort: 'http' },
        { name: 'metrics', port: 9090, targetPort: 9090 },
      ]),
    );
    await runPod(
      pod('web-1', { app: 'web' }, { ...httpPort(8080), nodeName: 'node-a' }),
      ['10.1.0.1'],
      true,
    );
    await runPod(pod('web-2', { app: 'web' }, httpPort(8080)), ['10.1.0.2'], false);
    await runPod(pod('web-3', { app: 'web' }, httpPort(8081)), ['10.1.0.3'], true);
    await runPod(pod('web-4', { app: 'web' }, httpPort(8080)), [], false);
    await runPod(pod('web-5', { app: 'web' }), ['10.1.0.5'], true);
    await runPod(pod('other-1', { app: 'other' }, httpPort(8080)), ['10.1.0.9'], true);
    await expect('web', [
      'web-1 IPv4 10.1.0.1 RS- http=8080,metrics=9090',
      'web-2 IPv4 10.1.0.2 --- http=8080,metrics=9090',
      'web-3 IPv4 10.1.0.3 RS- http=8081,metrics=9090',
      'web-5 IPv4 10.1.0.5 RS- metrics=9090',
    ]);
    const slices = await slicesOf('web');
    assert.equal(slices.length, 3, 'one slice per port set');
    for (const slice of slices) {
      assert.match(slice.metadata.name ?? '', /^web-[a-z0-9]+$/);
      assert.deepEqual(slice.metadata.labels, {
        team: 'shop',
        'kubernetes.io/service-name': 'web',
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.strata.dev',
      });
      assert.deepEqual(slice.metadata.ownerReferences, [
        {
          apiVersion: 'v1',
          kind: 'Service',
          name: 'web',
          uid: created.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
    }
    const web1 = slices.flatMap((s) => s.endpoints).find((e) => e.targetRef.name === 'web-1');
    assert.equal(web1?.nodeName, 'node-a');
  });

  it('follows readiness, termination, deletion and IPv6 addresses', async () => {
    await setPodReady(client, await client.get(pods, 'web-2', ns), true);
    // web-1 is bound to a node: deleting it leaves it terminating until its node is done.
    await client.delete(pods, 'web-1', ns);
    await client.delete(pods, 'web-3', ns);
    await runPod(pod('web-6', { app: 'web' }, httpPort(8080)), ['fd00::6'], true);
    await expect('web', [
      'web-1 IPv4 10.1.0.1 -ST http=8080,metrics=9090',
      'web-2 IPv4 10.1.0.2 RS- http=8080,metrics=9090',
      'web-5 IPv4 10.1.0.5 RS- metrics=9090',
      'web-6 IPv6 fd00::6 RS- http=8080,metrics=9090',
    ]);
    await client.delete(pods, 'web-1', { ...ns, gracePeriodSeconds: 0 });
    await expect('web', [
      'web-2 IPv4 10.1.0.2 RS- http=8080,metrics=9090',
      'web-5 IPv4 10.1.0.5 RS- metrics=9090',
      'web-6 IPv6 fd00::6 RS- http=8080,metrics=9090',
    ]);
    assert.equal((await slicesOf('web')).length, 3, 'the emptied 8081 slice is deleted');
  });

  it('sets ready, serving and terminating as upstream, publishNotReadyAddresses making only ready true', () => {
    const member = (name: string, ready: boolean, terminating: boolean): KubeObject => ({
      ...pod(
        name,
        { app: 'c' },
        {},
        terminating ? { deletionTimestamp: '2030-01-01T00:00:00Z' } : {},
      ),
      status: {
        podIP: '10.1.0.1',
        conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
      },
    });
    const members = [
      member('ready', true, false),
      member('ready-terminating', true, true),
      member('unready', false, false),
      member('unready-terminating', false, true),
    ];
    const flags = (publishNotReadyAddresses: boolean): string[] =>
      desiredSlices(
        service('c', { app: 'c' }, [{ port: 80 }], { publishNotReadyAddresses }),
        members,
      )
        .flatMap((slice) => slice.endpoints as Endpoint[])
        .map(
          ({ conditions: c, targetRef }) =>
            `${targetRef.name} ${c.ready ? 'R' : '-'}${c.serving ? 'S' : '-'}${c.terminating ? 'T' : '-'}`,
        );
    assert.deepEqual(flags(false), [
      'ready RS-',
      'ready-terminating -ST',
      'unready ---',
      'unready-terminating --T',
    ]);
    assert.deepEqual(flags(true), [
      'ready RS-',
      'ready-terminating RST',
      'unready R--',
      'unready-terminating R-T',
    ]);
  });

  it('follows a selector change, and deletes the slices with the Service', async () => {
    await client.patch(services, 'web', { spec: { selector: { app: 'other' } } }, ns);
    await expect('web', ['other-1 IPv4 10.1.0.9 RS- http=8080,metrics=9090']);
    await client.delete(services, 'web', ns);
    await eventually('the slices to go', async () => (await slicesOf('web')).length === 0);
  });
});

describe('service cluster IPs', () => {
  const cluster = new TestCluster({ controllers: ['service-ip'], serviceCidr: '10.96.0.0/24' });
  const { client } = cluster;
  before(() => cluster.startApi());
  after(() => cluster.stop());

  it('allocates from the upper band, around addresses already taken', async () => {
    const port = [{ port: 80 }];
    await client.create(service('fixed', undefined, port, { clusterIP: '10.96.0.16' }));
    await cluster.startController();
    await client.create(service('dynamic', undefined, port));
    const spec = await eventually('a cluster IP', async () => {
      const found = (await client.get(services, 'dynamic', ns)).spec;
      return found?.clusterIP !== undefined && found;
    });
    // /24: the upper band starts at offset 16, which 'fixed' holds.
    assert.equal(spec.clusterIP, '10.96.0.17');
    assert.deepEqual(spec.clusterIPs, ['10.96.0.17']);
    assert.deepEqual(spec.ipFamilies, ['IPv4']);
    assert.equal(parseIp(spec.clusterIP as string)?.family, 4);
  });
});

describe('strata controller', () => {
  const run = async (argv: string[]): Promise<[number, string]> => {
    const err = new PassThrough();
    const chunks: Buffer[] = [];
    err.on('data', (chunk: Buffer) => chunks.push(chunk));
    const code = await controllerCommand(argv, new PassThrough(), err);
    return [code, Buffer.concat(chunks).toString()];
  };

  it('rejects bad flags naming the flag', async () => {
    assert.deepEqual(await run(['--cluster-cidr', '10.244.0.0/16']), [
      2,
      'strata controller: --api is required\n',
    ]);
    const [code, text] = await run([
      '--api',
      '/nonexistent.sock',
      '--cluster-cidr',
      '10.244.0.1/16',
    ]);
    assert.equal(code, 2);
    assert.match(
      text,
      /--cluster-cidr "10\.244\.0\.1\/16": .* host bits set; did you mean 10\.244\.0\.0\/16\?/,
    );
    const [maskCode, maskText] = await run([
      '--api',
      '/x',
      '--cluster-cidr',
      '10.0.0.0/8',
      '--node-cidr-mask-size',
      '30',
    ]);
    assert.equal(maskCode, 2);
    assert.match(
      maskText,
      /--node-cidr-mask-size 30: cluster CIDR 10\.0\.0\.0\/8 would hold more than 2\^16/,
    );
    const [unknownCode, unknownText] = await run(['--bogus']);
    assert.equal(unknownCode, 2);
    assert.match(unknownText, /Unknown option '--bogus'/);
  });
});
