/**
 * npm run bench:mesh — what the ambient mesh costs (issue 6, Speed), mesh on against
 * mesh off, in one run on one `strata up --nodes 2` cluster:
 *   1. latency the two node proxies add to small HTTP requests at a fixed 1,000 req/s
 *      over 4 keep-alive connections (mesh-client.ts, open loop, measured from the time
 *      each request was due): p50/p90/p99 off and on, and the difference; target
 *      <= 0.3 ms added at p90 (anchor: Istio 1.22's ztunnel pair ~0.17 ms p90, ~0.20 ms
 *      p99);
 *   2. CPU and memory of one node proxy per 1,000 req/s: the proxy runs inside each
 *      node's agent process (cluster.json `processes` → agent-node-1, agent-node-2), so
 *      its share is the agent's CPU (utime + stime) during the mesh-on run minus during
 *      the mesh-off run, per second, per 1,000 req/s, and the agent's RSS during the
 *      mesh-on run minus during the mesh-off run; targets <= 0.10 vCPU, <= 60 MB
 *      (anchors: ztunnel ~0.06 vCPU / 12 MB, a sidecar ~0.20 vCPU / 60 MB);
 *   3. bulk throughput pod to pod through the tunnel: iperf3 `-t 5`, mesh on / mesh off;
 *      target >= 25 %.
 * Namespace `mesh-<run>` is labelled istio.io/dataplane-mode=ambient, `plain-<run>` is
 * not; each has a client pod on node-1 and a server pod on node-2 (mesh-server.ts on
 * 8080 and `iperf3 -s` on 5201). Off and on alternate, round by round (off first in
 * odd rounds, on first in even ones); the figures are medians over rounds.
 *
 * Correctness, checked on every run: with the mesh on, node-2's access log
 * (`nodes/node-2/mesh-access.log`) gets inbound lines with the client's SPIFFE ID (the
 * measured path is the mesh); with the mesh off it gets no line about the plain server.
 *
 * The cluster has a run-unique name and its state in a temporary directory; `strata
 * down` runs on every exit path, SIGINT included. Output: progress on stderr; on stdout
 * the tables, one verdict per target (MET or MISSED), the checks, load average at start
 * and end, and one JSON line. Exit 1 when a check failed, 2 for a bad command line, 130
 * when interrupted; a missed target alone is exit 0.
 *
 * Options: --quick (1 round of 3 s latency runs and 2 s iperf3 runs: a smoke run).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { resourceForKind } from '../src/api/registry.js';
import type { KubeObject, ResourceType } from '../src/api/types.js';
import { ApiClient } from '../src/client/index.js';
import { messageChain } from '../src/cni/errors.js';
import { type Check, type Verdict, check, median, printTable, round } from './services-report.js';

const here = dirname(fileURLToPath(import.meta.url));
const strataBin = join(here, '..', 'bin', 'strata');
const clientScript = join(here, 'mesh-client.js');
const serverScript = join(here, 'mesh-server.js');
const usage = 'Usage: node dist/bench/mesh.js [--quick]';

const rate = 1000;
const connections = 4;
const httpPort = 8080;
const iperfPort = 5201;
const trustDomain = 'cluster.local';

const targets = {
  addedP90Ms: 0.3,
  cpuPer1k: 0.1,
  memoryMb: 60,
  throughputRatio: 0.25,
};
const anchors = {
  ztunnelP90Ms: 0.17,
  ztunnelP99Ms: 0.2,
  ztunnelCpuPer1k: 0.06,
  ztunnelMemoryMb: 12,
  sidecarCpuPer1k: 0.2,
  sidecarMemoryMb: 60,
};

type Mode = 'off' | 'on';
const nodes = ['node-1', 'node-2'] as const;
type NodeName = (typeof nodes)[number];

interface Options {
  quick: boolean;
  rounds: number;
  latencySeconds: number;
  warmupSeconds: number;
  iperfRounds: number;
  iperfSeconds: number;
}

function parseOptions(argv: readonly string[]): Options | string {
  let quick = false;
  for (const arg of argv) {
    if (arg === '--quick') quick = true;
    else return `Unknown argument "${arg}"`;
  }
  return {
    quick,
    rounds: quick ? 1 : 3,
    latencySeconds: quick ? 3 : 10,
    warmupSeconds: 1,
    iperfRounds: quick ? 1 : 3,
    iperfSeconds: quick ? 2 : 5,
  };
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();

function run(file: string, args: readonly string[], timeoutMs: number): Promise<Run> {
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

async function waitFor<T>(
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
class BenchCluster {
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

  agentPid(node: NodeName): number {
    const record = JSON.parse(readFileSync(join(this.stateDir, 'cluster.json'), 'utf8')) as {
      processes?: Record<string, number>;
    };
    const pid = record.processes?.[`agent-${node}`];
    if (pid === undefined) throw new Error(`cluster.json names no agent-${node}`);
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

interface PodInfo {
  ip: string;
  netns: string;
}

function podSpec(namespace: string, name: string, node: NodeName, serve: boolean): KubeObject {
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

async function runningPod(
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

/** CPU seconds (utime + stime) and RSS in MB of a process, from /proc. */
const clockTicks = Number(
  spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || '100',
);
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of proc(5), counted after the command name (field 3 is index 0).
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}
function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  return Number(kb ?? NaN) / 1024;
}

