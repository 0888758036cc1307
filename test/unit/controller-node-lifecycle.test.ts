// The node lifecycle controller against a real API server (MemoryStore on a
// temp unix socket), with a 1 s grace period and a 100 ms monitor period. The
// tests play the agents: each Node's Ready heartbeat is posted as the agent
// posts it (its Ready condition merged into the others, every 200 ms here),
// and stopping it is a dead agent. The EndpointSlice controller runs too, to
// show what a dead node does to its pods' endpoints.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import { controllerCommand } from '../../src/controller/index.js';
import { type Condition, conditionsOf, findCondition } from '../../src/controller/object-state.js';
import { endpointSlices, nodes, pods } from '../../src/controller/resources.js';
import { writeWithRetry } from '../../src/controller/writes.js';
import {
  TestCluster,
  eventually,
  pod,
  service,
  setPodReady,
} from '../support/controller-cluster.js';

const ns = { namespace: 'default' };
const unreachable = 'node.kubernetes.io/unreachable';

/** An agent's Ready heartbeat: merged by type, as the agent's own, every `intervalMs`. */
class Heartbeat {
  /** The lastHeartbeatTime last posted. */
  last: string | undefined;
  readonly #since = new Date().toISOString();
  #timer: NodeJS.Timeout | undefined;
  #beat: Promise<void> | undefined;

  constructor(
    private readonly client: TestCluster['client'],
    private readonly nodeName: string,
    private readonly intervalMs = 200,
  ) {}

  /** Posts one heartbeat now, then keeps posting. */
  async start(): Promise<void> {
    await this.#post();
    this.#timer = setInterval(() => {
      this.#beat ??= this.#post().finally(() => {
        this.#beat = undefined;
      });
    }, this.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#beat;
  }

  async #post(): Promise<void> {
    // Millisecond timestamps: a 200 ms beat renews within the 1 s grace period.
    const now = new Date().toISOString();
    const node = await this.client.get(nodes, this.nodeName);
    await writeWithRetry(
      this.client,
      nodes,
      node,
      (current) => {
        // Replaced whole, as the agent does: a renewal changes only lastHeartbeatTime.
        const others = conditionsOf(current).filter((c) => c.type !== 'Ready');
        current.status = {
          ...current.status,
          conditions: [
            ...others,
            {
              type: 'Ready',
              status: 'True',
              reason: 'KubeletReady',
              message: 'strata agent is posting ready status',
              lastHeartbeatTime: now,
              lastTransitionTime: this.#since,
            },
          ],
        };
        return current;
      },
      'status',
    );
    this.last = now;
  }
}

function bareNode(name: string, spec: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name }, spec };
}

type Slice = KubeObject & {
  endpoints: { conditions: { ready: boolean; serving: boolean }; targetRef: { name: string } }[];
};

