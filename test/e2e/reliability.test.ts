// Reliability end to end, as root, against real clusters (`strata up --nodes 2`):
// crashes (kill -9) of the API server and of a node agent in the middle of work,
// Deployments scaled up and down through the CLI with pods serving across nodes, and
// the agent running pods through the reference CNI plugins instead of strata's own.
// Every cluster has a run-unique name and a temporary state directory, and goes with
// `strata down` even when its test fails.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { resourceForKind } from '../../src/api/registry.js';
import type { KubeObject, ResourceType } from '../../src/api/types.js';
import { isClusterProcess } from '../../src/cluster/processes.js';
import { netnsExists, podResource } from '../support/agent-cluster.js';
import { clusterSkipReason } from '../support/cluster.js';
import {
  LiveCluster,
  SingleNodeAgent,
  apiReady,
  containerPids,
  deploymentResource,
  isRunning,
  namespacePids,
  waitFor,
} from '../support/live-cluster.js';
import { Lab, inNetns, isRoot } from '../support/netns.js';
import { referenceDir } from '../support/plugin.js';

const skipCluster = clusterSkipReason();
const policyResource = resourceForKind('networking.k8s.io/v1', 'NetworkPolicy') as ResourceType;

/** A Deployment of `app` whose pods run `containers` (each a command), 2 s to stop. */
function deployment(app: string, replicas: number, containers: string[][]): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: app, namespace: 'default' },
    spec: {
      replicas,
      selector: { matchLabels: { app } },
      template: {
        metadata: { labels: { app } },
        spec: {
          terminationGracePeriodSeconds: 2,
          containers: containers.map((command, i) => ({
            name: `c${i}`,
            image: 'sh',
            command,
          })),
        },
      },
    },
  };
}

/** A pod bound to `node` running `sleep`. */
function pinnedPod(name: string, node: string, containers = 1): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 2,
      containers: Array.from({ length: containers }, (_, i) => ({
        name: `c${i}`,
        image: 'sh',
        command: ['sleep', '3600'],
      })),
    },
  };
}

const sleeper = ['sleep', '3600'];

function podCidrOf(cluster: LiveCluster, node: string): Promise<string> {
  return cluster.client
    .get(resourceForKind('v1', 'Node') as ResourceType, node)
    .then((n) => String(n.spec?.podCIDR));
}

function inCidr24(ip: string, cidr: string): boolean {
  return ip.split('.').slice(0, 3).join('.') === cidr.split('.').slice(0, 3).join('.');
}

