// The node agent end to end (docs/cluster.md, "strata agent"): real agents
// inside node namespaces on an underlay, an API server in this process, pods
// run as processes in their own network namespaces through strata-cni.
// Kubernetes semantics under test: restartPolicy (Always restarts with
// back-off; OnFailure restarts failures; Never does not, and the pod ends
// Succeeded or Failed, kubelet getPhase), graceful deletion (SIGTERM, then
// CNI DEL and the DELETE with gracePeriodSeconds=0 that removes the pod),
// the downward API in env, and pod-to-pod traffic across nodes without NAT
// (Kubernetes network model: pods reach each other with their own
// addresses) with the host-gw and vxlan backends. And the agent's
// robustness: a probe Node cannot make, a second DELETE that shortens a
// grace period, container log rotation, a pod record that cannot be read,
// and an agent whose launcher has exited.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { netnsDir } from '../../src/agent/netns.js';
import { readProcessStat } from '../../src/agent/processes.js';
import { lastLines } from '../../src/cli/logs.js';
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
import { strata } from '../support/cli.js';
import { Lab, inNetns, isRoot, sh } from '../support/netns.js';

const skip = isRoot() ? false : 'needs root for network namespaces';

const running = (pod: Pod): boolean =>
  pod.status?.phase === 'Running' &&
  (pod.status.containerStatuses ?? []).every((c) => c.ready && c.state.running !== undefined);

/** A pod of one container that sleeps (and stops on SIGTERM). */
const sleeper = { containers: [{ name: 'main', image: 'sh', command: ['sleep', '3600'] }] };

/** A file's text, '' when it is not there. */
function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

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

/** Log rotation small and quick enough to watch: 2 KiB × 3 files, looked at every 100 ms. */
const logLimit = 2048;
const rotationArgs = [
  '--container-log-max-size', '2Ki',
  '--container-log-max-files', '3',
  '--container-log-monitor-interval', '100ms',
]; // prettier-ignore

