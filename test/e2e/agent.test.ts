// The node agent end to end (docs/cluster.md, "strata agent"): real agents
// inside node namespaces on an underlay, an API server in this process, pods
// run as processes in their own network namespaces through strata-cni.
// Kubernetes semantics under test: restartPolicy (Always restarts with
// back-off; OnFailure restarts failures; Never does not, and the pod ends
// Succeeded or Failed, kubelet getPhase), graceful deletion (SIGTERM, then
// CNI DEL and the DELETE with gracePeriodSeconds=0 that removes the pod),
// the downward API in env, and pod-to-pod traffic across nodes without NAT
// (Kubernetes network model: pods reach each other with their own
// addresses) with the host-gw and vxlan backends.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Pod,
  TestCluster,
  alive,
  containerStatus,
  netnsExists,
  netnsPids,
  nodeResource,
  pidOf,
  podResource,
} from '../support/agent-cluster.js';
import { Lab, inNetns, isRoot, sh } from '../support/netns.js';

const skip = isRoot() ? false : 'needs root for network namespaces';

const running = (pod: Pod): boolean =>
  pod.status?.phase === 'Running' &&
  (pod.status.containerStatuses ?? []).every((c) => c.ready && c.state.running !== undefined);

/** A server pod answering every connection with the address it came from. */
function echoSourceSpec(): Record<string, unknown> {
  return {
    containers: [
      {
        name: 'server',
        image: 'ncat',
        command: ['ncat', '-lk', '0.0.0.0', '8080', '-c', 'echo from=$NCAT_REMOTE_ADDR'],
      },
    ],
  };
}

/** A client pod that connects to $(TARGET):8080 until it gets an answer, then idles. */
function clientSpec(target: string): Record<string, unknown> {
  return {
    containers: [
      {
        name: 'client',
        image: 'ncat',
        env: [{ name: 'TARGET', value: target }],
        command: ['sh', '-c'],
        args: ['until ncat -w 2 --recv-only $(TARGET) 8080; do sleep 0.3; done; exec sleep 3600'],
      },
    ],
  };
}

/** Two pods on two nodes: the server sees the client's own pod IP. */
async function assertCrossNodeTraffic(cluster: TestCluster, tag: string): Promise<void> {
  const [node1, node2] = cluster.nodes;
  assert.ok(node1 && node2);
  await cluster.createPod(`${tag}-server`, node1, echoSourceSpec());
  const server = await cluster.waitForPod(`${tag}-server`, 'running', running);
  const serverIp = server.status?.podIP ?? '';
  assert.match(serverIp, /^10\.244\.1\./);
  await cluster.createPod(`${tag}-client`, node2, clientSpec(serverIp));
  const client = await cluster.waitForPod(`${tag}-client`, 'running', running);
  const clientIp = client.status?.podIP ?? '';
  assert.match(clientIp, /^10\.244\.2\./);
  await cluster.waitFor('the client to get an answer', () =>
    cluster.containerLog(node2, client, 'client').includes('from=') ? true : undefined,
  );
  assert.equal(cluster.containerLog(node2, client, 'client').trim(), `from=${clientIp}`);
}

