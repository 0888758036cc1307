/**
 * The report of bench:mesh (mesh.ts): from the runs, the figures (medians over
 * rounds, on minus off), the tables, the correctness checks, one verdict per
 * target against its anchor, and the closing JSON line.
 */
import { cpus, loadavg } from 'node:os';
import { type Check, type Verdict, check, median, printTable, round } from './services-report.js';
import { type NodeName, nodes } from './mesh-cluster.js';
import {
  type IperfRun,
  type LatencyRun,
  type Mode,
  type Options,
  type Pair,
  connections,
  rate,
} from './mesh-runs.js';

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

/** A figure with `digits` decimals, or a dash when there is none. */
export const figure = (value: number, digits = 3): string =>
  Number.isFinite(value) ? value.toFixed(digits) : '—';

/** What the bench gathered, for printReport. */
export interface MeshResults {
  options: Options;
  /** When the bench started (process.hrtime.bigint()). */
  started: bigint;
  command: string;
  loadAtStart: number[];
  /** Checks so far; the report adds its own. */
  checks: Check[];
  latency: LatencyRun[];
  iperf: IperfRun[];
  pairs: Record<Mode, Pair>;
}

/** Prints the tables, verdicts, checks and the JSON line; exit code 1 when a check failed. */
export function printReport(results: MeshResults): void {
  const { options, started, command, loadAtStart, checks, latency, iperf, pairs } = results;
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
      median(perRound((l) => l.proxyCpu[node] / (l.client.achievedRate / 1000))),
    ]),
  ) as Record<NodeName, number>;
  // Memory: the proxy's peak over the mesh-on runs (it carries nothing when the mesh is off).
  const peak = (pick: (l: LatencyRun) => number): number =>
    Math.max(...latency.filter((l) => l.mode === 'on').map(pick));
  const mem = Object.fromEntries(
    nodes.map((node) => [node, peak((l) => l.proxyRssMb[node])]),
  ) as Record<NodeName, number>;
  const anon = Object.fromEntries(
    nodes.map((node) => [node, peak((l) => l.proxyAnonMb[node])]),
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
      ['mesh off', figure(off.p50), figure(off.p90), figure(off.p99), figure(off.rate, 0)],
      ['mesh on', figure(on.p50), figure(on.p90), figure(on.p99), figure(on.rate, 0)],
      ['added by the two proxies', figure(added.p50), figure(added.p90), figure(added.p99), ''],
      [
        'anchor: Istio 1.22 ztunnel pair',
        '',
        figure(anchors.ztunnelP90Ms, 2),
        figure(anchors.ztunnelP99Ms, 2),
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
      figure(l.client.p50),
      figure(l.client.p90),
      figure(l.client.p99),
      figure(l.client.max, 2),
      String(l.client.errors),
      String(l.accessLinesFromClient),
    ]),
  );

  console.log(
    '\n2. one node proxy (its own process, strata mesh-proxy): CPU median over rounds, per 1k req/s of on − off; RSS the peak of the mesh-on runs',
  );
  printTable(
    ['', 'vCPU off', 'vCPU on', 'vCPU per 1k req/s', 'RSS MB', 'of which anonymous MB'],
    nodes.map((node) => [
      `${node} (${node === 'node-1' ? 'source' : 'destination'})`,
      figure(med('off', (l) => l.proxyCpu[node])),
      figure(med('on', (l) => l.proxyCpu[node])),
      figure(cpu[node]),
      figure(mem[node], 1),
      figure(anon[node], 1),
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
      figure(i.gbps, 2),
      String(i.retransmits),
      String(i.accessLinesFromClient),
    ]),
  );
  console.log(
    `median: mesh off ${figure(gbps('off'), 2)}, mesh on ${figure(gbps('on'), 2)} Gbit/s; on/off ${figure(ratio * 100, 1)} %`,
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
        `achieved: ${latency.map((l) => figure(l.client.achievedRate, 0)).join(', ')} req/s (over the run and warm-up)`,
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
        value: `${figure(added.p90)} ms (p99 ${figure(added.p99)} ms; ztunnel ~${anchors.ztunnelP90Ms} / ~${anchors.ztunnelP99Ms} ms)`,
        limit: `<= ${targets.addedP90Ms} ms`,
        met: added.p90 <= targets.addedP90Ms,
      },
      {
        target: 'CPU of one node proxy per 1,000 req/s (the busier node)',
        value: `${figure(cpuWorst)} vCPU (node-1 ${figure(cpu['node-1'])}, node-2 ${figure(cpu['node-2'])}; ztunnel ~${anchors.ztunnelCpuPer1k})`,
        limit: `<= ${targets.cpuPer1k} vCPU`,
        met: cpuWorst <= targets.cpuPer1k,
      },
    );
    verdicts.push({
      target: 'memory of one node proxy (peak RSS, the busier node)',
      value: `${figure(memWorst, 1)} MB (anonymous ${figure(Math.max(anon['node-1'], anon['node-2']), 1)} MB; ztunnel ~${anchors.ztunnelMemoryMb}, a sidecar ~${anchors.sidecarMemoryMb})`,
      limit: `<= ${targets.memoryMb} MB`,
      met: memWorst <= targets.memoryMb,
    });
  }
  if (iperf.length > 0) {
    verdicts.push({
      target: 'bulk throughput through the tunnel, on/off',
      value: `${figure(ratio * 100, 1)} % (${figure(gbps('on'), 2)} of ${figure(gbps('off'), 2)} Gbit/s)`,
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
      proxy: { vcpuPer1k: cpu, peakRssMb: mem, peakAnonMb: anon },
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