describe('node agent, host-gw backend, two nodes', { skip, timeout: 150_000 }, () => {
  const lab = new Lab();
  let cluster: TestCluster;

  before(async () => {
    cluster = await TestCluster.start(lab, 'host-gw', 2, { agentArgs: rotationArgs });
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
  it('keeps running when a probe cannot even be made (an httpGet path with a space)', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1);
    // Past the API server's validation: the agent must survive whatever reaches it.
    await cluster.createPodUnchecked('bad-probe', node1, {
      containers: [
        {
          name: 'main',
          image: 'sh',
          command: ['sleep', '3600'],
          readinessProbe: { httpGet: { path: '/a b', port: 8080 }, periodSeconds: 1 },
        },
      ],
    });
    await cluster.waitFor('the probe failure in the agent log', () =>
      cluster
        .agentLog(node1)
        .includes('container main: readiness probe failed: the probe cannot be run')
        ? true
        : undefined,
    );
    await sleep(2500);
    assert.ok(cluster.agentRunning(node1), 'the agent survives probe after probe');
    await cluster.createPod('after-bad-probe', node1, sleeper);
    await cluster.waitForPod('after-bad-probe', 'running', running);
    for (const name of ['bad-probe', 'after-bad-probe']) {
      await cluster.client.delete(podResource, name, {
        namespace: 'default',
        gracePeriodSeconds: 0,
      });
    }
  });

  it('shortens a stop under way: a second DELETE with 0 kills at once, a shorter one sooner', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1);
    const stubborn = {
      terminationGracePeriodSeconds: 60,
      containers: [
        {
          name: 'main',
          image: 'sh',
          command: ['sh', '-c', "trap '' TERM; while :; do sleep 0.1; done"],
        },
      ],
    };
    await cluster.createPod('slow-forced', node1, stubborn);
    await cluster.createPod('slow-shortened', node1, stubborn);
    const forced = await cluster.waitForPod('slow-forced', 'running', running);
    const shortened = await cluster.waitForPod('slow-shortened', 'running', running);
    const forcedPid = pidOf(containerStatus(forced, 'main'));
    const shortenedPid = pidOf(containerStatus(shortened, 'main'));
    for (const name of ['slow-forced', 'slow-shortened']) {
      await cluster.client.delete(podResource, name, { namespace: 'default' });
    }
    await cluster.waitFor('both to be stopping', () =>
      cluster.agentLog(node1).split('stopping (grace period 60s)').length >= 3 ? true : undefined,
    );
    await sleep(500);
    assert.ok(alive(forcedPid) && alive(shortenedPid), 'SIGTERM alone does not stop them');
    const started = Date.now();
    await cluster.client.delete(podResource, 'slow-forced', {
      namespace: 'default',
      gracePeriodSeconds: 0,
    });
    assert.equal(await cluster.getPod('slow-forced'), undefined);
    await cluster.client.delete(podResource, 'slow-shortened', {
      namespace: 'default',
      gracePeriodSeconds: 3,
    });
    await cluster.waitFor(
      'the forced pod to be torn down',
      () => (!alive(forcedPid) && !netnsExists(cluster.podNetns(forced)) ? true : undefined),
      5000,
    );
    assert.ok(alive(shortenedPid), 'the other keeps its 3 s');
    await cluster.waitFor(
      'the shortened pod to go',
      async () => ((await cluster.getPod('slow-shortened')) === undefined ? true : undefined),
      10_000,
    );
    assert.ok(Date.now() - started >= 2500, 'not before its shorter grace period');
    assert.equal(alive(shortenedPid), false);
  });

  it('rotates container logs at the cap; strata logs reads the tail and follows rotations', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1);
    const pad = 'x'.repeat(50);
    await cluster.createPod('chatty', node1, {
      containers: [
        {
          name: 'main',
          image: 'sh',
          command: ['sh', '-c'],
          args: [
            `sleep 1; i=0; while [ $i -lt 300 ]; do echo "line $i ${pad}"; i=$((i+1)); sleep 0.01; done; echo end; exec sleep 3600`,
          ],
        },
      ],
    });
    const pod = await cluster.waitForPod('chatty', 'running', running);
    const path = join(cluster.podDir(node1, pod.metadata.uid ?? ''), 'main.log');
    const target = ['--state-dir', cluster.stateDir];
    const following = strata(['logs', '-f', 'chatty', ...target]);
    const files = [path, `${path}.1`, `${path}.2`];
    await cluster.waitFor(
      'the output to end',
      () => (files.some((file) => readText(file).includes('end\n')) ? true : undefined),
      30_000,
    );
    await sleep(500);
    for (const file of files) {
      assert.ok(existsSync(file), `${file} exists`);
      assert.ok(statSync(file).size <= 4 * logLimit, `${file} stays near the cap`);
    }
    assert.equal(existsSync(`${path}.3`), false, 'three files at most');
    assert.doesNotMatch(readText(`${path}.2`), /^line 0 /m, 'the oldest output is dropped');
    const current = readText(path);
    assert.equal((await strata(['logs', 'chatty', ...target])).stdout, current);
    const tail = await strata(['logs', 'chatty', '--tail', '2', ...target]);
    assert.equal(tail.stdout, lastLines(current, 2));
    await cluster.client.delete(podResource, 'chatty', {
      namespace: 'default',
      gracePeriodSeconds: 0,
    });
    const followed = (await following).stdout;
    const numbers = followed
      .split('\n')
      .filter((line) => line.startsWith('line '))
      .map((line) => Number(line.split(' ')[1]));
    assert.equal(numbers[0], 0, 'from the start');
    assert.ok(
      numbers.every((n, i) => i === 0 || n > (numbers[i - 1] ?? 0)),
      'nothing twice, nothing out of order',
    );
    // Copytruncate may lose what is written in the instant between the copy and the truncation.
    assert.ok(numbers.length >= 295, `followed ${numbers.length} of 300 lines across rotations`);
    assert.ok(followed.endsWith('end\n'));
  });

  it('cleans up after pods whose records cannot be read, deleted or not', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1);
    await cluster.createPod('torn-gone', node1, sleeper);
    await cluster.createPod('torn-kept', node1, sleeper);
    const gone = await cluster.waitForPod('torn-gone', 'running', running);
    const kept = await cluster.waitForPod('torn-kept', 'running', running);
    const gonePid = pidOf(containerStatus(gone, 'main'));
    const keptPid = pidOf(containerStatus(kept, 'main'));
    await cluster.killAgent(node1);
    for (const pod of [gone, kept]) {
      writeFileSync(join(cluster.podDir(node1, pod.metadata.uid ?? ''), 'pod.json'), '{"uid": "to');
    }
    await cluster.client.delete(podResource, 'torn-gone', {
      namespace: 'default',
      gracePeriodSeconds: 0,
    });
    const logSize = cluster.agentLog(node1).length;
    cluster.startAgent(node1);
    await cluster.waitFor('the new agent to run', () =>
      cluster.agentLog(node1).slice(logSize).includes(' running') ? true : undefined,
    );
    await cluster.waitFor('the deleted pod to be removed', () =>
      !alive(gonePid) && !netnsExists(cluster.podNetns(gone)) ? true : undefined,
    );
    assert.equal(existsSync(cluster.podDir(node1, gone.metadata.uid ?? '')), false);
    assert.ok(!cluster.allocations(node1).includes(gone.status?.podIP ?? ''));
    // The pod still bound runs again, and what no record accounts for is gone.
    const again = await cluster.waitForPod(
      'torn-kept',
      'running a new process',
      (p) => running(p) && pidOf(containerStatus(p, 'main')) !== keptPid,
    );
    await cluster.waitFor('the unaccounted process to be killed', () =>
      alive(keptPid) ? undefined : true,
    );
    assert.deepEqual(netnsPids(cluster.podNetns(kept)), [pidOf(containerStatus(again, 'main'))]);
  });
});

