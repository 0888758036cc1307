/**
 * The measurement runs of bench:mesh (mesh.ts): one latency run (mesh-client.ts in
 * the client pod at a fixed rate, the mesh proxies' CPU and RSS sampled around it) and one
 * iperf3 run, each with the node-2 access-log lines it added.
 */
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  type BenchCluster,
  type NodeName,
  type PodInfo,
  type Run,
  cpuSeconds,
  httpPort,
  iperfPort,
  nodes,
  rssMb,
  run,
} from './mesh-cluster.js';

const clientScript = join(dirname(fileURLToPath(import.meta.url)), 'mesh-client.js');

export const rate = 1000;
export const connections = 4;

export type Mode = 'off' | 'on';

export interface Options {
  quick: boolean;
  rounds: number;
  latencySeconds: number;
  warmupSeconds: number;
  iperfRounds: number;
  iperfSeconds: number;
}

export interface ClientSummary {
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

export interface LatencyRun {
  round: number;
  mode: Mode;
  client: ClientSummary;
  seconds: number;
  /** Mesh proxy CPU in vCPU (CPU seconds per second) over the run, per node. */
  proxyCpu: Record<NodeName, number>;
  /** Mesh proxy RSS in MB: the highest sample during the run, per node. */
  proxyRssMb: Record<NodeName, number>;
  /** The anonymous part of that RSS (heap, buffers; not the mapped executable), per node. */
  proxyAnonMb: Record<NodeName, number>;
  /** Inbound lines on node-2's access log from the client's SPIFFE ID, added by the run. */
  accessLinesFromClient: number;
  /** Lines on node-2's access log about the run's server address, added by the run. */
  accessLinesToServer: number;
}

export interface IperfRun {
  round: number;
  mode: Mode;
  gbps: number;
  retransmits: number;
  accessLinesFromClient: number;
  accessLinesToServer: number;
}

export interface Pair {
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

export async function latencyRun(
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
  const anon = { 'node-1': 0, 'node-2': 0 };
  const sample = (): void => {
    for (const node of nodes) {
      const now = rssMb(pids[node]);
      rss[node] = Math.max(rss[node], now.rss);
      anon[node] = Math.max(anon[node], now.anon);
    }
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
  const proxyCpu = {
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
    proxyCpu,
    proxyRssMb: rss,
    proxyAnonMb: anon,
    accessLinesFromClient: lines.fromClient,
    accessLinesToServer: lines.toServer,
  };
}

export async function iperfRun(
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
