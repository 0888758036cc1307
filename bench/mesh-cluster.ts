/**
 * The cluster and workloads of bench:mesh (mesh.ts): `strata up --nodes 2` under a
 * temporary directory, the client and server pods, the child processes the bench
 * starts, and the mesh proxies' CPU and RSS read from /proc.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { resourceForKind } from '../src/api/registry.js';
import type { KubeObject, ResourceType } from '../src/api/types.js';
import { ApiClient } from '../src/client/index.js';
import { meshProxyPid } from '../src/cluster/processes.js';

const here = dirname(fileURLToPath(import.meta.url));
const strataBin = join(here, '..', 'bin', 'strata');
const serverScript = join(here, 'mesh-server.js');

export const httpPort = 8080;
export const iperfPort = 5201;

export const nodes = ['node-1', 'node-2'] as const;
export type NodeName = (typeof nodes)[number];

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export const children = new Set<ChildProcess>();

export function run(file: string, args: readonly string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', (error) => {
      children.delete(child);
      reject(error);
    });
    child.once('close', (code) => {
      children.delete(child);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
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
      throw new Error(`timed out waiting for ${what}${why}`);
    }
    await sleep(200);
  }
}

/** The cluster of this run: `strata up --nodes 2 --no-dns` under a temporary directory. */
export class BenchCluster {
  readonly name = `mb${process.pid}`;
  readonly dir = mkdtempSync(join(tmpdir(), 'strata-bench-mesh-'));
  readonly stateDir = join(this.dir, 'state');
  readonly client = new ApiClient(join(this.stateDir, 'api.sock'), { timeoutMs: 10_000 });
  #downDone = false;

  get flags(): string[] {
    return ['--name', this.name, '--state-dir', this.stateDir];
  }

  async up(): Promise<void> {
    const up = await run(
      process.execPath,
      [strataBin, 'up', '--nodes', '2', '--no-dns', ...this.flags],
      180_000,
    );
    if (up.code !== 0) throw new Error(`strata up failed (${up.code}):\n${up.stdout}${up.stderr}`);
  }

  /** `strata down` and the temporary directory; synchronous (the SIGINT handler calls it); idempotent. */
  down(): string {
    if (this.#downDone) return 'already down';
    this.#downDone = true;
    this.client.close();
    const r = spawnSync(process.execPath, [strataBin, 'down', ...this.flags], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    rmSync(this.dir, { recursive: true, force: true });
    const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter((l) => l.startsWith(`strata-${this.name}-`));
    return r.status === 0
      ? `strata down ${this.name}: ok; namespaces left: ${left.length === 0 ? 'none' : left.join(' ')}`
      : `strata down ${this.name} failed (${r.status}): ${r.stderr.trim()}; namespaces left: ${left.join(' ') || 'none'}`;
  }

  /** The node's mesh proxy process (`strata mesh-proxy`, started by its agent). */
  meshProxyPid(node: NodeName): number {
    const pid = meshProxyPid(this.stateDir, node);
    if (pid === undefined) throw new Error(`no mesh-proxy process for ${node} of ${this.stateDir}`);
    return pid;
  }

  nodeNetns(node: NodeName): string {
    return `strata-${this.name}-${node}`;
  }

  podNetns(uid: string): string {
    return `strata-${this.name}-${uid.slice(0, 12)}`;
  }

  accessLines(node: NodeName): Record<string, unknown>[] {
    const file = join(this.stateDir, 'nodes', node, 'mesh-access.log');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

const podResource = resourceForKind('v1', 'Pod') as ResourceType;

export interface PodInfo {
  ip: string;
  netns: string;
}

export function podSpec(
  namespace: string,
  name: string,
  node: NodeName,
  serve: boolean,
): KubeObject {
  const iperf = spawnSync('sh', ['-c', 'command -v iperf3'], { encoding: 'utf8' }).stdout.trim();
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': node },
      serviceAccountName: name,
      terminationGracePeriodSeconds: 1,
      containers: serve
        ? [
            {
              name: 'http',
              image: 'node',
              command: [process.execPath, serverScript, String(httpPort)],
            },
            {
              name: 'iperf3',
              image: 'iperf3',
              command: [iperf || 'iperf3', '-s', '-p', String(iperfPort)],
            },
          ]
        : [{ name: 'main', image: 'sleep', command: ['sleep', 'infinity'] }],
    },
  };
}

interface PodStatus {
  metadata: { uid?: string; deletionTimestamp?: string };
  spec?: { containers?: unknown[] };
  status?: {
    phase?: string;
    podIP?: string;
    containerStatuses?: { state: { running?: unknown } }[];
  };
}

export async function runningPod(
  cluster: BenchCluster,
  namespace: string,
  name: string,
): Promise<PodInfo> {
  return waitFor(`${namespace}/${name} running`, async () => {
    const pod = (await cluster.client.get(podResource, name, { namespace })) as PodStatus;
    const statuses = pod.status?.containerStatuses ?? [];
    const ok =
      pod.status?.phase === 'Running' &&
      (pod.status.podIP ?? '') !== '' &&
      statuses.length === (pod.spec?.containers?.length ?? 0) &&
      statuses.every((c) => c.state.running !== undefined);
    return ok
      ? { ip: pod.status?.podIP ?? '', netns: cluster.podNetns(pod.metadata.uid ?? '') }
      : undefined;
  });
}

/** CPU seconds (utime + stime) and RSS in MB (all, and its anonymous part) of a process, from /proc. */
const clockTicks = Number(
  spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || '100',
);
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of proc(5), counted after the command name (field 3 is index 0).
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}
export function rssMb(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024 };
}