describe('kill -9 of the API server while a Deployment scales', { skip: skipCluster }, () => {
  let cluster: LiveCluster | undefined;
  after(async () => {
    if (cluster) assert.deepEqual(await cluster.down(), [], 'nothing of the cluster is left');
  });

  it('keeps every acknowledged write; the controller and the agents resume their watches', async () => {
    cluster = LiveCluster.create();
    const c = cluster;
    await c.up();
    const { client } = c;
    await client.create(deployment('web', 1, [sleeper]));
    await c.waitForReplicas('web', 1);
    // Unconditional writes to one object at once: each is applied, none is refused.
    const notes = ['a', 'b', 'c', 'd', 'e'];
    const noted = await Promise.allSettled(
      notes.map((note) =>
        client.patch(deploymentResource, 'web', { metadata: { annotations: { [note]: 'y' } } }),
      ),
    );
    assert.deepEqual(
      noted.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : [])),
      [],
      'concurrent patches of one object are all applied',
    );

    // Writers: NetworkPolicies created four at a time, and the Deployment scaled 2..6 and
    // back, each paced by the controller having seen the previous scale. A write counts
    // as acknowledged only when its 2xx arrived.
    const acked: string[] = [];
    let scalesAcked = 0;
    let lastReplicas = 1;
    let sentReplicas: number | undefined;
    let stopped = false;
    /** Why each writer stopped: after the crash, a failed connection. */
    const ended: string[] = [];
    const create = async (writer: number): Promise<void> => {
      for (let i = 0; !stopped; i++) {
        const name = `acked-${writer}-${i}`;
        try {
          await client.create({
            apiVersion: 'networking.k8s.io/v1',
            kind: 'NetworkPolicy',
            metadata: { name, namespace: 'default' },
            spec: { podSelector: {} },
          });
        } catch (error) {
          ended.push(`create ${name}: ${(error as Error).message}`);
          return;
        }
        acked.push(name);
      }
    };
    const scale = async (): Promise<void> => {
      for (let i = 0; !stopped; i++) {
        sentReplicas = 2 + (i % 5);
        let generation: number;
        try {
          const patched = await client.patch(deploymentResource, 'web', {
            spec: { replicas: sentReplicas },
          });
          generation = patched.metadata.generation ?? 0;
        } catch (error) {
          ended.push(`scale to ${sentReplicas}: ${(error as Error).message}`);
          return;
        }
        lastReplicas = sentReplicas;
        sentReplicas = undefined;
        scalesAcked++;
        try {
          await waitFor('the controller to see the scale', async () => {
            if (stopped) return true;
            const seen = await client.get(deploymentResource, 'web');
            const observed = Number(seen.status?.observedGeneration ?? 0);
            return observed >= generation ? true : undefined;
          });
        } catch (error) {
          ended.push((error as Error).message);
          return;
        }
      }
    };
    const writers = [create(0), create(1), create(2), create(3), scale()];
    await c.waitFor('writes under way', () =>
      ended.length > 0 || (acked.length >= 40 && scalesAcked >= 3) ? true : undefined,
    );
    assert.deepEqual(ended, [], 'no writer stopped before the crash');
    const argv = await c.crash('apiserver');
    stopped = true;
    await Promise.all(writers);
    assert.equal(await apiReady(c.apiSocket), false, 'the API server is down');

    const pid = await c.restart('apiserver', argv);
    await c.waitFor('the restarted API server to be ready', () =>
      apiReady(c.apiSocket).then((ready) => (ready ? true : undefined)),
    );
    await c.waitFor('the restarted process to run', () =>
      isClusterProcess(pid, c.stateDir) ? true : undefined,
    );

    const stored = new Set(
      (await client.list(policyResource, { namespace: 'default' })).items.map(
        (p) => p.metadata.name,
      ),
    );
    assert.deepEqual(
      acked.filter((name) => !stored.has(name)),
      [],
      `every one of the ${acked.length} acknowledged creates is stored`,
    );
    const web = await client.get(deploymentResource, 'web');
    assert.deepEqual(
      notes.filter((note) => web.metadata.annotations?.[note] !== 'y'),
      [],
      'every acknowledged patch is stored',
    );
    const replicas = Number(web.spec?.replicas);
    assert.ok(
      replicas === lastReplicas || replicas === sentReplicas,
      `replicas ${replicas}: the last acknowledged scale (${lastReplicas}) or the one in flight (${String(sentReplicas)})`,
    );

    // The controller and the agents are the processes that ran before the crash.
    const { processes } = c.record();
    for (const component of ['controller', 'agent-node-1', 'agent-node-2']) {
      const running = processes[component];
      assert.ok(running !== undefined && isClusterProcess(running, c.stateDir), component);
    }
    // Their watches resumed: a scale never seen before makes pods, and the agents run them.
    await c.scale('web', 7);
    const pods = await c.waitForReplicas('web', 7, 30_000);
    await client.create(pinnedPod('after-1', 'node-1'));
    await client.create(pinnedPod('after-2', 'node-2'));
    const after1 = await c.waitFor('after-1 to run', async () => {
      const pod = await c.getPod('after-1');
      return pod && isRunning(pod) ? pod : undefined;
    });
    const after2 = await c.waitFor('after-2 to run', async () => {
      const pod = await c.getPod('after-2');
      return pod && isRunning(pod) ? pod : undefined;
    });
    assert.ok(inCidr24(after1.status?.podIP ?? '', await podCidrOf(c, 'node-1')));
    assert.ok(inCidr24(after2.status?.podIP ?? '', await podCidrOf(c, 'node-2')));
    const ips = [...pods, after1, after2].map((p) => p.status?.podIP);
    assert.equal(new Set(ips).size, ips.length, `pod IPs are unique: ${ips.join(' ')}`);
  });
});