describe('node agent, host-gw backend, two nodes', { skip, timeout: 90_000 }, () => {
  const lab = new Lab();
  let cluster: TestCluster;

  before(async () => {
    cluster = await TestCluster.start(lab, 'host-gw', 2);
  });
  after(() => {
    lab.cleanup();
  });

  it('registers its Node with InternalIP and Ready, and routes to the peer via its IP', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1);
    const node = await cluster.client.get(nodeResource, node1.name);
    const status = node.status as {
      addresses: { type: string; address: string }[];
      conditions: { type: string; status: string; lastHeartbeatTime: string }[];
    };
    assert.deepEqual(status.addresses[0], { type: 'InternalIP', address: node1.ip });
    assert.equal(status.conditions.find((c) => c.type === 'Ready')?.status, 'True');
    assert.equal(node.metadata.annotations?.['strata.dev/vxlan-mac'], undefined);
    await cluster.waitFor('the route to node-2', () => {
      const routes = inNetns(node1.netns, ['ip', 'route', 'show', '10.244.2.0/24']).stdout;
      return routes.includes('via 172.31.0.12 dev eth0') ? true : undefined;
    });
    const conflist = JSON.parse(
      readFileSync(
        join(cluster.stateDir, 'nodes', node1.name, 'net.d', '10-strata.conflist'),
        'utf8',
      ),
    ) as { plugins: { type: string; bridge: string; ipam: { ranges: { subnet: string }[][] } }[] };
    assert.equal(conflist.plugins[0]?.type, 'strata-cni');
    assert.equal(conflist.plugins[0]?.bridge, 'cni0');
    assert.equal(conflist.plugins[0]?.ipam.ranges[0]?.[0]?.subnet, '10.244.1.0/24');
  });

  it('runs a pod whose two containers talk over localhost, with env and status', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1);
    const workDir = lab.dir('strata-workdir-');
    await cluster.createPod('duo', node1, {
      containers: [
        {
          name: 'server',
          image: 'ncat',
          command: ['ncat', '-lk', '127.0.0.1', '8080', '-c', 'echo hello-from-server'],
        },
        {
          name: 'client',
          image: 'sh',
          workingDir: workDir,
          env: [
            { name: 'GREETING', value: 'hi' },
            { name: 'MESSAGE', value: '$(GREETING) there' },
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'POD_NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
            { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
            { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
          ],
          command: ['sh', '-c'],
          args: [
            'echo "$MESSAGE $POD_NAME $POD_NS $POD_IP $NODE $(pwd)"; until ncat --recv-only 127.0.0.1 8080; do sleep 0.2; done; exec sleep 3600',
          ],
        },
      ],
    });
    const pod = await cluster.waitForPod('duo', 'Running with both containers ready', running);
    const ip = pod.status?.podIP ?? '';
    assert.match(ip, /^10\.244\.1\.\d+$/);
    assert.deepEqual(pod.status?.podIPs, [{ ip }]);
    assert.equal(pod.status?.hostIP, node1.ip);
    assert.ok(pod.status?.startTime);
    assert.equal(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    for (const name of ['server', 'client']) {
      const c = containerStatus(pod, name);
      assert.equal(c?.restartCount, 0);
      assert.ok(alive(pidOf(c)), `${name} runs as pid ${pidOf(c)}`);
    }
    await cluster.waitFor('the client to reach the server on localhost', () =>
      cluster.containerLog(node1, pod, 'client').includes('hello-from-server') ? true : undefined,
    );
    assert.equal(
      cluster.containerLog(node1, pod, 'client').split('\n')[0],
      `hi there duo default ${ip} node-1 ${workDir}`,
    );
    // The pod's own namespace holds eth0 with its address.
    assert.match(
      inNetns(cluster.podNetns(pod), ['ip', '-4', 'addr', 'show', 'eth0']).stdout,
      new RegExp(ip),
    );
  });

  it('restarts exited containers per restartPolicy: Always and OnFailure do, Never does not', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1);
    const marker = join(lab.dir('strata-marker-'), 'ran-once');
    const once = (name: string, policy: string, script: string): Promise<Pod> =>
      cluster.createPod(name, node1, {
        restartPolicy: policy,
        containers: [{ name: 'main', image: 'sh', command: ['sh', '-c', script] }],
      });
    await once('always', 'Always', 'echo ran; exit 3');
    await once('never-ok', 'Never', 'exit 0');
    await once('never-fail', 'Never', 'exit 2');
    await once('on-failure', 'OnFailure', `test -e ${marker} && exit 0; touch ${marker}; exit 1`);
    await cluster.createPod('no-command', node1, {
      containers: [{ name: 'main', image: 'busybox' }],
    });

    const always = await cluster.waitForPod(
      'always',
      'restarted twice',
      (p) => (containerStatus(p, 'main')?.restartCount ?? 0) >= 2,
    );
    assert.equal(always.status?.phase, 'Running');
    assert.equal(containerStatus(always, 'main')?.lastState.terminated?.exitCode, 3);
    assert.ok(cluster.containerLog(node1, always, 'main').split('ran').length - 1 >= 3);

    const ok = await cluster.waitForPod(
      'never-ok',
      'Succeeded',
      (p) => p.status?.phase === 'Succeeded',
    );
    const fail = await cluster.waitForPod(
      'never-fail',
      'Failed',
      (p) => p.status?.phase === 'Failed',
    );
    const onFailure = await cluster.waitForPod(
      'on-failure',
      'Succeeded',
      (p) => p.status?.phase === 'Succeeded',
    );
    assert.deepEqual(containerStatus(ok, 'main')?.state.terminated, {
      ...containerStatus(ok, 'main')?.state.terminated,
      exitCode: 0,
      reason: 'Completed',
    });
    assert.equal(containerStatus(fail, 'main')?.state.terminated?.exitCode, 2);
    assert.equal(containerStatus(onFailure, 'main')?.restartCount, 1);
    assert.equal(containerStatus(onFailure, 'main')?.lastState.terminated?.exitCode, 1);
    const noCommand = await cluster.waitForPod(
      'no-command',
      'config error',
      (p) => containerStatus(p, 'main')?.state.waiting?.reason === 'CreateContainerConfigError',
    );
    assert.equal(noCommand.status?.phase, 'Pending');
    // Finished pods stay finished, and their network is released.
    await sleep(1500);
    for (const name of ['never-ok', 'never-fail']) {
      const pod = await cluster.getPod(name);
      assert.ok(pod);
      assert.equal(containerStatus(pod, 'main')?.restartCount, 0, name);
      assert.equal(netnsExists(cluster.podNetns(pod)), false, `${name}'s namespace is removed`);
    }
  });

  it('deletes gracefully: SIGTERM reaches the process, then the network and the pod go', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1);
    const marker = join(lab.dir('strata-term-'), 'signal');
    await cluster.createPod('graceful', node1, {
      containers: [
        {
          name: 'main',
          image: 'sh',
          command: [
            'sh',
            '-c',
            `trap 'echo got-TERM > ${marker}; exit 0' TERM; while :; do sleep 0.1; done`,
          ],
        },
      ],
    });
    const pod = await cluster.waitForPod('graceful', 'running', running);
    const ip = pod.status?.podIP ?? '';
    const netns = cluster.podNetns(pod);
    assert.ok(cluster.allocations(node1).includes(ip));
    assert.ok(netnsExists(netns));
    await cluster.client.delete(podResource, 'graceful', { namespace: 'default' });
    await cluster.waitFor('the pod object to go', async () =>
      (await cluster.getPod('graceful')) === undefined ? true : undefined,
    );
    assert.equal(readFileSync(marker, 'utf8').trim(), 'got-TERM');
    assert.equal(netnsExists(netns), false, 'the namespace is removed');
    assert.ok(!cluster.allocations(node1).includes(ip), 'the address is released');
    assert.equal(existsSync(cluster.podDir(node1, pod.metadata.uid ?? '')), false);
  });

  it('deletes a pod that ignores SIGTERM with SIGKILL once its grace period is over', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1);
    await cluster.createPod('stubborn', node1, {
      terminationGracePeriodSeconds: 2,
      containers: [
        {
          name: 'main',
          image: 'sh',
          command: ['sh', '-c', "trap '' TERM; while :; do sleep 0.1; done"],
        },
      ],
    });
    const pod = await cluster.waitForPod('stubborn', 'running', running);
    const pid = pidOf(containerStatus(pod, 'main'));
    const started = Date.now();
    await cluster.client.delete(podResource, 'stubborn', { namespace: 'default' });
    await sleep(1000);
    assert.ok(alive(pid), 'SIGTERM alone does not stop it');
    await cluster.waitFor('the pod object to go', async () =>
      (await cluster.getPod('stubborn')) === undefined ? true : undefined,
    );
    assert.ok(Date.now() - started >= 2000, 'not before the grace period');
    assert.equal(alive(pid), false);
  });

  it('tears down a pod deleted outright (gracePeriodSeconds=0) the same way', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1);
    await cluster.createPod('forced', node1, {
      containers: [{ name: 'main', image: 'sh', command: ['sleep', '3600'] }],
    });
    const pod = await cluster.waitForPod('forced', 'running', running);
    const pid = pidOf(containerStatus(pod, 'main'));
    await cluster.client.delete(podResource, 'forced', {
      namespace: 'default',
      gracePeriodSeconds: 0,
    });
    assert.equal(await cluster.getPod('forced'), undefined, 'the API server removed it at once');
    await cluster.waitFor('the pod to be torn down', () =>
      !alive(pid) && !netnsExists(cluster.podNetns(pod)) ? true : undefined,
    );
    assert.ok(!cluster.allocations(node1).includes(pod.status?.podIP ?? ''));
  });

  it('lets pods on two nodes talk with their own addresses', async () => {
    await assertCrossNodeTraffic(cluster, 'hgw');
  });

  it('probes: Ready waits for the readiness probe, a failed liveness probe restarts', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1);
    const mark = join(lab.dir('strata-live-'), 'alive');
    await cluster.createPod('probed', node1, {
      containers: [
        {
          name: 'main',
          image: 'ncat',
          env: [{ name: 'MARK', value: mark }],
          command: ['sh', '-c', 'touch $(MARK); sleep 1; exec ncat -lk 0.0.0.0 9000 -c "echo ok"'],
          ports: [{ name: 'echo', containerPort: 9000 }],
          readinessProbe: { tcpSocket: { port: 'echo' }, periodSeconds: 1 },
          livenessProbe: {
            exec: { command: ['test', '-e', mark] },
            initialDelaySeconds: 1,
            periodSeconds: 1,
            failureThreshold: 1,
          },
        },
      ],
    });
    const early = await cluster.waitForPod(
      'probed',
      'started',
      (p) => containerStatus(p, 'main')?.state.running !== undefined,
    );
    assert.equal(containerStatus(early, 'main')?.ready, false, 'not ready before the port opens');
    assert.equal(early.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
    await cluster.waitForPod('probed', 'ready', running);
    rmSync(mark);
    const restarted = await cluster.waitForPod(
      'probed',
      'restarted by liveness',
      (p) => (containerStatus(p, 'main')?.restartCount ?? 0) >= 1,
    );
    assert.equal(restarted.status?.phase, 'Running');
  });

  it('masquerades only traffic that leaves the cluster', async () => {
    const [, node2] = cluster.nodes;
    assert.ok(node2);
    sh('ip', ['-n', cluster.underlay, 'addr', 'add', '172.31.0.1/24', 'dev', 'underlay0']);
    const server = spawn(
      'ip',
      [
        'netns',
        'exec',
        cluster.underlay,
        'ncat',
        '-lk',
        '172.31.0.1',
        '8080',
        '-c',
        'echo from=$NCAT_REMOTE_ADDR',
      ],
      { stdio: 'ignore' },
    );
    lab.onCleanup(() => server.kill('SIGKILL'));
    await cluster.createPod('outbound', node2, clientSpec('172.31.0.1'));
    const pod = await cluster.waitForPod('outbound', 'running', running);
    await cluster.waitFor('an answer from outside the cluster', () =>
      cluster.containerLog(node2, pod, 'client').includes('from=') ? true : undefined,
    );
    assert.equal(cluster.containerLog(node2, pod, 'client').trim(), `from=${node2.ip}`);
  });

  it('survives kill -9: the restarted agent adopts running pods and removes deleted ones', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1);
    const steady = await cluster.waitForPod('duo', 'running', running);
    await cluster.createPod('orphan', node1, {
      containers: [{ name: 'main', image: 'sh', command: ['sleep', '3600'] }],
    });
    const orphan = await cluster.waitForPod('orphan', 'running', running);
    const pidsBefore = netnsPids(cluster.podNetns(steady));
    const orphanPid = pidOf(containerStatus(orphan, 'main'));
    assert.ok(pidsBefore.length >= 2);

    await cluster.killAgent(node1);
    assert.ok(pidsBefore.every(alive), 'the pod outlives its agent');
    // Removed from the API while no agent watches: the next agent must clean it up.
    await cluster.client.delete(podResource, 'orphan', {
      namespace: 'default',
      gracePeriodSeconds: 0,
    });
    // A container the dead agent started but had not recorded yet: the next agent must not keep it.
    const stray = spawn('ip', ['netns', 'exec', cluster.podNetns(steady), 'sleep', '3600'], {
      detached: true,
      stdio: 'ignore',
    });
    lab.onCleanup(() => stray.kill('SIGKILL'));
    await cluster.waitFor('the stray process to enter the pod', () =>
      netnsPids(cluster.podNetns(steady)).includes(stray.pid ?? -1) ? true : undefined,
    );
    const logSize = cluster.agentLog(node1).length;
    cluster.startAgent(node1);
    await cluster.waitFor('the new agent to run', () =>
      cluster.agentLog(node1).slice(logSize).includes(' running') ? true : undefined,
    );
    await cluster.waitFor('the orphan to be removed', () =>
      !alive(orphanPid) && !netnsExists(cluster.podNetns(orphan)) ? true : undefined,
    );
    assert.ok(!cluster.allocations(node1).includes(orphan.status?.podIP ?? ''));

    await cluster.waitFor('the stray process to be killed', () =>
      stray.exitCode !== null || stray.signalCode !== null ? true : undefined,
    );
    await sleep(1000);
    const after = await cluster.getPod('duo');
    assert.ok(after);
    assert.deepEqual(
      netnsPids(cluster.podNetns(steady)),
      pidsBefore,
      'the same processes, no new one',
    );
    assert.equal(after.status?.podIP, steady.status?.podIP);
    for (const name of ['server', 'client']) {
      assert.equal(pidOf(containerStatus(after, name)), pidOf(containerStatus(steady, name)));
      assert.equal(containerStatus(after, name)?.restartCount, 0);
    }
    // An adopted process cannot be waited for: its end is noticed by polling, and it restarts.
    process.kill(pidOf(containerStatus(steady, 'client')), 'SIGKILL');
    const restarted = await cluster.waitForPod('duo', 'client restarted', (p) => {
      const c = containerStatus(p, 'client');
      return c?.restartCount === 1 && c.ready;
    });
    assert.equal(
      containerStatus(restarted, 'client')?.lastState.terminated?.reason,
      'ContainerStatusUnknown',
    );
    assert.equal(
      pidOf(containerStatus(restarted, 'server')),
      pidOf(containerStatus(steady, 'server')),
    );
    // The adopted processes are the new agent's to stop.
    const serverPid = pidOf(containerStatus(restarted, 'server'));
    const clientPid = pidOf(containerStatus(restarted, 'client'));
    await cluster.client.delete(podResource, 'duo', { namespace: 'default' });
    await cluster.waitFor('duo to be deleted', async () =>
      (await cluster.getPod('duo')) === undefined ? true : undefined,
    );
    assert.ok(!alive(serverPid) && !alive(clientPid));
  });
});

