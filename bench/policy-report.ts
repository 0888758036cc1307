/**
 * The report of bench:policy (policy.ts): the ruleset and the tables of changes once the
 * control plane is measured, then the summary against issue 4's targets (times as
 * "nft -f - / NftRunner", ratio = value / target) and one JSON line with every sample.
 */
import { loadavg } from 'node:os';
import {
  type Applier,
  type ControlPlane,
  type PerApplier,
  type Sample,
  appliers,
} from './policy-control-plane.js';
import type { DataPath, DataSample, Scenario } from './policy-data-path.js';
import { nodeName } from './policy-lab.js';
import type { WorkloadSize } from './policy-workload.js';
import { msSince } from './services-lab.js';
import { median, percentile, round } from './services-report.js';

/** Issue 4's targets. */
const targets = { fullApplyMs: 1000, updateMs: 50, throughputRatio: 0.95 };

function total(s: Sample, key: Applier['key']): number {
  return s.compile + s.render + s.apply[key];
}

interface Summary {
  compile: number;
  render: number;
  apply: PerApplier;
  total: PerApplier;
  p90: PerApplier;
  max: PerApplier;
}

function summarize(samples: readonly Sample[]): Summary {
  const per = (f: (s: Sample, key: Applier['key']) => number, p: number): PerApplier => {
    const at = (values: number[]): number => (p === 50 ? median(values) : percentile(values, p));
    return {
      command: at(samples.map((s) => f(s, 'command'))),
      runner: at(samples.map((s) => f(s, 'runner'))),
    };
  };
  return {
    compile: median(samples.map((s) => s.compile)),
    render: median(samples.map((s) => s.render)),
    apply: per((s, k) => s.apply[k], 50),
    total: per(total, 50),
    p90: per(total, 90),
    max: per(total, 100),
  };
}

function printSamples(title: string, samples: readonly Sample[], withShape: boolean): void {
  console.log(title);
  const head = ['compile', 'render', ...appliers.map((a) => a.label), 'lines', 'kB'];
  console.log(
    `  ${'change'.padEnd(36)} ${withShape ? 'shape ' : ''}${head.map((h) => h.padStart(9)).join(' ')}`,
  );
  for (const s of samples) {
    const cells = [s.compile, s.render, ...appliers.map((a) => s.apply[a.key])].map((v) =>
      v.toFixed(1).padStart(9),
    );
    console.log(
      `  ${s.label.padEnd(36)} ${withShape ? String(s.shape ?? '').padStart(5) + ' ' : ''}${cells.join(' ')} ${String(s.lines).padStart(9)} ${(s.bytes / 1000).toFixed(1).padStart(9)}${s.lines === 0 ? '  no change' : ''}`,
    );
  }
}

function sampleJson(s: Sample): Record<string, unknown> {
  return {
    label: s.label,
    ...(s.shape === undefined ? {} : { shape: s.shape }),
    lines: s.lines,
    bytes: s.bytes,
    compile: round(s.compile),
    render: round(s.render),
    apply: { command: round(s.apply.command), runner: round(s.apply.runner) },
  };
}

function summaryJson(s: Summary, target: number): Record<string, unknown> {
  const r = (p: PerApplier): PerApplier => ({ command: round(p.command), runner: round(p.runner) });
  return {
    median: { compile: round(s.compile), render: round(s.render), apply: r(s.apply) },
    total: r(s.total),
    p90: r(s.p90),
    max: r(s.max),
    ratio: {
      command: round(s.total.command / target, 3),
      runner: round(s.total.runner / target, 3),
    },
  };
}

/** The one-policy updates that changed the ruleset (a shape-0 variant is the policy itself). */
function realUpdates(cp: ControlPlane): Sample[] {
  return cp.updates.filter((u) => u.lines > 0);
}

/** The size of the workload's ruleset for the node, after the full applies. */
export function printRuleset(cp: ControlPlane): void {
  console.log(
    `  the ruleset for ${nodeName}: ${cp.ruleset.chains} chains, ${cp.ruleset.sets} sets, ${cp.ruleset.elements} set elements, ${cp.ruleset.lines} lines, ${(cp.ruleset.bytes / 1e6).toFixed(2)} MB\n`,
  );
}