interface ClientSummary {
  due: number;
  counted: number;
  errors: number;
  achievedRate: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  lateSendP99: number;
}

interface LatencyRun {
  round: number;
  mode: Mode;
  client: ClientSummary;
  seconds: number;
  /** Agent CPU in vCPU (CPU seconds per second) over the run, per node. */
  agentCpu: Record<NodeName, number>;
  /** Agent RSS in MB: the highest sample during the run, per node. */
  agentRssMb: Record<NodeName, number>;
  /** Inbound lines on node-2's access log from the client's SPIFFE ID, added by the run. */
  accessLinesFromClient: number;
  /** Lines on node-2's access log about the run's server address, added by the run. */
  accessLinesToServer: number;
}

interface IperfRun {
  round: number;
  mode: Mode;
  gbps: number;
  retransmits: number;
  accessLinesFromClient: number;
  accessLinesToServer: number;
}

interface Pair {
  client: PodInfo;
  server: PodInfo;
  spiffe: string;
}

function countLines(cluster: BenchCluster, pair: Pair): { fromClient: number; toServer: number } {
  const lines = cluster.accessLines('node-2');
  return {
    fromClient: lines.filter((l) => l.direction === 'inbound' && l['src.identity'] === pair.spiffe)
      .length,
    toServer: lines.filter((l) => String(l['dst.addr']).startsWith(`${pair.server.ip}:`)).length,
  };
}

/** Waits until the access-log counts stop changing (lines are written at connection close). */
async function settledLines(
  cluster: BenchCluster,
  pair: Pair,
  before: { fromClient: number; toServer: number },
  expectLines: boolean,
): Promise<{ fromClient: number; toServer: number }> {
  const deadline = Date.now() + (expectLines ? 5000 : 1000);
  let last = countLines(cluster, pair);
  for (;;) {
    await sleep(250);
    const now = countLines(cluster, pair);
    const grew = now.fromClient > before.fromClient;
    if ((now.fromClient === last.fromClient && (!expectLines || grew)) || Date.now() > deadline) {
      return {
        fromClient: now.fromClient - before.fromClient,
        toServer: now.toServer - before.toServer,
      };
    }
    last = now;
  }
}

async function latencyRun(
  cluster: BenchCluster,
  pids: Record<NodeName, number>,
  pair: Pair,
  mode: Mode,
  roundNo: number,
  options: Options,
): Promise<LatencyRun> {
  const linesBefore = countLines(cluster, pair);
  const cpuBefore = { 'node-1': cpuSeconds(pids['node-1']), 'node-2': cpuSeconds(pids['node-2']) };
  const rss = { 'node-1': 0, 'node-2': 0 };
  const sample = (): void => {
    for (const node of nodes) rss[node] = Math.max(rss[node], rssMb(pids[node]));
  };
  sample();
  const started = process.hrtime.bigint();
  const timer = setInterval(sample, 250);
  let result: Run;
  try {
    result = await run(
      'ip',
      [
        'netns',
        'exec',
        pair.client.netns,
        process.execPath,
        clientScript,
        pair.server.ip,
        String(httpPort),
        String(rate),
        String(connections),
        String(options.latencySeconds),
        String(options.warmupSeconds),
      ],
      (options.latencySeconds + options.warmupSeconds) * 1000 + 30_000,
    );
  } finally {
    clearInterval(timer);
  }
  sample();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const agentCpu = {
    'node-1': (cpuSeconds(pids['node-1']) - cpuBefore['node-1']) / seconds,
    'node-2': (cpuSeconds(pids['node-2']) - cpuBefore['node-2']) / seconds,
  };
  if (result.code !== 0) throw new Error(`mesh-client failed (${result.code}): ${result.stderr}`);
  const client = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as ClientSummary;
  const lines = await settledLines(cluster, pair, linesBefore, mode === 'on');
  return {
    round: roundNo,
    mode,
    client,
    seconds,
    agentCpu,
    agentRssMb: rss,
    accessLinesFromClient: lines.fromClient,
    accessLinesToServer: lines.toServer,
  };
}