describe('node agent, vxlan backend, two nodes', { skip, timeout: 60_000 }, () => {
  const lab = new Lab();
  let cluster: TestCluster;

  before(async () => {
    cluster = await TestCluster.start(lab, 'vxlan', 2);
  });
  after(() => {
    lab.cleanup();
  });

  it('advertises its VTEP and lays out Flannel-style routes, neighbours and FDB entries', async () => {
    const [node1, node2] = cluster.nodes;
    assert.ok(node1 && node2);
    const peer = await cluster.client.get(nodeResource, node2.name);
    const mac = peer.metadata.annotations?.['strata.dev/vxlan-mac'] ?? '';
    assert.match(mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    const device = JSON.parse(
      inNetns(node2.netns, ['ip', '-j', '-d', 'link', 'show', 'vxlan0']).stdout,
    ) as {
      address: string;
      linkinfo: { info_data: { id: number; port: number; local: string; learning: boolean } };
    }[];
    assert.equal(device[0]?.address, mac);
    assert.deepEqual(
      { ...device[0]?.linkinfo.info_data },
      { ...device[0]?.linkinfo.info_data, id: 1, port: 8472, local: node2.ip, learning: false },
    );
    await cluster.waitFor('node-1 to program node-2', () => {
      const route = inNetns(node1.netns, ['ip', 'route', 'show', '10.244.2.0/24']).stdout;
      const neigh = inNetns(node1.netns, ['ip', 'neigh', 'show', 'dev', 'vxlan0']).stdout;
      const fdb = inNetns(node1.netns, ['bridge', 'fdb', 'show', 'dev', 'vxlan0']).stdout;
      return route.includes('via 10.244.2.0 dev vxlan0') &&
        route.includes('onlink') &&
        neigh.includes(`10.244.2.0 lladdr ${mac} PERMANENT`) &&
        fdb.includes(`${mac} dst ${node2.ip} self permanent`)
        ? true
        : undefined;
    });
  });

  it('lets pods on two nodes talk with their own addresses', async () => {
    await assertCrossNodeTraffic(cluster, 'vx');
  });

  it('removes the routes of a node that goes', async () => {
    const [node1, node2] = cluster.nodes;
    assert.ok(node1 && node2);
    await cluster.killAgent(node2);
    await cluster.client.delete(nodeResource, node2.name);
    await cluster.waitFor('node-1 to forget node-2', () => {
      const route = inNetns(node1.netns, ['ip', 'route', 'show', '10.244.2.0/24']).stdout;
      const neigh = inNetns(node1.netns, ['ip', 'neigh', 'show', 'dev', 'vxlan0']).stdout;
      const fdb = inNetns(node1.netns, ['bridge', 'fdb', 'show', 'dev', 'vxlan0']).stdout;
      return route.trim() === '' && !neigh.includes('10.244.2.0') && !fdb.includes(node2.ip)
        ? true
        : undefined;
    });
  });
});