describe('kill -9 of a node agent while pods start and stop', { skip: skipCluster }, () => {
  let cluster: LiveCluster | undefined;
  after(async () => {
    if (cluster) assert.deepEqual(await cluster.down(), [], 'nothing of the cluster is left');
  });

  it('the restarted agent leaves no duplicate process, namespace or address, and keeps running pods as they were', async () => {
    cluster = LiveCluster.create();
    const c = cluster;
    // Every pod, namespace and address of the nodes is counted: no cluster DNS pods.
    await c.up(2, { dns: false });
    const { client } = c;
    const netns1 = c.nodeNetns('node-1');
    // Two containers per pod: "one process per container" counts something.
    await client.create(deployment('churn', 2, [sleeper, ['sh', '-c', 'exec sleep 3600']]));
    await client.create(pinnedPod('steady', 'node-1', 2));
    await c.waitForReplicas('churn', 2);
    await c.waitFor('steady to run', async () => {
      const pod = await c.getPod('steady');
      return pod && isRunning(pod) ? pod : undefined;
    });
    const before = new Set((await c.pods({ app: 'churn' })).map((p) => p.metadata.uid));

    // Up to 10, and as soon as node-1 is given one of the new pods, down to 3; as soon as
    // the controller has deleted the pods too many (node-1 stopping some while it still
    // starts others), kill node-1's agent.
    const quickly = { intervalMs: 10, context: () => c.logs() };
    await c.scale('churn', 10);
    await waitFor(
      'a new pod bound to node-1',
      async () =>
        (await c.pods({ app: 'churn' })).some(
          (p) => p.spec?.nodeName === 'node-1' && !before.has(p.metadata.uid),
        )
          ? true
          : undefined,
      quickly,
    );
    const down = await c.scale('churn', 3);
    await waitFor(
      'the controller to scale down',
      async () => ((await c.observed('churn', down)) ? true : undefined),
      quickly,
    );
    const argv = await c.crash('agent-node-1');
    const atCrash = (await c.pods()).filter((p) => p.spec?.nodeName === 'node-1' && isRunning(p));
    assert.ok(atCrash.some((p) => p.metadata.name === 'steady'));

    // While it is down: more pods bound to node-1, then fewer.
    await c.scale('churn', 6);
    await c.scale('churn', 4);
    const pid = await c.restart('agent-node-1', argv, netns1);
    await c.waitFor('the restarted process to run', () =>
      isClusterProcess(pid, c.stateDir) ? true : undefined,
    );

    const churn = await c.waitForReplicas('churn', 4, 30_000);
    const all = await c.waitFor('no pod left terminating', async () => {
      const pods = await c.pods();
      return pods.every(isRunning) ? pods : undefined;
    });
    assert.equal(all.length, churn.length + 1);
    const onNode1 = all.filter((p) => p.spec?.nodeName === 'node-1');

    // Exactly one process per container in every pod of node-1: the pids the status names.
    for (const pod of onNode1) {
      const containers = (pod.spec?.containers as unknown[]).length;
      const pids = namespacePids(c.podNetns(pod));
      assert.equal(pids.length, containers, `${pod.metadata.name}: ${pids.join(' ')}`);
      assert.deepEqual(pids, containerPids(pod), `${pod.metadata.name}'s processes`);
    }
    // No pod namespace without a pod (either node), none missing.
    const expected = all.map((p) => c.podNetns(p)).sort();
    assert.deepEqual(c.podNamespaces().sort(), expected);
    // node-1's addresses, records and cached CNI results: those of its pods, exactly.
    const ips = onNode1.map((p) => p.status?.podIP ?? '').sort();
    assert.deepEqual(c.allocations('node-1'), ips, 'strata-ipam holds only running pods');
    const uids = onNode1.map((p) => p.metadata.uid ?? '').sort();
    const nodeDir = c.nodeDir('node-1');
    assert.deepEqual(readdirSync(join(nodeDir, 'pods')).sort(), uids, 'pod records');
    assert.deepEqual(
      readdirSync(join(nodeDir, 'cni-cache', 'results')).sort(),
      uids.map((uid) => `strata-${uid}-eth0`).sort(),
      'cached CNI results',
    );
    // Pods that ran before the crash and are still wanted kept their address and processes.
    const kept = atCrash.filter((p) => onNode1.some((q) => q.metadata.uid === p.metadata.uid));
    assert.ok(kept.length >= 1);
    for (const pod of kept) {
      const now = onNode1.find((q) => q.metadata.uid === pod.metadata.uid);
      assert.equal(now?.status?.podIP, pod.status?.podIP, `${pod.metadata.name}'s IP`);
      assert.deepEqual(
        containerPids(now ?? pod),
        containerPids(pod),
        `${pod.metadata.name}'s pids`,
      );
      assert.ok((now?.status?.containerStatuses ?? []).every((c) => c.restartCount === 0));
    }
  });
});