async function iperfRun(
  cluster: BenchCluster,
  pair: Pair,
  mode: Mode,
  roundNo: number,
  options: Options,
): Promise<IperfRun> {
  const linesBefore = countLines(cluster, pair);
  const result = await run(
    'ip',
    [
      'netns',
      'exec',
      pair.client.netns,
      'iperf3',
      '-c',
      pair.server.ip,
      '-p',
      String(iperfPort),
      '-t',
      String(options.iperfSeconds),
      '-J',
    ],
    options.iperfSeconds * 1000 + 30_000,
  );
  const json = JSON.parse(result.stdout || '{}') as {
    error?: string;
    end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } };
  };
  if (result.code !== 0 || json.error) {
    throw new Error(`iperf3 ${mode} failed (${result.code}): ${json.error ?? result.stderr}`);
  }
  const lines = await settledLines(cluster, pair, linesBefore, mode === 'on');
  return {
    round: roundNo,
    mode,
    gbps: (json.end?.sum_received?.bits_per_second ?? NaN) / 1e9,
    retransmits: json.end?.sum_sent?.retransmits ?? 0,
    accessLinesFromClient: lines.fromClient,
    accessLinesToServer: lines.toServer,
  };
}

const f = (value: number, digits = 3): string =>
  Number.isFinite(value) ? value.toFixed(digits) : '—';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const parsed = parseOptions(argv);
  if (typeof parsed === 'string') {
    console.error(`${parsed}\n${usage}`);
    process.exitCode = 2;
    return;
  }
  const options = parsed;
  if (process.getuid?.() !== 0) {
    console.error('bench:mesh needs root (strata up: network namespaces, nftables)');
    process.exitCode = 1;
    return;
  }
  const started = process.hrtime.bigint();
  const command = ['node', relative(process.cwd(), fileURLToPath(import.meta.url)), ...argv].join(
    ' ',
  );
  const loadAtStart = loadavg();
  const cluster = new BenchCluster();
  const finish = (): void => {
    for (const child of children) child.kill('SIGKILL');
    progress(cluster.down());
  };
  const interrupt = (signal: NodeJS.Signals): void => {
    progress(`${signal}: stopping, strata down`);
    finish();
    process.exit(130);
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);

  console.log(
    `bench:mesh — ambient mesh on vs off on a two-node strata cluster; node ${process.version}; ` +
      `${cpus().length} cores; ${new Date().toISOString()}`,
  );
  console.log(`command: ${command}`);
  console.log(`load average at start: ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}`);

  const checks: Check[] = [];
  const latency: LatencyRun[] = [];
  const iperf: IperfRun[] = [];
  const pairs = {} as Record<Mode, Pair>;
  let pids: Record<NodeName, number>;
  try {
    progress(`strata up --nodes 2 --no-dns --name ${cluster.name} --state-dir ${cluster.stateDir}`);
    await cluster.up();
    pids = { 'node-1': cluster.agentPid('node-1'), 'node-2': cluster.agentPid('node-2') };
    const namespaces: Record<Mode, string> = {
      on: `mesh-${cluster.name}`,
      off: `plain-${cluster.name}`,
    };
    for (const mode of ['on', 'off'] as const) {
      const labels: Record<string, string> =
        mode === 'on' ? { 'istio.io/dataplane-mode': 'ambient' } : {};
      await cluster.client.create({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: namespaces[mode], labels },
      });
      await cluster.client.create(podSpec(namespaces[mode], 'client', 'node-1', false));
      await cluster.client.create(podSpec(namespaces[mode], 'server', 'node-2', true));
    }
    for (const mode of ['on', 'off'] as const) {
      pairs[mode] = {
        client: await runningPod(cluster, namespaces[mode], 'client'),
        server: await runningPod(cluster, namespaces[mode], 'server'),
        spiffe: `spiffe://${trustDomain}/ns/${namespaces[mode]}/sa/client`,
      };
    }
    progress(
      `pods: on ${pairs.on.client.ip} → ${pairs.on.server.ip}, off ${pairs.off.client.ip} → ${pairs.off.server.ip}`,
    );
    const enrolled = async (node: NodeName): Promise<string> =>
      (
        await run(
          'ip',
          [
            'netns',
            'exec',
            cluster.nodeNetns(node),
            'nft',
            'list',
            'set',
            'inet',
            'strata_mesh',
            'enrolled_v4',
          ],
          8000,
        )
      ).stdout;
    await waitFor('both nodes capturing the mesh pods', async () => {
      const [one, two] = await Promise.all([enrolled('node-1'), enrolled('node-2')]);
      return one.includes(pairs.on.client.ip) &&
        two.includes(pairs.on.server.ip) &&
        !one.includes(pairs.off.client.ip) &&
        !two.includes(pairs.off.server.ip)
        ? true
        : undefined;
    });
    // Both servers answer before anything is measured (and the mesh's certificates are issued).
    for (const mode of ['on', 'off'] as const) {
      await waitFor(`the ${mode} server answering`, async () => {
        const r = await run(
          'ip',
          [
            'netns',
            'exec',
            pairs[mode].client.netns,
            'curl',
            '-sS',
            '--max-time',
            '3',
            `http://${pairs[mode].server.ip}:${httpPort}/`,
          ],
          6000,
        );
        return r.code === 0 && r.stdout === 'ok\n' ? true : undefined;
      });
    }
    progress(`agents: node-1 pid ${pids['node-1']}, node-2 pid ${pids['node-2']}`);

    for (let r = 1; r <= options.rounds; r++) {
      const order: Mode[] = r % 2 === 1 ? ['off', 'on'] : ['on', 'off'];
      for (const mode of order) {
        progress(`latency round ${r}/${options.rounds}: mesh ${mode}`);
        const one = await latencyRun(cluster, pids, pairs[mode], mode, r, options);
        latency.push(one);
        progress(
          `  p50 ${f(one.client.p50)} p90 ${f(one.client.p90)} p99 ${f(one.client.p99)} ms; ` +
            `${one.client.counted} counted, ${one.client.errors} errors; agent CPU ` +
            `${f(one.agentCpu['node-1'])}/${f(one.agentCpu['node-2'])} vCPU; access-log lines ${one.accessLinesFromClient}`,
        );
      }
    }
    for (let r = 1; r <= options.iperfRounds; r++) {
      const order: Mode[] = r % 2 === 1 ? ['off', 'on'] : ['on', 'off'];
      for (const mode of order) {
        progress(`iperf3 round ${r}/${options.iperfRounds}: mesh ${mode}`);
        const one = await iperfRun(cluster, pairs[mode], mode, r, options);
        iperf.push(one);
        progress(`  ${f(one.gbps, 2)} Gbit/s, ${one.retransmits} retransmits`);
      }
    }
  } catch (error) {
    checks.push(check('the benchmark ran to the end', false, messageChain(error)));
    progress(`FAILED: ${messageChain(error)}`);
  } finally {
    finish();
  }

  // Figures.
  const runsOf = (mode: Mode): LatencyRun[] => latency.filter((l) => l.mode === mode);
  const med = (mode: Mode, pick: (l: LatencyRun) => number): number =>
    median(runsOf(mode).map(pick));
  const lat = (mode: Mode) => ({
    p50: med(mode, (l) => l.client.p50),
    p90: med(mode, (l) => l.client.p90),
    p99: med(mode, (l) => l.client.p99),
    rate: med(mode, (l) => l.client.achievedRate),
  });
  const off = lat('off');
  const on = lat('on');
  const added = { p50: on.p50 - off.p50, p90: on.p90 - off.p90, p99: on.p99 - off.p99 };
  // Per round, on minus off, per 1,000 req/s; then the median over rounds.
  const perRound = (pick: (l: LatencyRun) => number): number[] => {
    const out: number[] = [];
    for (let r = 1; r <= options.rounds; r++) {
      const a = latency.find((l) => l.round === r && l.mode === 'on');
      const b = latency.find((l) => l.round === r && l.mode === 'off');
      if (a && b) out.push(pick(a) - pick(b));
    }
    return out;
  };
  const cpu = Object.fromEntries(
    nodes.map((node) => [
      node,
      median(perRound((l) => l.agentCpu[node] / (l.client.achievedRate / 1000))),
    ]),
  ) as Record<NodeName, number>;
  const mem = Object.fromEntries(
    nodes.map((node) => [node, median(perRound((l) => l.agentRssMb[node]))]),
  ) as Record<NodeName, number>;
  const gbps = (mode: Mode): number =>
    median(iperf.filter((i) => i.mode === mode).map((i) => i.gbps));
  const ratio = gbps('on') / gbps('off');

  console.log(
    `\n1. latency at ${rate} req/s over ${connections} keep-alive connections, ${options.latencySeconds} s per run ` +
      `(+${options.warmupSeconds} s warm-up), from the time each request was due; medians of ${options.rounds} round(s), ms`,
  );
  printTable(
    ['', 'p50', 'p90', 'p99', 'achieved req/s'],
    [
      ['mesh off', f(off.p50), f(off.p90), f(off.p99), f(off.rate, 0)],
      ['mesh on', f(on.p50), f(on.p90), f(on.p99), f(on.rate, 0)],
      ['added by the two proxies', f(added.p50), f(added.p90), f(added.p99), ''],
      [
        'anchor: Istio 1.22 ztunnel pair',
        '',
        f(anchors.ztunnelP90Ms, 2),
        f(anchors.ztunnelP99Ms, 2),
        '',
      ],
    ],
  );
  console.log('\nper run');
  printTable(
    ['round', 'mesh', 'p50', 'p90', 'p99', 'max', 'errors', 'access-log lines (client ID)'],
    latency.map((l) => [
      String(l.round),
      l.mode,
      f(l.client.p50),
      f(l.client.p90),
      f(l.client.p99),
      f(l.client.max, 2),
      String(l.client.errors),
      String(l.accessLinesFromClient),
    ]),
  );

  console.log(
    '\n2. one node proxy (inside the agent): agent CPU and RSS during the runs; median over rounds of on − off',
  );
  printTable(
    [
      '',
      'agent vCPU off',
      'agent vCPU on',
      'vCPU per 1k req/s',
      'RSS off MB',
      'RSS on MB',
      'RSS added MB',
    ],
    nodes.map((node) => [
      `${node} (${node === 'node-1' ? 'source' : 'destination'})`,
      f(med('off', (l) => l.agentCpu[node])),
      f(med('on', (l) => l.agentCpu[node])),
      f(cpu[node]),
      f(
        med('off', (l) => l.agentRssMb[node]),
        1,
      ),
      f(
        med('on', (l) => l.agentRssMb[node]),
        1,
      ),
      f(mem[node], 1),
    ]),
  );
  console.log(
    `anchors per 1k req/s: ztunnel ~${anchors.ztunnelCpuPer1k} vCPU / ${anchors.ztunnelMemoryMb} MB, sidecar ~${anchors.sidecarCpuPer1k} vCPU / ${anchors.sidecarMemoryMb} MB`,
  );

  console.log(`\n3. iperf3 pod to pod (node-1 → node-2), -t ${options.iperfSeconds}; Gbit/s`);
  printTable(
    ['round', 'mesh', 'Gbit/s', 'retransmits', 'access-log lines (client ID)'],
    iperf.map((i) => [
      String(i.round),
      i.mode,
      f(i.gbps, 2),
      String(i.retransmits),
      String(i.accessLinesFromClient),
    ]),
  );
  console.log(
    `median: mesh off ${f(gbps('off'), 2)}, mesh on ${f(gbps('on'), 2)} Gbit/s; on/off ${f(ratio * 100, 1)} %`,
  );

  // Checks: the measured path is the mesh (or not), and the load was what it should be.
  const onRuns = [...runsOf('on'), ...iperf.filter((i) => i.mode === 'on')];
  const offRuns = [...runsOf('off'), ...iperf.filter((i) => i.mode === 'off')];
  if (latency.length > 0) {
    checks.push(
      check(
        'mesh on: node-2 logs the client SPIFFE ID for every run',
        onRuns.length > 0 && onRuns.every((l) => l.accessLinesFromClient > 0),
        `${pairs.on?.spiffe ?? '?'}: ${onRuns.map((l) => l.accessLinesFromClient).join(', ')} line(s) per run`,
      ),
      check(
        'mesh off: node-2 logs nothing about the plain server',
        offRuns.every((l) => l.accessLinesToServer === 0 && l.accessLinesFromClient === 0),
        `${offRuns.map((l) => l.accessLinesToServer).join(', ')} line(s) per run`,
      ),
      check(
        'every request answered 200',
        latency.every((l) => l.client.errors === 0),
        `errors per run: ${latency.map((l) => l.client.errors).join(', ')}`,
      ),
      check(
        `the client kept the rate (>= 98 % of ${rate} req/s)`,
        latency.every((l) => l.client.achievedRate >= 0.98 * rate),
        `achieved: ${latency.map((l) => f(l.client.achievedRate, 0)).join(', ')} req/s (over the run and warm-up)`,
      ),
    );
  }

  const verdicts: Verdict[] = [];
  if (latency.length > 0) {
    const cpuWorst = Math.max(cpu['node-1'], cpu['node-2']);
    const memWorst = Math.max(mem['node-1'], mem['node-2']);
    verdicts.push(
      {
        target: 'latency added by the mesh at p90 (1,000 req/s)',
        value: `${f(added.p90)} ms (p99 ${f(added.p99)} ms; ztunnel ~${anchors.ztunnelP90Ms} / ~${anchors.ztunnelP99Ms} ms)`,
        limit: `<= ${targets.addedP90Ms} ms`,
        met: added.p90 <= targets.addedP90Ms,
      },
      {
        target: 'CPU of one node proxy per 1,000 req/s (the busier node)',
        value: `${f(cpuWorst)} vCPU (node-1 ${f(cpu['node-1'])}, node-2 ${f(cpu['node-2'])}; ztunnel ~${anchors.ztunnelCpuPer1k})`,
        limit: `<= ${targets.cpuPer1k} vCPU`,
        met: cpuWorst <= targets.cpuPer1k,
      },
    );
    // The proxy lives in the agent process and runs whether or not a namespace is
    // enrolled, so on − off shows only what the traffic adds, not the proxy's standing
    // memory: no verdict is claimed for the memory target.
    console.log(
      `\nmemory: not measured on its own — the node proxy runs inside the agent (RSS added by the traffic ${f(memWorst, 1)} MB; the whole agent ${f(Math.max(...nodes.map((node) => med('on', (l) => l.agentRssMb[node]))), 1)} MB; target <= ${targets.memoryMb} MB, ztunnel ~${anchors.ztunnelMemoryMb} MB)`,
    );
  }
  if (iperf.length > 0) {
    verdicts.push({
      target: 'bulk throughput through the tunnel, on/off',
      value: `${f(ratio * 100, 1)} % (${f(gbps('on'), 2)} of ${f(gbps('off'), 2)} Gbit/s)`,
      limit: `>= ${targets.throughputRatio * 100} %`,
      met: ratio >= targets.throughputRatio,
    });
  }
  console.log('\nverdicts (issue 6 targets)');
  for (const v of verdicts) {
    console.log(`${v.met ? 'MET   ' : 'MISSED'} ${v.target}: ${v.value} (target ${v.limit})`);
  }
  console.log('\ncorrectness checks');
  for (const c of checks) console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);

  const runtime = Number(process.hrtime.bigint() - started) / 1e9;
  const loadAtEnd = loadavg();
  console.log(
    `\nload average at start ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}, at end ${loadAtEnd.map((l) => l.toFixed(2)).join(' ')}; runtime ${runtime.toFixed(0)} s`,
  );
  console.log(
    JSON.stringify({
      bench: 'mesh',
      command,
      date: new Date().toISOString(),
      node: process.version,
      cores: cpus().length,
      loadAverage: { start: loadAtStart.map((l) => round(l)), end: loadAtEnd.map((l) => round(l)) },
      runtimeSeconds: round(runtime, 1),
      verdicts,
      checks,
      latency: {
        off: { p50: round(off.p50, 3), p90: round(off.p90, 3), p99: round(off.p99, 3) },
        on: { p50: round(on.p50, 3), p90: round(on.p90, 3), p99: round(on.p99, 3) },
        added: { p50: round(added.p50, 3), p90: round(added.p90, 3), p99: round(added.p99, 3) },
        runs: latency,
      },
      proxy: { vcpuPer1k: cpu, rssAddedMb: mem },
      throughput: {
        offGbps: round(gbps('off'), 3),
        onGbps: round(gbps('on'), 3),
        ratio: round(ratio, 3),
        runs: iperf,
      },
    }),
  );
  if (checks.some((c) => !c.ok)) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(messageChain(error));
  process.exitCode = 1;
});
