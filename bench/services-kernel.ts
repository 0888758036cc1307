/**
 * Part 1 of bench:services: how fast Services reach the kernel (issue 5: 1,000 Services
 * × 10 endpoints in <= 1 s; one endpoint change in <= 100 ms).
 *
 * The real path: NodeServiceCompiler (setService, setEndpoints, build), renderTable for
 * the whole table and renderTableChange for a change, each transaction applied in a
 * namespace of its own by two appliers in turn: the `nft -f -` command (through
 * `ip netns exec`, whose own cost is measured and printed) and an NftContext opened in
 * that namespace (libnftables in this process, as the agent applies).
 * - Full apply: each round a new compiler (nothing cached, as an agent that starts), the
 *   table deleted before each applier loads it.
 * - One endpoint change: on the last round's compiler, one pod of one Service turns not
 *   ready or is replaced; timed from setEndpoints to the end of the transaction
 *   (build, diff and render, apply), once per applier, the change undone (untimed) in
 *   between. The appliers swap order each change.
 * - Peer, for scale: the kube-proxy-style ruleset (one chain per endpoint,
 *   services-kube-proxy-style.ts) for the same Services, loaded by both appliers into a
 *   second namespace. kube-proxy cannot be installed here, so the targets are absolute.
 * Afterwards the kernel is read back: `service-ips-v4` holds one element per service
 * port, and every changed pod's old address is gone and every new one is there.
 */
import { runAsync } from '../src/kernel/command.js';
import { NftContext } from '../src/kernel/libnftables.js';
import { NodeServiceCompiler, servicesTable } from '../src/services/compile.js';
import type { EndpointInput, ServiceInput } from '../src/services/input.js';
import { type NftTableState, renderTable, renderTableChange } from '../src/services/nft-state.js';
import { kubeProxyStyleRuleset, kubeProxyStyleTable } from './services-kube-proxy-style.js';
import {
  type BenchOptions,
  type Lab,
  mapElements,
  msSince,
  nftIn,
  now,
  progress,
} from './services-lab.js';
import {
  type Check,
  type SectionResult,
  type Verdict,
  check,
  grouped,
  median,
  percentile,
  printTable,
  round,
} from './services-report.js';
import {
  benchNode,
  endpointChange,
  endpointsFor,
  serviceWorkload,
  shapeOf,
} from './services-workload.js';

const targets = { fullApplyMs: 1000, endpointChangeMs: 100 };
const serviceCount = 1000;

type ApplierKey = 'command' | 'context';
type PerApplier = Record<ApplierKey, number>;

interface Applier {
  key: ApplierKey;
  label: string;
  apply(script: string): Promise<void>;
}

