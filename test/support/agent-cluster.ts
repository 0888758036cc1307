/**
 * A small strata cluster for the agent's end-to-end tests: an API server
 * (MemoryStore) on a unix socket in the test process, an underlay namespace
 * with bridge `underlay0`, and per node a namespace with `eth0` on it and an
 * agent process running inside it (`ip netns exec`). The test plays the
 * controller: it gives each registered Node its pod CIDR. Everything it
 * makes — agents, pod namespaces and their processes — is removed by the
 * Lab's cleanup, even when a test fails.
 *
 * An agent is the test's child (`ip netns exec`), or, with the launcher
 * `exits`, started by a shell that exits at once, as a launcher that does
 * not wait for its agents would: the agent is then nobody's child here.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { resourceForKind } from '../../src/api/registry.js';
import type { KubeObject, ResourceType } from '../../src/api/types.js';
import { netnsDir } from '../../src/agent/netns.js';
import { type RunningApiServer, startApiServer } from '../../src/apiserver/server.js';
import { createObject } from '../../src/apiserver/storage.js';
import { ApiClient, isNotFound } from '../../src/client/index.js';
import { MemoryStore } from '../../src/store/memory.js';
import { type Lab, sh, uniqueName } from './netns.js';

const here = dirname(fileURLToPath(import.meta.url));
const agentEntry = join(here, 'strata-agent-test.js');

export const podResource = resourceForKind('v1', 'Pod') as ResourceType;
export const nodeResource = resourceForKind('v1', 'Node') as ResourceType;

export interface TestNode {
  name: string;
  netns: string;
  ip: string;
  podCidr: string;
  agent?: ChildProcess;
  /** The agent's pid, when the launcher exited (it is not the test's child then). */
  agentPid?: number;
}

export interface TestClusterOptions {
  /** More `strata agent` flags for every agent. */
  agentArgs?: readonly string[];
  /** `child`: the agent is the test's child; `exits`: its launcher exits at once. */
  launcher?: 'child' | 'exits';
}

export type Pod = KubeObject & {
  status?: {
    phase?: string;
    podIP?: string;
    podIPs?: { ip: string }[];
    hostIP?: string;
    startTime?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: ContainerStatus[];
  };
};

export interface ContainerStatus {
  name: string;
  ready: boolean;
  restartCount: number;
  containerID?: string;
  state: {
    running?: { startedAt: string };
    waiting?: { reason: string; message?: string };
    terminated?: { exitCode: number; reason: string };
  };
  lastState: { terminated?: { exitCode: number; reason: string } };
}

export class TestCluster {
  readonly name = uniqueName('t');
  readonly nodes: TestNode[] = [];
  readonly client: ApiClient;
  #underlay = '';

  private constructor(
    private readonly lab: Lab,
    readonly stateDir: string,
    readonly socket: string,
    private readonly server: RunningApiServer,
    private readonly store: MemoryStore,
    readonly backend: 'host-gw' | 'vxlan',
    private readonly options: TestClusterOptions,
  ) {
    this.client = new ApiClient(socket);
  }