describe('node lifecycle', () => {
  const cluster = new TestCluster({
    controllers: ['node-lifecycle', 'endpointslice'],
    nodeMonitorGracePeriodMs: 1000,
    nodeMonitorPeriodMs: 100,
  });
  const { client } = cluster;
  const alive = new Heartbeat(client, 'alive');
  const dead = new Heartbeat(client, 'dead');
  // Someone else's condition on the dying node, which must stay as it is.
  const networkCondition: Condition = {
    type: 'NetworkUnavailable',
    status: 'False',
    reason: 'CIDRAssigned',
    message: 'Node was assigned pod CIDR 10.244.1.0/24',
    lastTransitionTime: '2024-01-01T00:00:00Z',
  };
  const dedicated = { key: 'dedicated', value: 'db', effect: 'NoSchedule' };

  /** A pod as its agent reports it: bound, Running, with an address, Ready. */
  const runPod = async (name: string, nodeName: string, ip: string): Promise<void> => {
    const created = await client.create(
      pod(name, { app: 'web' }, { nodeName, containers: [{ name: 'c', image: 'i' }] }),
    );
    await client.updateStatus({
      ...created,
      status: {
        phase: 'Running',
        podIP: ip,
        podIPs: [{ ip }],
        conditions: [
          { type: 'ContainersReady', status: 'True' },
          { type: 'Ready', status: 'True' },
        ],
      },
    });
  };
  const readyOf = async (name: string): Promise<Condition | undefined> =>
    findCondition(await client.get(pods, name, ns), 'Ready');
  /** Each endpoint of Service web as `pod ready`, sorted. */
  const endpoints = async (): Promise<string[]> =>
    (
      await client.list<Slice>(endpointSlices, {
        ...ns,
        labelSelector: { 'kubernetes.io/service-name': 'web' },
      })
    ).items
      .flatMap((s) => s.endpoints.map((e) => `${e.targetRef.name} ${String(e.conditions.ready)}`))
      .sort();
  const expectEndpoints = (wanted: string[]) =>
    eventually(
      `endpoints ${JSON.stringify(wanted)}`,
      async () => JSON.stringify(await endpoints()) === JSON.stringify(wanted),
      5000,
      async () => JSON.stringify(await endpoints()),
    );
  const taintsOf = async (name: string): Promise<unknown[]> =>
    ((await client.get(nodes, name)).spec?.taints as unknown[] | undefined) ?? [];

  before(async () => {
    await cluster.startApi();
    await client.create(bareNode('alive'));
    const created = await client.create(bareNode('dead', { taints: [dedicated] }));
    await client.updateStatus({ ...created, status: { conditions: [networkCondition] } });
    await alive.start();
    await dead.start();
    await client.create(service('web', { app: 'web' }, [{ port: 80, targetPort: 8080 }]));
    await runPod('web-dead-1', 'dead', '10.1.0.1');
    await runPod('web-dead-2', 'dead', '10.1.0.2');
    await runPod('web-alive', 'alive', '10.1.0.3');
    // Bound but not started: no Ready condition, which MarkPodsNotReady leaves alone.
    await client.create(pod('web-pending', { app: 'web' }, { nodeName: 'dead' }));
    await cluster.startController();
    await expectEndpoints(['web-alive true', 'web-dead-1 true', 'web-dead-2 true']);
  });
  after(async () => {
    await alive.stop();
    await dead.stop();
    await cluster.stop();
  });

  it('turns a Node whose heartbeat stops Unknown and tainted, and its pods not ready', async () => {
    await dead.stop();
    const lastBeat = dead.last;
    const ready = await eventually('dead to turn Unknown', async () => {
      const found = findCondition(await client.get(nodes, 'dead'), 'Ready');
      return found?.status === 'Unknown' && found;
    });
    assert.equal(ready.reason, 'NodeStatusUnknown');
    assert.equal(ready.message, 'The strata agent stopped posting node status.');
    assert.equal(
      ready.lastHeartbeatTime,
      lastBeat,
      'the last heartbeat stays as the agent left it',
    );
    assert.ok(
      Date.parse(ready.lastTransitionTime ?? '') >= Date.parse(lastBeat ?? '') - 1000,
      `lastTransitionTime ${String(ready.lastTransitionTime)} is when it turned Unknown`,
    );
    const deadNode = await client.get(nodes, 'dead');
    assert.deepEqual(findCondition(deadNode, 'NetworkUnavailable'), networkCondition);

    await eventually('the unreachable taint', async () =>
      (await taintsOf('dead')).some(
        (t) => JSON.stringify(t) === JSON.stringify({ key: unreachable, effect: 'NoSchedule' }),
      ),
    );
    assert.deepEqual(await taintsOf('dead'), [
      dedicated,
      { key: unreachable, effect: 'NoSchedule' },
    ]);

    for (const name of ['web-dead-1', 'web-dead-2']) {
      const condition = await eventually(`${name} to be not ready`, async () => {
        const found = await readyOf(name);
        return found?.status === 'False' && found;
      });
      assert.equal(condition.reason, 'NodeNotReady');
      assert.equal(condition.message, 'Node "dead" is not ready');
      const containersReady = findCondition(await client.get(pods, name, ns), 'ContainersReady');
      assert.equal(containersReady?.status, 'True', 'only Ready changes');
    }
    await expectEndpoints(['web-alive true', 'web-dead-1 false', 'web-dead-2 false']);
    assert.equal(await readyOf('web-pending'), undefined);

    // The live node, which kept posting all along, is untouched.
    const aliveNode = await client.get(nodes, 'alive');
    assert.equal(findCondition(aliveNode, 'Ready')?.status, 'True');
    assert.equal(aliveNode.spec?.taints, undefined);
    assert.equal((await readyOf('web-alive'))?.status, 'True');
  });

  it('marks a pod that turns Ready on an Unknown Node not ready too', async () => {
    await runPod('web-dead-3', 'dead', '10.1.0.4');
    await eventually(
      'web-dead-3 to be not ready',
      async () => (await readyOf('web-dead-3'))?.status === 'False',
    );
    await expectEndpoints([
      'web-alive true',
      'web-dead-1 false',
      'web-dead-2 false',
      'web-dead-3 false',
    ]);
  });

  it('removes the taint when the heartbeat resumes, and leaves the pods to the agent', async () => {
    await dead.start();
    await eventually('the unreachable taint to go', async () => {
      const taints = await taintsOf('dead');
      return JSON.stringify(taints) === JSON.stringify([dedicated]);
    });
    const deadNode = await client.get(nodes, 'dead');
    assert.equal(findCondition(deadNode, 'Ready')?.status, 'True');
    assert.deepEqual(findCondition(deadNode, 'NetworkUnavailable'), networkCondition);
    assert.equal((await readyOf('web-dead-1'))?.status, 'False', "restoring it is the agent's");
    // The agent reports its pod Ready again: it stays so.
    await setPodReady(client, await client.get(pods, 'web-dead-1', ns), true);
    await expectEndpoints([
      'web-alive true',
      'web-dead-1 true',
      'web-dead-2 false',
      'web-dead-3 false',
    ]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await readyOf('web-dead-1'))?.status, 'True');
  });

  it('turns a Node that never posted status Unknown after the grace period', async () => {
    await client.create(bareNode('silent'));
    const ready = await eventually('silent to turn Unknown', async () => {
      const found = findCondition(await client.get(nodes, 'silent'), 'Ready');
      return found?.status === 'Unknown' && found;
    });
    assert.equal(ready.reason, 'NodeStatusNeverUpdated');
    assert.equal(ready.message, 'The strata agent never posted node status.');
    await eventually('silent to be tainted', async () =>
      (await taintsOf('silent')).some((t) => (t as { key?: string }).key === unreachable),
    );
  });
});