/** The strata-cni processes running CNI_COMMAND `command` for container `id`, and their state letter. */
function pluginProcesses(command: string, id: string): { pid: number; state: string }[] {
  const found: { pid: number; state: string }[] = [];
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const argv0 = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')[0] ?? '';
      if (!argv0.endsWith('/strata-cni')) continue;
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (!env.includes(`CNI_COMMAND=${command}`) || !env.includes(`CNI_CONTAINERID=${id}`)) {
        continue;
      }
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      found.push({
        pid: Number(entry),
        state: stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3),
      });
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

describe(
  "kill -9 of a node agent in the middle of a pod's CNI ADD",
  { skip: isRoot() ? false : 'needs root' },
  () => {
    const lab = new Lab();
    after(() => {
      lab.cleanup();
    });

    it('the restarted agent runs the pod, with one address', async () => {
      const podCidr = '10.244.8.0/24';
      // strata-cni stops itself once its ADD is done, before it answers (checkpoints.ts).
      const node = await SingleNodeAgent.start(lab, podCidr, [], {
        STRATA_CNI_TEST_HOOKS: '1',
        STRATA_CNI_FAULT: 'pause:done',
      });
      const pod = await node.client.create(pinnedPod('interrupted', node.nodeName));
      const uid = pod.metadata.uid ?? '';
      const [plugin] = await node.waitFor('the ADD to pause', () => {
        const paused = pluginProcesses('ADD', uid).filter((p) => p.state === 'T');
        return paused.length > 0 ? paused : undefined;
      });
      assert.ok(plugin);
      // The agent dies; the plugin it ran finishes its ADD, with nobody to answer.
      await node.killAgent();
      process.kill(plugin.pid, 'SIGCONT');
      await node.waitFor('the plugin to exit', () =>
        pluginProcesses('ADD', uid).length === 0 ? true : undefined,
      );
      const allocated = readdirSync(join(node.stateDir, 'nodes', node.nodeName, 'ipam', 'strata'));
      assert.equal(allocated.filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).length, 1);

      node.startAgent([]);
      const running = await node.waitFor('the pod to run', async () => {
        const p = await node.getPod('interrupted');
        return p && isRunning(p) ? p : undefined;
      });
      const ip = running.status?.podIP ?? '';
      const ipam = readdirSync(join(node.stateDir, 'nodes', node.nodeName, 'ipam', 'strata'));
      assert.deepEqual(
        ipam.filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)),
        [ip],
        'the pod holds one address, the one it reports',
      );
      assert.deepEqual(namespacePids(node.podNetns(running)), containerPids(running));
      assert.match(
        inNetns(node.podNetns(running), ['ip', '-4', '-o', 'addr', 'show', 'eth0']).stdout,
        new RegExp(` ${ip.replaceAll('.', '\\.')}/24 `),
      );
    });
  },
);

describe('Deployment scaled through the CLI', { skip: skipCluster }, () => {
  let cluster: LiveCluster | undefined;
  after(async () => {
    if (cluster) assert.deepEqual(await cluster.down(), [], 'nothing of the cluster is left');
  });

  const manifest = (replicas: number): string => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: ${replicas}
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: server
        image: ncat
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        command: [ncat, -lk, 0.0.0.0, '8080', -c, 'echo "$POD_NAME from=$NCAT_REMOTE_ADDR"']
`;

  /** Connects from `netns` to ip:8080 until the server answers; its answer. */
  function ask(c: LiveCluster, netns: string, ip: string): Promise<string> {
    return c.waitFor(`an answer from ${ip}:8080 in ${netns}`, () => {
      const out = inNetns(netns, ['ncat', '-w', '2', '--recv-only', ip, '8080'], {
        timeoutMs: 5000,
      });
      return out.status === 0 && out.stdout.trim() !== '' ? out.stdout.trim() : undefined;
    });
  }

  it('apply replicas 4 then 1: the pods follow, and serve TCP across nodes by pod IP', async () => {
    cluster = LiveCluster.create();
    const c = cluster;
    await c.up();
    const file = join(c.dir, 'echo.yaml');
    writeFileSync(file, manifest(4));
    const apply = await c.run(['apply', '-f', file]);
    assert.equal(apply.code, 0, apply.stderr);
    assert.equal(apply.stdout, 'deployment.apps/echo created\n');
    const four = await c.waitForReplicas('echo', 4);
    const nodes = new Set(four.map((p) => p.spec?.nodeName));
    assert.deepEqual([...nodes].sort(), ['node-1', 'node-2'], 'pods on both nodes');
    const get = await c.run(['get', 'pods', '-l', 'app=echo']);
    assert.equal(get.stdout.match(/ Running /g)?.length, 4, get.stdout);

    // Every pod answers a client in a pod of the other node, which it sees by its own IP.
    for (const pod of four) {
      const client = four.find((p) => p.spec?.nodeName !== pod.spec?.nodeName);
      assert.ok(client);
      const answer = await ask(c, c.podNetns(client), pod.status?.podIP ?? '');
      assert.equal(answer, `${pod.metadata.name} from=${client.status?.podIP ?? ''}`);
    }

    writeFileSync(file, manifest(1));
    const scaled = await c.run(['apply', '-f', file]);
    assert.equal(scaled.code, 0, scaled.stderr);
    assert.equal(scaled.stdout, 'deployment.apps/echo configured\n');
    const [last] = await c.waitForReplicas('echo', 1);
    assert.ok(last);
    assert.ok(
      four.some((p) => p.metadata.uid === last.metadata.uid),
      'one of the four is kept',
    );
    for (const pod of four.filter((p) => p.metadata.uid !== last.metadata.uid)) {
      assert.equal(netnsExists(c.podNetns(pod)), false, `${pod.metadata.name}'s namespace`);
    }
    const other = last.spec?.nodeName === 'node-1' ? 'node-2' : 'node-1';
    const answer = await ask(c, c.nodeNetns(other), last.status?.podIP ?? '');
    assert.match(answer, new RegExp(`^${last.metadata.name ?? ''} from=`));
  });
});