  /** An API server, the underlay, `nodeCount` nodes with running agents and pod CIDRs. */
  static async start(
    lab: Lab,
    backend: 'host-gw' | 'vxlan',
    nodeCount: number,
    options: TestClusterOptions = {},
  ): Promise<TestCluster> {
    const stateDir = lab.dir('strata-agent-test-');
    const socket = join(stateDir, 'api.sock');
    const store = new MemoryStore();
    const server = await startApiServer({ store, listen: { socketPath: socket } });
    const cluster = new TestCluster(lab, stateDir, socket, server, store, backend, options);
    lab.onCleanup(() => {
      cluster.#cleanup();
    });
    cluster.#makeUnderlay(nodeCount);
    for (const node of cluster.nodes) cluster.startAgent(node);
    await Promise.all(cluster.nodes.map((node) => cluster.#assignPodCidr(node)));
    return cluster;
  }

  #makeUnderlay(nodeCount: number): void {
    this.#underlay = this.lab.netns('stau');
    sh('ip', ['-n', this.#underlay, 'link', 'add', 'underlay0', 'type', 'bridge']);
    sh('ip', ['-n', this.#underlay, 'link', 'set', 'underlay0', 'up']);
    for (let i = 1; i <= nodeCount; i++) {
      const netns = this.lab.netns('stan');
      const ip = `172.31.0.${10 + i}`;
      sh('ip', [
        '-n',
        this.#underlay,
        'link',
        'add',
        `u${i}`,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        netns,
      ]);
      sh('ip', ['-n', this.#underlay, 'link', 'set', `u${i}`, 'master', 'underlay0', 'up']);
      sh('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
      this.nodes.push({ name: `node-${i}`, netns, ip, podCidr: `10.244.${i}.0/24` });
    }
  }

  /** The namespace of the underlay bridge (172.31.0.0/24, no address of its own). */
  get underlay(): string {
    return this.#underlay;
  }

  logPath(node: TestNode): string {
    return join(this.stateDir, 'logs', `agent-${node.name}.log`);
  }

  /** Starts the node's agent inside its namespace, output appended to logs/agent-<node>.log. */
  startAgent(node: TestNode): void {
    mkdirSync(join(this.stateDir, 'logs'), { recursive: true });
    const log = openSync(this.logPath(node), 'a');
    const command = [
      'ip', 'netns', 'exec', node.netns, process.execPath, agentEntry,
      '--state-dir', this.stateDir,
      '--api', this.socket,
      '--node', node.name,
      '--node-ip', node.ip,
      '--backend', this.backend,
      '--cluster', this.name,
      ...(this.options.agentArgs ?? []),
    ]; // prettier-ignore
    try {
      if (this.options.launcher === 'exits') {
        // The shell starts the agent in the background, prints its pid and exits.
        const launched = spawnSync(
          'sh',
          ['-c', '"$@" 1>&2 </dev/null & echo $!', 'sh', ...command],
          {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', log],
          },
        );
        node.agentPid = Number(launched.stdout.trim());
        node.agent = undefined;
      } else {
        const [file = 'ip', ...args] = command;
        node.agent = spawn(file, args, { stdio: ['ignore', log, log] });
        node.agentPid = node.agent.pid;
      }
    } finally {
      closeSync(log);
    }
  }

  /** Whether the node's agent process still runs. */
  agentRunning(node: TestNode): boolean {
    return node.agentPid !== undefined && alive(node.agentPid);
  }

  /** SIGKILL, as a crash would. */
  async killAgent(node: TestNode): Promise<void> {
    const agent = node.agent;
    if (agent) {
      if (agent.exitCode !== null || agent.signalCode !== null) return;
      const exited = new Promise((resolve) => agent.once('exit', resolve));
      agent.kill('SIGKILL');
      await exited;
      return;
    }
    const pid = node.agentPid;
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    while (alive(pid)) await sleep(20);
  }

  agentLog(node: TestNode): string {
    try {
      return readFileSync(this.logPath(node), 'utf8');
    } catch {
      return '';
    }
  }

  /** The controller's part: a pod CIDR for the node once it has registered. */
  async #assignPodCidr(node: TestNode): Promise<void> {
    await this.waitFor(`node ${node.name} to register`, async () => {
      try {
        return await this.client.get(nodeResource, node.name);
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    });
    await this.client.patch(nodeResource, node.name, {
      spec: { podCIDR: node.podCidr, podCIDRs: [node.podCidr] },
    });
  }

  /** Polls `probe` until it returns something other than undefined. */
  async waitFor<T>(
    what: string,
    probe: () => Promise<T | undefined> | T | undefined,
    timeoutMs = 15_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: Error | undefined;
    for (;;) {
      try {
        const value = await probe();
        if (value !== undefined) return value;
      } catch (error) {
        last = error instanceof Error ? error : new Error(JSON.stringify(error));
      }
      if (Date.now() > deadline) {
        const logs = this.nodes.map((n) => `--- ${n.name}\n${this.agentLog(n).slice(-3000)}`);
        throw new Error(
          `timed out waiting for ${what}${last ? ` (last error: ${last.message})` : ''}\n${logs.join('\n')}`,
        );
      }
      await sleep(100);
    }
  }

  /**
   * A pod written straight to the store, past the API server's validation:
   * what a manifest the validation lets through (or an older server let
   * in) looks like to the agent.
   */
  async createPodUnchecked(
    name: string,
    node: TestNode,
    spec: Record<string, unknown>,
  ): Promise<Pod> {
    return createObject(this.store, podResource, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: 'default',
        uid: randomUUID(),
        creationTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      },
      spec: { nodeName: node.name, terminationGracePeriodSeconds: 5, ...spec },
      status: { phase: 'Pending' },
    });
  }

  async createPod(name: string, node: TestNode, spec: Record<string, unknown>): Promise<Pod> {
    return this.client.create<Pod>({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default' },
      spec: { nodeName: node.name, terminationGracePeriodSeconds: 5, ...spec },
    });
  }

  async getPod(name: string): Promise<Pod | undefined> {
    try {
      return await this.client.get<Pod>(podResource, name, { namespace: 'default' });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Waits until the pod's status satisfies `check`. */
  waitForPod(
    name: string,
    what: string,
    check: (pod: Pod) => boolean,
    timeoutMs?: number,
  ): Promise<Pod> {
    return this.waitFor(
      `pod ${name}: ${what}`,
      async () => {
        const pod = await this.getPod(name);
        return pod && check(pod) ? pod : undefined;
      },
      timeoutMs,
    );
  }

  podDir(node: TestNode, uid: string): string {
    return join(this.stateDir, 'nodes', node.name, 'pods', uid);
  }

  containerLog(node: TestNode, pod: Pod, container: string): string {
    try {
      return readFileSync(
        join(this.podDir(node, pod.metadata.uid ?? ''), `${container}.log`),
        'utf8',
      );
    } catch {
      return '';
    }
  }

  /** The pod's network namespace name, as docs/cluster.md names it. */
  podNetns(pod: Pod): string {
    return `strata-${this.name}-${(pod.metadata.uid ?? '').slice(0, 12)}`;
  }

  /** strata-ipam's allocation files on the node. */
  allocations(node: TestNode): string[] {
    const dir = join(this.stateDir, 'nodes', node.name, 'ipam', 'strata');
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
  }

  #cleanup(): void {
    // STRATA_TEST_AGENT_LOGS=<dir> keeps the agents' logs for a look after the run.
    const keep = process.env.STRATA_TEST_AGENT_LOGS;
    if (keep) {
      mkdirSync(keep, { recursive: true });
      for (const node of this.nodes) {
        writeFileSync(join(keep, `${this.name}-${node.name}.log`), this.agentLog(node));
      }
    }
    // Agents first, and dead before their pods go: a live agent would restart what is killed.
    for (const node of this.nodes) {
      try {
        if (node.agentPid !== undefined) process.kill(node.agentPid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    for (let i = 0; i < 100 && this.nodes.some((n) => this.agentRunning(n)); i++) {
      spawnSync('sleep', ['0.02']);
    }
    const prefix = `strata-${this.name}-`;
    const podNamespaces = readdirSync(netnsDir).filter((n) => n.startsWith(prefix));
    // Twice, by process group too: a shell loop may fork between the listing and the kill.
    for (let pass = 0; pass < 2; pass++) {
      for (const pid of podNamespaces.flatMap(netnsPids)) {
        for (const target of [-pid, pid]) {
          try {
            process.kill(target, 'SIGKILL');
          } catch {
            // Not a group leader, or gone already.
          }
        }
      }
      spawnSync('sleep', ['0.05']);
    }
    for (const ns of podNamespaces) spawnSync('ip', ['netns', 'del', ns]);
    this.client.close();
    void this.server.close();
  }
}

/** The pid a container status names (`strata://<pid>`). */
export function pidOf(status: ContainerStatus | undefined): number {
  return Number((status?.containerID ?? '').replace('strata://', ''));
}

export function containerStatus(pod: Pod, name: string): ContainerStatus | undefined {
  return pod.status?.containerStatuses?.find((c) => c.name === name);
}

/** Whether a pid is alive (not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** Pids in a named network namespace. */
export function netnsPids(netns: string): number[] {
  const out = spawnSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' });
  return out.status === 0 ? out.stdout.split('\n').filter(Boolean).map(Number).sort() : [];
}

export function netnsExists(netns: string): boolean {
  return existsSync(join(netnsDir, netns));
}