describe('strata controller node lifecycle flags', () => {
  const run = async (argv: string[]): Promise<[number, string]> => {
    const err = new PassThrough();
    const chunks: Buffer[] = [];
    err.on('data', (chunk: Buffer) => chunks.push(chunk));
    const code = await controllerCommand(argv, new PassThrough(), err);
    return [code, Buffer.concat(chunks).toString()];
  };

  it('takes Go durations and rejects others naming the flag', async () => {
    const api = ['--api', '/nonexistent.sock', '--controllers', 'node-lifecycle'];
    assert.deepEqual(await run([...api, '--node-monitor-grace-period', '40']), [
      2,
      'strata controller: --node-monitor-grace-period "40": expected a duration like 40s or 500ms\n',
    ]);
    assert.deepEqual(await run([...api, '--node-monitor-period', '0s']), [
      2,
      'strata controller: --node-monitor-period 0ms: must be a positive duration\n',
    ]);
    const help = new PassThrough();
    const chunks: Buffer[] = [];
    help.on('data', (chunk: Buffer) => chunks.push(chunk));
    assert.equal(await controllerCommand(['--help'], help, new PassThrough()), 0);
    const usage = Buffer.concat(chunks).toString();
    assert.match(usage, /--node-monitor-grace-period DUR .*\(default 40s\)/);
    assert.match(usage, /--node-monitor-period DUR .*\(default 5s\)/);
    assert.match(usage, /node-lifecycle/);
  });
});