describe(
  'node agent with the reference bridge and host-local plugins',
  { skip: isRoot() ? false : 'needs root' },
  () => {
    const lab = new Lab();
    after(() => {
      lab.cleanup();
    });

    it('runs a pod on the conflist of --cni-conf-dir: an address from host-local, reachable over bridge', async () => {
      const confDir = lab.dir('strata-net-d-');
      const dataDir = lab.dir('strata-host-local-');
      const podCidr = '10.244.7.0/24';
      writeFileSync(
        join(confDir, '10-reference.conflist'),
        JSON.stringify({
          cniVersion: '1.0.0',
          name: 'reference',
          plugins: [
            {
              type: 'bridge',
              bridge: 'cni0',
              isGateway: true,
              isDefaultGateway: true,
              ipMasq: false,
              ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: podCidr }]] },
            },
          ],
        }),
      );
      const node = await SingleNodeAgent.start(lab, podCidr, [
        '--cni-conf-dir',
        confDir,
        '--cni-bin-dir',
        referenceDir,
      ]);
      await node.client.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'ref', namespace: 'default' },
        spec: {
          nodeName: node.nodeName,
          terminationGracePeriodSeconds: 2,
          containers: [
            {
              name: 'server',
              image: 'ncat',
              command: ['ncat', '-lk', '0.0.0.0', '8080', '-c', 'echo ref-ok'],
            },
          ],
        },
      });
      const pod = await node.waitFor('the pod to run', async () => {
        const p = await node.getPod('ref');
        return p && isRunning(p) ? p : undefined;
      });
      const ip = pod.status?.podIP ?? '';
      assert.ok(inCidr24(ip, podCidr), ip);
      // host-local's record of it: <dataDir>/<network>/<ip> holding the pod's uid.
      const allocation = readFileSync(join(dataDir, 'reference', ip), 'utf8');
      assert.equal(allocation.split(/\r?\n/)[0], pod.metadata.uid);
      assert.ok(
        !readdirSync(join(node.stateDir, 'nodes', node.nodeName)).includes('net.d'),
        'the agent wrote no conflist of its own',
      );
      // The reference bridge wired it: the node reaches it on cni0.
      const answer = await node.waitFor('the pod to answer', () => {
        const out = inNetns(node.netns, ['ncat', '-w', '2', '--recv-only', ip, '8080']);
        return out.stdout.includes('ref-ok') ? out.stdout.trim() : undefined;
      });
      assert.equal(answer, 'ref-ok');

      await node.client.delete(podResource, 'ref', { namespace: 'default' });
      await node.waitFor('the pod to go', async () =>
        (await node.getPod('ref')) === undefined ? true : undefined,
      );
      assert.equal(netnsExists(node.podNetns(pod)), false, 'its namespace is removed');
      assert.deepEqual(
        readdirSync(join(dataDir, 'reference')).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)),
        [],
        'host-local released the address',
      );
    });
  },
);
