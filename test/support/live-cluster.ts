/**
 * Real clusters for the reliability tests: `strata up` as a child process
 * (the built CLI, as a user runs it) with a run-unique name and a temporary
 * state directory, a client on its API socket, and the means to crash and
 * restart one of its components the way `up` starts it: `startDetached`
 * (src/cluster/processes.ts) with the argv the crashed process ran with,
 * inside the node's namespace for an agent. `down()` removes it all, never
 * throws, and reports anything left; call it from `after`, so it runs even
 * when a test fails.
 *
 * Also a single-node agent against an API server in the test process
 * (test/support/agent-cluster.ts style), run with extra arguments and
 * environment, and killed and started again at will.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
} from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { resourceForKind } from '../../src/api/registry.js';
import type { KubeObject, ResourceType } from '../../src/api/types.js';
import { type RunningApiServer, startApiServer } from '../../src/apiserver/server.js';
import { ApiClient, isNotFound } from '../../src/client/index.js';
import { isClusterNamespace } from '../../src/cluster/config.js';
import { down } from '../../src/cluster/down.js';
import { processArgv, startDetached } from '../../src/cluster/processes.js';
import { type ClusterRecord, logFile, readRecord } from '../../src/cluster/state.js';
import { MemoryStore } from '../../src/store/memory.js';
import { type ContainerStatus, type Pod, alive, podResource } from './agent-cluster.js';
import { type CliRun, strataProcess } from './cli.js';
import { clusterNamespacesLeft } from './cluster.js';
import { type Lab, sh, uniqueName } from './netns.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository (tests run from dist/test/support). */
export const repoRoot = join(here, '..', '..', '..');
const agentEntry = join(here, 'strata-agent-test.js');

export const deploymentResource = resourceForKind('apps/v1', 'Deployment') as ResourceType;

let clusterCount = 0;

/**
 * Polls `probe` until it returns something other than undefined; past the
 * deadline, fails with `what`, the probe's last error and `context()`.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  options: { timeoutMs?: number; intervalMs?: number; context?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? ` (last error: ${last.message})` : '';
      throw new Error(`timed out waiting for ${what}${why}\n${options.context?.() ?? ''}`);
    }
    await sleep(options.intervalMs ?? 100);
  }
}

/** Whether every container of the pod runs and it has an address. */
export function isRunning(pod: Pod): boolean {
  const statuses = pod.status?.containerStatuses ?? [];
  const containers = (pod.spec?.containers as unknown[] | undefined)?.length ?? 0;
  return (
    pod.status?.phase === 'Running' &&
    pod.metadata.deletionTimestamp === undefined &&
    (pod.status.podIP ?? '') !== '' &&
    statuses.length === containers &&
    statuses.every((c) => c.state.running !== undefined)
  );
}

/** The container pids a pod's status names (`strata://<pid>`), sorted. */
export function containerPids(pod: Pod): number[] {
  return (pod.status?.containerStatuses ?? [])
    .map((c: ContainerStatus) => Number((c.containerID ?? '').replace('strata://', '')))
    .sort((a, b) => a - b);
}

/** Pids in a named network namespace, sorted numerically. */
export function namespacePids(netns: string): number[] {
  const out = spawnSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' });
  if (out.status !== 0) return [];
  return out.stdout
    .split('\n')
    .filter((line) => /^\d+$/.test(line))
    .map(Number)
    .sort((a, b) => a - b);
}

/** GET /readyz on a unix socket: true on 200. */
export function apiReady(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/readyz', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('error', () => {
      resolve(false);
    });
    req.once('timeout', () => {
      req.destroy();
    });
    req.end();
  });
}

/** Sends SIGKILL to `pid` and waits until it is gone (or a zombie). */
export async function killHard(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitFor(`process ${pid} to die`, () => (processArgv(pid) === undefined ? true : undefined));
}