describe('node agent whose launcher exits at once', { skip, timeout: 60_000 }, () => {
  const lab = new Lab();
  let cluster: TestCluster;

  before(async () => {
    cluster = await TestCluster.start(lab, 'host-gw', 1, { launcher: 'exits' });
  });
  after(() => {
    lab.cleanup();
  });

  it('publishes pod namespaces where every process sees them', async () => {
    const [node1] = cluster.nodes;
    assert.ok(node1?.agentPid);
    const agentPid = node1.agentPid;
    assert.notEqual(readProcessStat(agentPid)?.ppid, process.pid, "not the test's child");
    // `ip netns exec` gave it a mount namespace of its own.
    assert.notEqual(readlinkSync(`/proc/${agentPid}/ns/mnt`), readlinkSync('/proc/self/ns/mnt'));
    await cluster.createPod('visible', node1, sleeper);
    const pod = await cluster.waitForPod('visible', 'running', running);
    const netns = cluster.podNetns(pod);
    // Listed, and mounted in this process's view (`ip netns list` also lists an empty file).
    const listed = (): string[] =>
      sh('ip', ['netns', 'list'])
        .split('\n')
        .map((line) => line.split(' ')[0] ?? '');
    const mounted = (): boolean =>
      readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${netnsDir}/${netns} `);
    assert.ok(listed().includes(netns), `${netns} is in ip netns list`);
    assert.ok(mounted(), `${netns} is mounted where the test runs`);
    assert.match(
      inNetns(netns, ['ip', '-4', 'addr', 'show', 'eth0']).stdout,
      new RegExp(pod.status?.podIP ?? 'no address'),
    );
    await cluster.client.delete(podResource, 'visible', { namespace: 'default' });
    await cluster.waitFor('the pod to go', async () =>
      (await cluster.getPod('visible')) === undefined ? true : undefined,
    );
    assert.ok(!listed().includes(netns) && !mounted(), 'and is removed from it');
    assert.ok(cluster.agentRunning(node1));
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