function appliersFor(netns: string, context: NftContext): Applier[] {
  return [
    {
      key: 'command',
      label: 'nft -f -',
      apply: async (script) => {
        await runAsync('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], script);
      },
    },
    {
      key: 'context',
      label: 'NftContext',
      apply: async (script) => {
        await context.run(script);
      },
    },
  ];
}

/** The appliers in turn, the order swapped every other time so neither always goes first. */
function inTurn(appliers: readonly Applier[], i: number): readonly Applier[] {
  return i % 2 === 0 ? appliers : [...appliers].reverse();
}

function deleteTable(netns: string, table: string): void {
  try {
    nftIn(netns, ['delete', 'table', ...table.split(' ')]);
  } catch {
    // Absent before the first load.
  }
}

interface FullApply {
  compile: number;
  render: number;
  kernel: PerApplier;
}

interface ChangeSample {
  label: string;
  lines: number;
  /** build(), renderTableChange(), the transaction, and their sum, per applier. */
  build: PerApplier;
  render: PerApplier;
  kernel: PerApplier;
  total: PerApplier;
}

const per = (f: (key: ApplierKey) => number): PerApplier => ({
  command: f('command'),
  context: f('context'),
});

function mentions(text: string, address: string): boolean {
  return new RegExp(`(?<![\\d.])${address.replace(/\./g, '\\.')}(?![\\d])`).test(text);
}

export async function kernelSection(lab: Lab, options: BenchOptions): Promise<SectionResult> {
  const services = serviceWorkload(serviceCount);
  const shape = shapeOf(services);
  const netns = lab.namespace('kernel');
  const peerNetns = lab.namespace('peer');
  const context = await NftContext.open(`/var/run/netns/${netns}`);
  const peerContext = await NftContext.open(`/var/run/netns/${peerNetns}`);
  const checks: Check[] = [];
  try {
    const appliers = appliersFor(netns, context);
    const peerAppliers = appliersFor(peerNetns, peerContext);
    const execMs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = now();
      await lab.exec(netns, ['true'], 10_000);
      execMs.push(msSince(t));
    }

    // Full apply.
    const inputs: [string, ServiceInput, Map<string, EndpointInput[]>][] = services.map((ws) => [
      ws.key,
      ws.service,
      endpointsFor(ws),
    ]);
    const full: FullApply[] = [];
    let compiler = new NodeServiceCompiler(benchNode);
    let applied: NftTableState | undefined;
    let script = '';
    for (let r = 0; r < options.fullApplyRounds; r++) {
      compiler = new NodeServiceCompiler(benchNode);
      let t = now();
      for (const [key, service, endpoints] of inputs) {
        compiler.setService(key, service);
        compiler.setEndpoints(key, endpoints);
      }
      applied = compiler.build();
      const compile = msSince(t);
      t = now();
      script = renderTable(applied);
      const render = msSince(t);
      const kernel: PerApplier = { command: NaN, context: NaN };
      for (const applier of inTurn(appliers, r)) {
        deleteTable(netns, `inet ${servicesTable}`);
        t = now();
        await applier.apply(script);
        kernel[applier.key] = msSince(t);
      }
      full.push({ compile, render, kernel });
      progress(
        `  full apply ${r + 1}/${options.fullApplyRounds}: compile ${compile.toFixed(0)} ms, render ${render.toFixed(0)} ms, ` +
          appliers.map((a) => `${a.label} ${kernel[a.key].toFixed(0)} ms`).join(', '),
      );
    }
    if (!applied) throw new Error('No full apply ran');
    const elements = [...applied.sets.values()].reduce((n, s) => n + s.elements.size, 0);

    // The kube-proxy-style peer.
    const peer = kubeProxyStyleRuleset(services);
    const peerLoads: PerApplier[] = [];
    for (let r = 0; r < options.fullApplyRounds; r++) {
      const kernel: PerApplier = { command: NaN, context: NaN };
      for (const applier of inTurn(peerAppliers, r)) {
        deleteTable(peerNetns, kubeProxyStyleTable);
        const t = now();
        await applier.apply(peer.script);
        kernel[applier.key] = msSince(t);
      }
      peerLoads.push(kernel);
      progress(
        `  kube-proxy style ${r + 1}/${options.fullApplyRounds}: ` +
          peerAppliers.map((a) => `${a.label} ${kernel[a.key].toFixed(0)} ms`).join(', '),
      );
    }
    const peerIps = mapElements(peerNetns, kubeProxyStyleTable, 'service-ips');
    checks.push(
      check(
        'kube-proxy-style table loaded',
        peerIps === peer.serviceIps,
        `service-ips holds ${peerIps} elements, expected ${peer.serviceIps}`,
      ),
    );

    // One endpoint change at a time.
    const changes: ChangeSample[] = [];
    const touched: { gone: string; added?: string }[] = [];
    for (let j = 0; j < options.endpointChanges; j++) {
      const change = endpointChange(services, j);
      touched.push(change);
      const sample: ChangeSample = {
        label: change.label,
        lines: 0,
        build: { command: NaN, context: NaN },
        render: { command: NaN, context: NaN },
        kernel: { command: NaN, context: NaN },
        total: { command: NaN, context: NaN },
      };
      const order = inTurn(appliers, j);
      for (const [n, applier] of order.entries()) {
        const t0 = now();
        compiler.setEndpoints(change.service.key, change.after);
        const next = compiler.build();
        const t1 = now();
        const text = renderTableChange(applied, next);
        const t2 = now();
        await applier.apply(text);
        const t3 = now();
        applied = next;
        const ms = (a: bigint, b: bigint): number => Number(b - a) / 1e6;
        sample.build[applier.key] = ms(t0, t1);
        sample.render[applier.key] = ms(t1, t2);
        sample.kernel[applier.key] = ms(t2, t3);
        sample.total[applier.key] = ms(t0, t3);
        sample.lines = text === '' ? 0 : text.split('\n').length - 1;
        if (n < order.length - 1) {
          compiler.setEndpoints(change.service.key, change.before);
          const back = compiler.build();
          await applier.apply(renderTableChange(applied, back));
          applied = back;
        }
      }
      changes.push(sample);
      progress(
        `  change ${j + 1}/${options.endpointChanges} ${change.label}: ${sample.lines} lines, ` +
          appliers.map((a) => `${a.label} ${sample.total[a.key].toFixed(1)} ms`).join(', '),
      );
    }
    const empty = changes.filter((c) => c.lines === 0).length;
    checks.push(
      check(
        'every endpoint change rendered a transaction',
        empty === 0,
        `${empty} of ${changes.length} were empty`,
      ),
    );

    // Read the kernel back.
    const serviceIps = mapElements(netns, `inet ${servicesTable}`, 'service-ips-v4');
    checks.push(
      check(
        'strata table holds every service port',
        serviceIps === shape.servicePorts,
        `service-ips-v4 holds ${serviceIps} elements, expected ${shape.servicePorts}`,
      ),
    );
    const listing = nftIn(netns, ['list', 'table', 'inet', servicesTable]);
    const stale = touched.filter((c) => mentions(listing, c.gone)).map((c) => c.gone);
    const missing = touched
      .filter((c) => c.added && !mentions(listing, c.added))
      .map((c) => c.added);
    const chains = listing.split('\n').filter((line) => /^\tchain /.test(line)).length;
    checks.push(
      check(
        'kernel follows every endpoint change',
        stale.length === 0 && missing.length === 0 && chains === applied.chains.size,
        `${touched.length} changes; old addresses still present: ${stale.join(' ') || 'none'}; ` +
          `new ones missing: ${missing.join(' ') || 'none'}; chains ${chains} (expected ${applied.chains.size})`,
      ),
    );

    // Report.
    const fullTotal = per((k) => median(full.map((f) => f.compile + f.render + f.kernel[k])));
    const fullMax = per((k) => Math.max(...full.map((f) => f.compile + f.render + f.kernel[k])));
    const fullKernel = per((k) => median(full.map((f) => f.kernel[k])));
    const peerKernel = per((k) => median(peerLoads.map((p) => p[k])));
    const stat = (values: number[], p: number): number =>
      p === 50 ? median(values) : percentile(values, p);
    const at = (f: (c: ChangeSample) => PerApplier, p: number): PerApplier =>
      per((k) =>
        stat(
          changes.map((c) => f(c)[k]),
          p,
        ),
      );
    const change = {
      median: at((c) => c.total, 50),
      p90: at((c) => c.total, 90),
      max: at((c) => c.total, 100),
      build: at((c) => c.build, 50),
      render: at((c) => c.render, 50),
      kernel: at((c) => c.kernel, 50),
    };
    const ms = (v: number, digits = 0): string => grouped(v, digits);
    const both = (p: PerApplier, digits = 0): string[] => [
      ms(p.command, digits),
      ms(p.context, digits),
    ];
    console.log(
      `\n1. Programming speed: ${grouped(shape.services)} Services × ${services[0]?.pods.length ?? 0} endpoints ` +
        `(${grouped(shape.servicePorts)} service ports: ${shape.twoPorts} Services with 2 ports, ${shape.udpPorts} UDP, ` +
        `${shape.nodePorts} NodePorts, ${shape.affinity} with ClientIP affinity)`,
    );
    console.log(
      `   strata table: ${grouped(applied.chains.size)} chains, ${grouped(elements)} set and map elements, ` +
        `${(script.length / 1e6).toFixed(2)} MB; kube-proxy style: ${grouped(peer.chains)} chains, ` +
        `${(peer.script.length / 1e6).toFixed(2)} MB; \`ip netns exec\` alone: ${median(execMs).toFixed(1)} ms (median of 10)`,
    );
    printTable(
      ['times in ms', 'nft -f -', 'NftContext', 'target'],
      [
        [`full apply, median of ${full.length}`, ...both(fullTotal), `<= ${targets.fullApplyMs}`],
        ['  compile (set* + build)', ...both(per(() => median(full.map((f) => f.compile)))), ''],
        ['  renderTable', ...both(per(() => median(full.map((f) => f.render)))), ''],
        ['  kernel', ...both(fullKernel), ''],
        ['  slowest round (the first is the cold one)', ...both(fullMax), ''],
        ['kube-proxy style load (kernel only), median', ...both(peerKernel), 'scale'],
        [
          '  strata kernel time / kube-proxy style',
          (fullKernel.command / peerKernel.command).toFixed(2),
          (fullKernel.context / peerKernel.context).toFixed(2),
          '',
        ],
        [
          `one endpoint change, median of ${changes.length}`,
          ...both(change.median, 1),
          `<= ${targets.endpointChangeMs}`,
        ],
        ['  p90', ...both(change.p90, 1), `<= ${targets.endpointChangeMs}`],
        ['  max', ...both(change.max, 1), ''],
        [
          '  build, render, kernel (medians)',
          ...(['command', 'context'] as const).map(
            (k) =>
              `${change.build[k].toFixed(1)}, ${change.render[k].toFixed(1)}, ${change.kernel[k].toFixed(1)}`,
          ),
          '',
        ],
      ],
    );
    const verdicts: Verdict[] = appliers.flatMap((a): Verdict[] => [
      {
        target: `full apply of 1,000 × 10, ${a.label}`,
        value: `${ms(fullTotal[a.key])} ms`,
        limit: `<= ${targets.fullApplyMs} ms`,
        met: fullTotal[a.key] <= targets.fullApplyMs,
      },
      {
        target: `one endpoint change, ${a.label} (p90; median)`,
        value: `${change.p90[a.key].toFixed(1)} ms; ${change.median[a.key].toFixed(1)} ms`,
        limit: `<= ${targets.endpointChangeMs} ms`,
        met: change.p90[a.key] <= targets.endpointChangeMs,
      },
    ]);
    const r = (p: PerApplier): PerApplier => per((k) => round(p[k]));
    return {
      section: 'kernel',
      verdicts,
      checks,
      data: {
        shape,
        ruleset: { chains: applied.chains.size, elements, bytes: script.length },
        peer: { chains: peer.chains, bytes: peer.script.length, loads: peerLoads.map(r) },
        ipNetnsExecMs: round(median(execMs)),
        fullApply: full.map((f) => ({
          compile: round(f.compile),
          render: round(f.render),
          kernel: r(f.kernel),
        })),
        endpointChanges: changes.map((c) => ({
          label: c.label,
          lines: c.lines,
          total: r(c.total),
          kernel: r(c.kernel),
        })),
      },
    };
  } finally {
    await context.close();
    await peerContext.close();
  }
}