/** A cluster made by `strata up --name r<pid><n> --state-dir <temporary>/state`. */
export class LiveCluster {
  readonly client: ApiClient;

  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly stateDir: string,
  ) {
    this.client = new ApiClient(join(stateDir, 'api.sock'), { timeoutMs: 10_000 });
  }

  /**
   * A new cluster object, not up yet: `up()` brings it up. Split so that a
   * test can register `down()` for cleanup before anything is made.
   */
  static create(): LiveCluster {
    clusterCount += 1;
    const name = `r${process.pid}${clusterCount}`;
    const dir = mkdtempSync(join(tmpdir(), `strata-e2e-${name}-`));
    return new LiveCluster(name, dir, join(dir, 'state'));
  }

  /** `strata args... --name --state-dir` (the flags go before a `--`). */
  run(args: readonly string[], input?: string): Promise<CliRun> {
    const end = args.includes('--') ? args.indexOf('--') : args.length;
    const flags = ['--name', this.name, '--state-dir', this.stateDir];
    return strataProcess([...args.slice(0, end), ...flags, ...args.slice(end)], {
      input,
      cwd: repoRoot,
    });
  }

  /** `strata up --nodes N`; a failure throws with what `up` said and the logs it kept aside (then removed). */
  /** `strata up`; `dns: false` leaves out the cluster DNS pods, for tests that count every pod. */
  async up(nodes = 2, options: { dns?: boolean } = {}): Promise<void> {
    const noDns = options.dns === false ? ['--no-dns'] : [];
    const up = await this.run(['up', '--nodes', String(nodes), ...noDns]);
    if (up.code === 0) return;
    let logs = '';
    for (const [, dir = ''] of up.stderr.matchAll(/the logs are kept in (\S+)/g)) {
      if (!existsSync(dir)) continue;
      for (const file of readdirSync(dir)) {
        logs += `--- ${file}\n${readFileSync(join(dir, file), 'utf8').slice(-2500)}\n`;
      }
      rmSync(dir, { recursive: true, force: true });
    }
    throw new Error(`strata up failed (${up.code}):\n${up.stdout}${up.stderr}${logs}`);
  }

  /**
   * `strata down`, then removes the temporary directory; never throws. When
   * the CLI cannot run (a build in progress rewriting dist/), the same
   * teardown runs in this process instead, so nothing is left behind.
   * Resolves to what is left all the same (for the caller to assert on):
   * the cluster's namespaces, and the containers its pods reported running.
   */
  async down(): Promise<string[]> {
    let containers: number[] = [];
    try {
      const pods = await this.client.list<Pod>(podResource);
      containers = pods.items.flatMap(containerPids).filter((pid) => pid > 0);
    } catch {
      // No API server (never up, or down already): no pods to look for.
    }
    this.client.close();
    try {
      const run = await this.run(['down']);
      if (run.code !== 0) {
        process.stderr.write(`strata down ${this.name} failed, tearing down here: ${run.stderr}`);
        await down({ name: this.name, stateDir: this.stateDir });
      }
    } catch (error) {
      process.stderr.write(`strata down ${this.name}: ${(error as Error).message}\n`);
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
    return [
      ...clusterNamespacesLeft(this.name).map((netns) => `namespace ${netns}`),
      ...containers.filter(alive).map((pid) => `container process ${pid}`),
    ];
  }

  get apiSocket(): string {
    return join(this.stateDir, 'api.sock');
  }

  record(): ClusterRecord {
    const record = readRecord(this.stateDir);
    if (!record) throw new Error(`${this.stateDir}/cluster.json is missing`);
    return record;
  }

  nodeNetns(node: string): string {
    return `strata-${this.name}-${node}`;
  }

  podNetns(pod: Pod): string {
    return `strata-${this.name}-${(pod.metadata.uid ?? '').slice(0, 12)}`;
  }

  /** The named namespaces of the cluster's pods (not its nodes, not its underlay). */
  podNamespaces(): string[] {
    return readdirSync('/run/netns').filter(
      (netns) =>
        isClusterNamespace(this.name, netns) &&
        !/-(underlay|node-\d+)$/.test(netns.slice(`strata-${this.name}`.length)),
    );
  }

  nodeDir(node: string): string {
    return join(this.stateDir, 'nodes', node);
  }

  /** strata-ipam's allocation files on a node: the addresses it holds. */
  allocations(node: string): string[] {
    const dir = join(this.nodeDir(node), 'ipam', 'strata');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((file) => /^\d+\.\d+\.\d+\.\d+$/.test(file))
      .sort();
  }

  /** The end of every component's log, for a failure message. */
  logs(chars = 2500): string {
    const dir = join(this.stateDir, 'logs');
    if (!existsSync(dir)) return '';
    return readdirSync(dir)
      .map((file) => `--- ${file}\n${readFileSync(join(dir, file), 'utf8').slice(-chars)}`)
      .join('\n');
  }

  waitFor<T>(
    what: string,
    probe: () => Promise<T | undefined> | T | undefined,
    timeoutMs = 20_000,
  ): Promise<T> {
    return waitFor(what, probe, { timeoutMs, context: () => this.logs() });
  }

  async pods(labelSelector?: Record<string, string>): Promise<Pod[]> {
    const list = await this.client.list<Pod>(podResource, { namespace: 'default', labelSelector });
    return list.items;
  }

  async getPod(name: string): Promise<Pod | undefined> {
    try {
      return await this.client.get<Pod>(podResource, name, { namespace: 'default' });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Sets the Deployment's replicas; resolves to its new metadata.generation. */
  async scale(deployment: string, replicas: number): Promise<number> {
    const patched = await this.client.patch(deploymentResource, deployment, {
      spec: { replicas },
    });
    return patched.metadata.generation ?? 0;
  }

  /** Whether the controller has acted on the Deployment's generation `generation`. */
  async observed(deployment: string, generation: number): Promise<boolean> {
    const current = await this.client.get(deploymentResource, deployment);
    return Number(current.status?.observedGeneration ?? 0) >= generation;
  }

  /**
   * Waits until the Deployment's pods are exactly `replicas`, each running
   * with an address, and none is left terminating; returns them.
   */
  waitForReplicas(app: string, replicas: number, timeoutMs?: number): Promise<Pod[]> {
    return this.waitFor(
      `${replicas} running pods of ${app}, none terminating`,
      async () => {
        const pods = await this.pods({ app });
        return pods.length === replicas && pods.every(isRunning) ? pods : undefined;
      },
      timeoutMs,
    );
  }

  /**
   * kill -9 of a component of cluster.json's `processes`; resolves, once it is
   * dead, to the argv it ran with, for `restart`.
   */
  async crash(component: string): Promise<string[]> {
    const pid = this.record().processes[component];
    if (pid === undefined) throw new Error(`cluster.json has no process ${component}`);
    const argv = processArgv(pid);
    if (!argv) throw new Error(`${component} (pid ${pid}) is not running`);
    await killHard(pid);
    return argv;
  }

  /**
   * Starts a component again as `up` does (Startup's #start in
   * src/cluster/up.ts): detached, output appended to logs/<component>.log,
   * the argv it ran with; an agent inside its node's network namespace
   * (`nsenter --net`, keeping the host's mount namespace, where the pods'
   * namespaces are published). Returns its pid; cluster.json is left as it
   * is (`down` finds unrecorded components by their argv).
   */
  restart(component: string, argv: readonly string[], netns?: string): Promise<number> {
    const [file = process.execPath, ...args] = argv;
    return startDetached({
      file: netns === undefined ? file : 'nsenter',
      args: netns === undefined ? args : [`--net=/var/run/netns/${netns}`, '--', file, ...args],
      logPath: logFile(this.stateDir, component),
      cwd: repoRoot,
    });
  }
}

/**
 * One node with an agent run with extra arguments, against an API server
 * (MemoryStore) in this process; the test gives the Node its pod CIDR as
 * the controller would. Everything goes with the lab's cleanup.
 */
export class SingleNodeAgent {
  readonly cluster = uniqueName('r');
  readonly nodeName = 'node-1';
  readonly nodeIp = '172.31.0.11';
  readonly client: ApiClient;
  agent: ChildProcess | undefined;

  private constructor(
    readonly lab: Lab,
    readonly netns: string,
    readonly stateDir: string,
    readonly podCidr: string,
    private readonly server: RunningApiServer,
  ) {
    this.client = new ApiClient(join(stateDir, 'api.sock'));
  }

  /** `agentArgs`: more `strata agent` flags; `env`: more variables for the agent (and so its plugins). */
  static async start(
    lab: Lab,
    podCidr: string,
    agentArgs: readonly string[],
    env: NodeJS.ProcessEnv = {},
  ): Promise<SingleNodeAgent> {
    const stateDir = lab.dir('strata-reliability-');
    const server = await startApiServer({
      store: new MemoryStore(),
      listen: { socketPath: join(stateDir, 'api.sock') },
    });
    const netns = lab.netns('stan');
    const node = new SingleNodeAgent(lab, netns, stateDir, podCidr, server);
    lab.onCleanup(() => {
      node.#cleanup();
    });
    // The node's underlay link, whose other end is alone in a namespace of its own.
    const underlay = lab.netns('stau');
    sh('ip', [
      '-n',
      underlay,
      'link',
      'add',
      'u1',
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      netns,
    ]);
    sh('ip', ['-n', underlay, 'link', 'set', 'u1', 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${node.nodeIp}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    node.startAgent(agentArgs, env);
    await node.waitFor('the node to register', async () => {
      try {
        return await node.client.get(resourceForKind('v1', 'Node') as ResourceType, node.nodeName);
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    });
    await node.client.patch(resourceForKind('v1', 'Node') as ResourceType, node.nodeName, {
      spec: { podCIDR: podCidr, podCIDRs: [podCidr] },
    });
    return node;
  }

  get logPath(): string {
    return join(this.stateDir, 'logs', `agent-${this.nodeName}.log`);
  }

  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Starts the agent inside the node's namespace, output appended to its log. */
  startAgent(extra: readonly string[], env: NodeJS.ProcessEnv = {}): void {
    mkdirSync(dirname(this.logPath), { recursive: true });
    const log = openSync(this.logPath, 'a');
    this.agent = spawn(
      'ip',
      [
        'netns', 'exec', this.netns, process.execPath, agentEntry,
        '--state-dir', this.stateDir,
        '--api', join(this.stateDir, 'api.sock'),
        '--node', this.nodeName,
        '--node-ip', this.nodeIp,
        '--backend', 'host-gw',
        '--cluster', this.cluster,
        ...extra,
      ],
      { stdio: ['ignore', log, log], env: { ...process.env, ...env } },
    ); // prettier-ignore
    closeSync(log);
  }

  /** SIGKILL, as a crash would; resolves once the agent is gone. */
  async killAgent(): Promise<void> {
    const agent = this.agent;
    if (!agent || agent.exitCode !== null || agent.signalCode !== null) return;
    const exited = new Promise((resolve) => agent.once('exit', resolve));
    agent.kill('SIGKILL');
    await exited;
  }

  waitFor<T>(
    what: string,
    probe: () => Promise<T | undefined> | T | undefined,
    timeoutMs = 15_000,
  ): Promise<T> {
    return waitFor(what, probe, { timeoutMs, context: () => this.log().slice(-3000) });
  }

  podNetns(pod: KubeObject): string {
    return `strata-${this.cluster}-${(pod.metadata.uid ?? '').slice(0, 12)}`;
  }

  async getPod(name: string): Promise<Pod | undefined> {
    try {
      return await this.client.get<Pod>(podResource, name, { namespace: 'default' });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  #cleanup(): void {
    // The agent first, dead before its pods go: a live one would restart what is killed.
    const pid = this.agent?.pid;
    this.agent?.kill('SIGKILL');
    for (let i = 0; i < 100 && pid !== undefined && alive(pid); i++) {
      spawnSync('sleep', ['0.02']);
    }
    const prefix = `strata-${this.cluster}-`;
    const pods = readdirSync('/run/netns').filter((netns) => netns.startsWith(prefix));
    for (const target of pods.flatMap(namespacePids)) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    for (const netns of pods) spawnSync('ip', ['netns', 'del', netns]);
    this.client.close();
    void this.server.close();
  }
}