/** The one-policy updates and the added pods, change by change. */
export function printChanges(cp: ControlPlane): void {
  const noops = cp.updates.length - realUpdates(cp).length;
  printSamples(
    '2. one-policy updates: the same compiler, renderPolicyChange, one transaction (ms)',
    cp.updates,
    true,
  );
  if (noops > 0) {
    console.log(
      `  ${noops} no-op: policyAt(k, size, 1) is policyAt(k, size) for shape 0 (default deny); left out below`,
    );
  }
  printSamples('\n   add one pod (ms)', cp.addPod, false);
  if (cp.runnerFallback) console.log(`  NftRunner: ${cp.runnerFallback}`);
  console.log('');
}

/** The summary against the targets, then one JSON line with every sample. */
export function printSummary(run: {
  command: string;
  options: { rounds: number; size: WorkloadSize };
  /** The workload's pods on the node. */
  localPods: number;
  /** When the measuring began. */
  started: bigint;
  cp: ControlPlane;
  dp: DataPath;
}): void {
  const { command, options, localPods, started, cp, dp } = run;
  const full = summarize(cp.fullApply);
  const real = realUpdates(cp);
  const noops = cp.updates.length - real.length;
  const update = summarize(real);
  const add = summarize(cp.addPod);
  const of = (scenario: Scenario, f: (s: DataSample) => number): number =>
    median(dp.samples.filter((s) => s.scenario === scenario).map(f));
  const ratio = (f: (s: DataSample) => number, a: Scenario, b: Scenario): number =>
    of(a, f) / of(b, f);
  const gbits = (s: DataSample): number => s.gbits;
  const cpuPerGb = (s: DataSample): number => s.cpuMsPerGb;
  const connRate = (s: DataSample): number => s.connectionsPerSecond;
  const cpuPerConn = (s: DataSample): number => s.clientCpuMicrosPerConnection;
  const runtime = msSince(started) / 1000;
  const load = loadavg();

  const row = (label: string, value: string, target: string, r: string): void => {
    console.log(
      `${label.padEnd(50)} ${value.padStart(22)} ${target.padStart(8)} ${r.padStart(10)}`,
    );
  };
  const both = (p: PerApplier, digits: number): string =>
    `${p.command.toFixed(digits)} / ${p.runner.toFixed(digits)}`;
  const ratios = (p: PerApplier, target: number): string =>
    `${(p.command / target).toFixed(2)} / ${(p.runner / target).toFixed(2)}`;
  console.log(
    `\nsummary: ${command}; load average ${load.map((l) => l.toFixed(2)).join(' ')}; runtime ${runtime.toFixed(0)} s`,
  );
  console.log(`times in ms as "nft -f - / NftRunner"; ratio = value / target`);
  row('measure', 'value', 'target', 'ratio');
  row(
    `full apply, median of ${cp.fullApply.length}`,
    both(full.total, 0),
    `<= ${targets.fullApplyMs}`,
    ratios(full.total, targets.fullApplyMs),
  );
  row('  slowest round', both(full.max, 0), '', ratios(full.max, targets.fullApplyMs));
  row(
    '  compile, render (medians)',
    `${full.compile.toFixed(0)}, ${full.render.toFixed(0)}`,
    '',
    '',
  );
  row('  apply (medians)', both(full.apply, 0), '', '');
  const rows: [string, Summary][] = [
    [`one-policy update, ${real.length} changes`, update],
    [`add one pod, ${cp.addPod.length} pods`, add],
  ];
  for (const [label, s] of rows) {
    row(
      `${label}: median`,
      both(s.total, 1),
      `<= ${targets.updateMs}`,
      ratios(s.total, targets.updateMs),
    );
    row('  p90', both(s.p90, 1), `<= ${targets.updateMs}`, ratios(s.p90, targets.updateMs));
    row('  max', both(s.max, 1), '', ratios(s.max, targets.updateMs));
    row('  compile, render (medians)', `${s.compile.toFixed(1)}, ${s.render.toFixed(1)}`, '', '');
    row('  apply (medians)', both(s.apply, 1), '', '');
  }
  const pair = (f: (s: DataSample) => number, digits: number, a: Scenario, b: Scenario): string =>
    `${of(a, f).toFixed(digits)} / ${of(b, f).toFixed(digits)}`;
  const n = `median of ${options.rounds}`;
  row(
    `iperf3 Gbit/s, policies / none (${n})`,
    pair(gbits, 2, 'policies', 'none'),
    `>= ${targets.throughputRatio}`,
    ratio(gbits, 'policies', 'none').toFixed(2),
  );
  row(
    '  policies / conntrack only',
    pair(gbits, 2, 'policies', 'conntrack'),
    '',
    ratio(gbits, 'policies', 'conntrack').toFixed(2),
  );
  row(
    'CPU ms per GB, policies / none',
    pair(cpuPerGb, 0, 'policies', 'none'),
    '',
    ratio(cpuPerGb, 'policies', 'none').toFixed(2),
  );
  row(
    '  policies / conntrack only',
    pair(cpuPerGb, 0, 'policies', 'conntrack'),
    '',
    ratio(cpuPerGb, 'policies', 'conntrack').toFixed(2),
  );
  row(
    'new connections/s, policies / none',
    pair(connRate, 0, 'policies', 'none'),
    'info',
    ratio(connRate, 'policies', 'none').toFixed(2),
  );
  row(
    '  policies / conntrack only',
    pair(connRate, 0, 'policies', 'conntrack'),
    '',
    ratio(connRate, 'policies', 'conntrack').toFixed(2),
  );
  row(
    'client CPU µs per connection, policies / none',
    pair(cpuPerConn, 0, 'policies', 'none'),
    '',
    ratio(cpuPerConn, 'policies', 'none').toFixed(2),
  );
  const within = (ok: boolean): string => (ok ? 'within target' : 'OFF target');
  console.log(
    `\nfull apply ${within(full.total.command <= targets.fullApplyMs)} (nft -f -), ${within(full.total.runner <= targets.fullApplyMs)} (NftRunner); ` +
      `one-policy update ${within(update.total.command <= targets.updateMs)} (nft -f -), ${within(update.total.runner <= targets.updateMs)} (NftRunner); ` +
      `throughput ${within(ratio(gbits, 'policies', 'none') >= targets.throughputRatio)}`,
  );

  const dataRatios = (f: (s: DataSample) => number): Record<string, number> => ({
    policiesOverNone: round(ratio(f, 'policies', 'none'), 3),
    policiesOverConntrack: round(ratio(f, 'policies', 'conntrack'), 3),
    conntrackOverNone: round(ratio(f, 'conntrack', 'none'), 3),
  });
  const result = {
    bench: 'policy',
    command,
    date: new Date().toISOString(),
    node: process.version,
    loadAverage: load.map((l) => round(l)),
    runtimeSeconds: round(runtime, 1),
    workload: { ...options.size, localPods, ruleset: cp.ruleset },
    targets,
    appliers: {
      command: 'nft -f - (nftables command)',
      runner: cp.runnerFallback
        ? `NftRunner, fell back to the command: ${cp.runnerFallback}`
        : 'NftRunner (libnftables in-process)',
    },
    fullApply: {
      rounds: cp.fullApply.map(sampleJson),
      ...summaryJson(full, targets.fullApplyMs),
    },
    policyUpdate: {
      samples: cp.updates.map(sampleJson),
      noops,
      ...summaryJson(update, targets.updateMs),
    },
    addPod: { samples: cp.addPod.map(sampleJson), ...summaryJson(add, targets.updateMs) },
    dataPath: {
      ...dp,
      samples: dp.samples.map((s) => ({
        ...s,
        gbits: round(s.gbits, 3),
        cpuMsPerGb: round(s.cpuMsPerGb, 1),
        connectionsPerSecond: round(s.connectionsPerSecond, 1),
        clientCpuMicrosPerConnection: round(s.clientCpuMicrosPerConnection, 1),
      })),
      throughput: dataRatios(gbits),
      cpuPerGb: dataRatios(cpuPerGb),
      connectionRate: dataRatios(connRate),
      clientCpuPerConnection: dataRatios(cpuPerConn),
    },
  };
  console.log(JSON.stringify(result));
}
