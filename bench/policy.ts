/**
 * npm run bench:policy — NetworkPolicy enforcement at scale (issue 4), in one run:
 *   1. full apply: 1,000 policies over 1,000 model-only pods (bench/policy-workload.ts),
 *      compiled for node n1 by a new NodePolicyCompiler, rendered as one transaction and
 *      loaded into a namespace with no table; target <= 1 s;
 *   2. updates: one policy replaced by a variant of itself (every policy shape), and one
 *      new pod, each compiled by the same compiler object (its caches warm, as in the
 *      agent), diffed with renderPolicyChange() and applied; target <= 50 ms;
 *   3. data path: iperf3 and a loop of new TCP connections between two pods of the
 *      workload, bridged by cni0 in the node namespace with br_netfilter on, with the
 *      1,000 policies loaded, with a conntrack-only table, and with no table at all,
 *      interleaved round by round; target: throughput with policies >= 95 % of none. The
 *      pair is chosen with decide() so that the server is isolated and a rule of the
 *      workload lets the client in, and the kernel is checked to agree.
 * Every transaction is applied twice, the kernel put back in between: with the `nft -f -`
 * command and with the agent's NftRunner (libnftables in-process), so the two compare.
 *
 * Everything happens in namespaces this script creates: a node namespace standing in for
 * node n1, where the measuring process itself runs (the agent runs nft in its own
 * namespace, so no `ip netns exec` per transaction), and three pod namespaces. All of
 * them, and every process started in them, go on every exit path, SIGINT included.
 *
 * Options: --rounds N (default 4: full applies, updates per policy shape, added pods, and
 * data-path rounds), --quick (2 rounds, 2 s traffic tests), --workload typical|broad.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NftRunner } from '../src/kernel/libnftables.js';
import { nftApplyAsync } from '../src/kernel/nft.js';
import {
  NodePolicyCompiler,
  type PolicyState,
  podCounterName,
  policyTable,
  renderPolicyChange,
  renderPolicyRuleset,
} from '../src/policy/compile.js';
import { type Decision, type SideDecision, decide } from '../src/policy/decide.js';
import { type PodPolicy, type PolicyInput, buildPolicyModel } from '../src/policy/model.js';
import type { PolicyPod } from '../src/policy/types.js';
import {
  type ConnectResult,
  connectClient,
  connectOnce,
  connectServer,
} from './connection-rate.js';
import { type WorkloadSize, policyAt, policyWorkload } from './policy-workload.js';

const self = fileURLToPath(import.meta.url);
/**
 * Every namespace of this run starts with this, named after the first process, which
 * makes them all before the measuring process starts inside the node: so they are mounted
 * where that first process can find and delete them, and every process in them.
 */
let prefix = `stpol${process.pid.toString(36)}`;
const nodeNamespace = (): string => `${prefix}n`;
const podNamespace = (i: number): string => `${prefix}p${i}`;
/** Server, client, and a pod the server's policies deny. */
const podCount = 3;

const nodeName = 'n1';
const iperfPort = 5201;
const connectPort = 5202;
const shapes = 6;
const targets = { fullApplyMs: 1000, updateMs: 50, throughputRatio: 0.95 };

interface Options {
  rounds: number;
  /** Seconds per iperf3 run and per connection loop. */
  iperfSeconds: number;
  connectSeconds: number;
  size: WorkloadSize;
}

function parseOptions(argv: string[]): Options {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? (argv[i + 1] ?? '') : undefined;
  };
  const quick = argv.includes('--quick');
  const rounds = Number(get('--rounds') ?? (quick ? 2 : 4));
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new Error(`--rounds must be a positive integer: got ${get('--rounds') ?? ''}`);
  }
  const workload = get('--workload') ?? 'typical';
  if (workload !== 'typical' && workload !== 'broad') {
    throw new Error(`--workload must be typical or broad: got ${workload}`);
  }
  return {
    rounds,
    iperfSeconds: quick ? 2 : 4,
    connectSeconds: quick ? 2 : 3,
    size: { pods: 1000, policies: 1000, namespaces: 50, nodes: ['n1', 'n2'], shape: workload },
  };
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function now(): bigint {
  return process.hrtime.bigint();
}

function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] ?? NaN;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return Number.isInteger(mid)
    ? ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2
    : (sorted[Math.floor(mid)] ?? NaN);
}

function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function sh(file: string, args: string[]): string {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

function deleteTable(): void {
  // Absent is fine: the first round and the "none" scenario start from no table.
  spawnSync('nft', ['delete', 'table', 'inet', policyTable]);
}

function counterPackets(name: string): number {
  const out = sh('nft', ['-j', 'list', 'counter', 'inet', policyTable, name]);
  const items = (JSON.parse(out) as { nftables: { counter?: { packets: number } }[] }).nftables;
  return items.find((i) => i.counter)?.counter?.packets ?? NaN;
}

function lineCount(script: string): number {
  return script === '' ? 0 : script.split('\n').length - 1;
}

// ---------------------------------------------------------------------------------------------
// Control plane: full apply and updates

/** The two ways a transaction reaches the kernel. */
interface Applier {
  key: 'command' | 'runner';
  label: string;
  apply(script: string): Promise<void>;
}

/** Set when NftRunner could not load libnftables and used the command instead. */
let runnerFallback: string | undefined;
/** The agent's way: one libnftables context for the process, in the node's namespace. */
const runner = new NftRunner((line) => {
  runnerFallback = line;
});

const appliers: readonly Applier[] = [
  { key: 'command', label: 'nft -f -', apply: nftApplyAsync },
  { key: 'runner', label: 'NftRunner', apply: (script) => runner.apply(script) },
];

type PerApplier = Record<Applier['key'], number>;

/** One measured change: compile and render once, then the transaction through each applier. */
interface Sample {
  label: string;
  /** The policy shape (k % 6) for a policy update. */
  shape?: number;
  /** Lines of the nft transaction; 0 when nothing changed (nothing applied). */
  lines: number;
  /** Its size in bytes. */
  bytes: number;
  compile: number;
  render: number;
  apply: PerApplier;
}

function total(s: Sample, key: Applier['key']): number {
  return s.compile + s.render + s.apply[key];
}

/** Appliers in turn, the order swapped every other time so neither always goes first. */
function inTurn(i: number): readonly Applier[] {
  return i % 2 === 0 ? appliers : [...appliers].reverse();
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

/** A pod that is not in the workload, on n1, with labels some policies select. */
function newPod(j: number, size: WorkloadSize, template: PolicyPod): PolicyPod {
  const tiers = ['web', 'api', 'db', 'cache', 'worker'];
  const [a, b] = (template.ips[0] ?? '10.100.0.1').split('.');
  return {
    namespace: `ns-${(j * 13 + 5) % size.namespaces}`,
    name: `bench-new-${j}`,
    labels: { app: `app-${j % 4}`, tier: tiers[j % tiers.length] ?? 'web' },
    ips: [`${a ?? '10'}.${b ?? '100'}.200.${10 + j}`],
    node: nodeName,
    containerPorts: template.containerPorts,
  };
}

interface ControlPlane {
  fullApply: Sample[];
  ruleset: { chains: number; sets: number; elements: number; lines: number; bytes: number };
  updates: Sample[];
  addPod: Sample[];
  /** The workload's whole ruleset, loaded at the end. */
  script: string;
}

async function controlPlane(input: PolicyInput, options: Options): Promise<ControlPlane> {
  const { size } = options;
  const fullApply: Sample[] = [];
  let compiler = new NodePolicyCompiler(nodeName);
  let applied: PolicyState | undefined;
  let script = '';
  for (let r = 0; r < options.rounds; r++) {
    deleteTable();
    // A new compiler each round, as an agent that starts: nothing cached.
    compiler = new NodePolicyCompiler(nodeName);
    let t = now();
    applied = compiler.compile(input);
    const compile = msSince(t);
    t = now();
    script = renderPolicyRuleset(applied);
    const render = msSince(t);
    const apply: PerApplier = { command: NaN, runner: NaN };
    for (const applier of inTurn(r)) {
      deleteTable();
      t = now();
      await applier.apply(script);
      apply[applier.key] = msSince(t);
    }
    fullApply.push({
      label: `round ${r + 1}`,
      lines: lineCount(script),
      bytes: script.length,
      compile,
      render,
      apply,
    });
    console.log(
      `  round ${r + 1}: compile ${compile.toFixed(0)} ms, render ${render.toFixed(0)} ms, ` +
        appliers.map((a) => `${a.label} ${apply[a.key].toFixed(0)} ms`).join(', '),
    );
  }
  if (!applied) throw new Error('No full apply ran');
  let elements = 0;
  for (const set of applied.sets.values()) elements += set.elements.size;
  const ruleset = {
    chains: applied.chains.size,
    sets: applied.sets.size,
    elements,
    lines: lineCount(script),
    bytes: script.length,
  };

  // Changes on the last round's compiler, its caches warm. Each change is applied by both
  // appliers (the kernel put back in between, untimed), then undone before the next.
  const measure = async (label: string, next: PolicyInput, i: number): Promise<Sample> => {
    const old = applied as PolicyState;
    let t = now();
    const state = compiler.compile(next);
    const compile = msSince(t);
    t = now();
    const change = renderPolicyChange(old, state);
    const render = msSince(t);
    const apply: PerApplier = { command: 0, runner: 0 };
    if (change !== '') {
      const back = renderPolicyChange(state, old);
      const order = inTurn(i);
      for (const [n, applier] of order.entries()) {
        t = now();
        await applier.apply(change);
        apply[applier.key] = msSince(t);
        if (n < order.length - 1) await applier.apply(back);
      }
    }
    // Back to the workload for the next change, through the compiler as the agent would.
    const base = compiler.compile(input);
    const undo = renderPolicyChange(state, base);
    if (undo !== '') await nftApplyAsync(undo);
    applied = base;
    return { label, lines: lineCount(change), bytes: change.length, compile, render, apply };
  };

  const updates: Sample[] = [];
  for (let j = 0; j < options.rounds; j++) {
    for (let shape = 0; shape < shapes; shape++) {
      // Spread over namespaces and selectors: k runs through the policy list.
      const k = shape + shapes * ((j * 53 + shape * 29 + 7) % Math.floor(size.policies / shapes));
      const policies = [...input.policies];
      policies[k] = policyAt(k, size, 1);
      const sample = await measure(`policy-${k} → variant`, { ...input, policies }, updates.length);
      updates.push({ ...sample, shape });
    }
  }

  const addPod: Sample[] = [];
  const template = input.pods.find((p) => p.node === nodeName) ?? input.pods[0];
  if (!template) throw new Error('The workload has no pods');
  for (let j = 0; j < options.rounds; j++) {
    const pod = newPod(j, size, template);
    const label = `add ${pod.namespace}/${pod.name} ${pod.labels.app ?? ''},${pod.labels.tier ?? ''}`;
    addPod.push(await measure(label, { ...input, pods: [...input.pods, pod] }, j));
  }
  return { fullApply, ruleset, updates, addPod, script };
}

// ---------------------------------------------------------------------------------------------
// Data path

/** Child processes this process started; stopped by pid on every exit path. */
const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function stopChildren(): void {
  for (const child of children) child.kill('SIGTERM');
}

interface WiredPod {
  pod: PodPolicy;
  ip: string;
  netns: string;
}

interface Pair {
  server: PodPolicy;
  client: PodPolicy;
  /** A pod of the workload that the server's ingress policy denies. */
  denied: PodPolicy;
  /** decide(client → server) on the iperf3 port; the connection port was checked alike. */
  allowed: Decision;
  deniedDecision: Decision;
}

function allowedByRules(d: Decision): boolean {
  return d.verdict === 'allow' && d.ingress.result === 'allow' && d.ingress.reason === 'rules';
}

/**
 * Two pods of n1 that the workload lets talk on both test ports, the server isolated for
 * ingress; the client isolated for egress as well when such a pair exists, so that both
 * per-pod chains and both set lookups are on the path.
 */
function choosePair(input: PolicyInput): Pair {
  const model = buildPolicyModel(input);
  const local = [...model.pods.values()]
    .filter((p) => p.pod.node === nodeName && p.pod.ips.length > 0)
    .sort((a, b) => (a.key < b.key ? -1 : 1));
  const servers = local.filter((p) => p.ingress.isolated);
  const check = (client: PodPolicy, server: PodPolicy): Decision[] | undefined => {
    const ds = [iperfPort, connectPort].map((port) =>
      decide(model, { pod: client.key }, { pod: server.key }, 'TCP', port),
    );
    return ds.every(allowedByRules) ? ds : undefined;
  };
  const find = (bothSides: boolean): Pair | undefined => {
    for (const server of servers) {
      for (const client of local) {
        if (client === server || (bothSides && !client.egress.isolated)) continue;
        const decisions = check(client, server);
        if (!decisions) continue;
        if (
          bothSides &&
          !decisions.every((d) => d.egress.result === 'allow' && d.egress.reason === 'rules')
        )
          continue;
        for (const denied of local) {
          if (denied === server || denied === client) continue;
          const d = decide(model, { pod: denied.key }, { pod: server.key }, 'TCP', connectPort);
          if (d.verdict === 'deny' && d.ingress.result === 'deny' && d.egress.result === 'allow') {
            const allowed = decisions[0] as Decision;
            return { server, client, denied, allowed, deniedDecision: d };
          }
        }
      }
    }
    return undefined;
  };
  const pair = find(true) ?? find(false);
  if (!pair)
    throw new Error(`No pair of pods on ${nodeName} that the workload allows on TCP ${iperfPort}`);
  return pair;
}

function describeSide(side: SideDecision): string {
  switch (side.reason) {
    case 'rules':
      return `allowed by ${side.by.map((r) => `${r.policy} rule ${r.rule}`).join(', ')}`;
    case 'no-rule-allows':
      return `denied (isolated by ${side.isolatedBy.length} policies, no rule allows)`;
    default:
      return `${side.result} (${side.reason})`;
  }
}

function shapeOf(policyRef: string): string {
  const n = Number(/policy-(\d+)$/.exec(policyRef)?.[1]);
  return Number.isNaN(n) ? '?' : String(n % shapes);
}

/** cni0 in the node namespace with a gateway address, br_netfilter on, and a veth per pod. */
function wireTopology(pods: PodPolicy[]): WiredPod[] {
  const first = pods[0]?.pod.ips[0] ?? '';
  const [a, b] = first.split('.');
  const gateway = `${a ?? ''}.${b ?? ''}.255.254`;
  sh('ip', ['link', 'set', 'lo', 'up']);
  sh('ip', ['link', 'add', 'cni0', 'type', 'bridge']);
  sh('ip', ['addr', 'add', `${gateway}/16`, 'dev', 'cni0']);
  sh('ip', ['link', 'set', 'cni0', 'up']);
  // A new namespace starts with 1 here, but say so (docs/policy-enforcement.md, section 1).
  writeFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', '1');
  if (readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8').trim() !== '1') {
    throw new Error('bridge-nf-call-iptables is not 1 in the node namespace');
  }
  return pods.map((pod, i) => {
    const netns = podNamespace(i);
    const ip = pod.pod.ips[0] ?? '';
    const veth = `veth${i}`;
    sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    sh('ip', ['link', 'set', veth, 'master', 'cni0', 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${ip}/16`, 'dev', 'eth0']);
    sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', netns, 'route', 'add', 'default', 'via', gateway]);
    return { pod, ip, netns };
  });
}

/** Runs `args` in `netns` and resolves with its stdout; rejects on a non-zero exit. */
function inPod(netns: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = track(spawn('ip', ['netns', 'exec', netns, ...args], { stdio: 'pipe' }));
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${args.join(' ')} in ${netns} exited ${code ?? 'by signal'}: ${err}`));
    });
  });
}

/** Starts a long-running server in `netns`; resolves once it printed `ready`. */
function startServer(netns: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = track(spawn('ip', ['netns', 'exec', netns, ...args], { stdio: 'pipe' }));
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`${args.join(' ')} did not start: ${out}`));
    }, 10_000);
    const seen = (d: Buffer): void => {
      out += d.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout?.on('data', seen);
    child.stderr?.on('data', seen);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited ${code ?? 'by signal'}: ${out}`));
    });
  });
}

interface IperfJson {
  end: {
    sum_received: { bits_per_second: number; bytes: number; seconds: number };
    cpu_utilization_percent: { host_total: number; remote_total: number };
  };
}

/** No table at all (conntrack off in the node), a table that only turns conntrack on, the workload. */
type Scenario = 'none' | 'conntrack' | 'policies';
const scenarios: readonly Scenario[] = ['none', 'conntrack', 'policies'];

/** The policy table's established fast path alone, at the same hook. */
const conntrackOnly = [
  `add table inet ${policyTable}`,
  `add chain inet ${policyTable} prerouting { type filter hook prerouting priority dstnat + 10; policy accept; }`,
  `add rule inet ${policyTable} prerouting ct state established,related accept`,
  '',
].join('\n');

interface DataSample {
  round: number;
  scenario: Scenario;
  gbits: number;
  /** CPU of sender and receiver per GB received, as iperf3 reports it (ms/GB). */
  cpuMsPerGb: number;
  connectionsPerSecond: number;
  /** The client's CPU per completed connection (µs); softirq work is charged to it here. */
  clientCpuMicrosPerConnection: number;
  failures: Record<string, number>;
}

interface DataPath {
  pair: {
    server: string;
    client: string;
    denied: string;
    serverIngress: string;
    clientEgress: string;
    deniedIngress: string;
  };
  kernelCheck: { allowedConnected: boolean; deniedDropped: boolean; dropCounterDelta: number };
  samples: DataSample[];
}

async function probe(from: WiredPod, to: WiredPod): Promise<boolean> {
  try {
    await inPod(
      from.netns,
      [process.execPath, self, '--probe', to.ip, String(connectPort), '1000'],
      10_000,
    );
    return true;
  } catch {
    return false;
  }
}

async function dataPath(input: PolicyInput, policies: string, options: Options): Promise<DataPath> {
  const pair = choosePair(input);
  const [server, client, denied] = wireTopology([pair.server, pair.client, pair.denied]) as [
    WiredPod,
    WiredPod,
    WiredPod,
  ];
  const summary: DataPath['pair'] = {
    server: `${server.pod.key} ${server.ip}`,
    client: `${client.pod.key} ${client.ip}`,
    denied: `${denied.pod.key} ${denied.ip}`,
    serverIngress: describeSide(pair.allowed.ingress),
    clientEgress: describeSide(pair.allowed.egress),
    deniedIngress: describeSide(pair.deniedDecision.ingress),
  };
  const by = pair.allowed.ingress;
  const shapesUsed =
    by.result === 'allow' && by.reason === 'rules' ? by.by.map((r) => shapeOf(r.policy)) : [];
  console.log(
    [
      `  server ${summary.server}: ingress isolated by ${server.pod.ingress.policies.length} policies, ${server.pod.ingress.grants.length} grants`,
      `  client ${summary.client}: egress ${client.pod.egress.isolated ? `isolated by ${client.pod.egress.policies.length} policies` : 'not isolated'}`,
      `  decide(client → server, TCP ${iperfPort} and ${connectPort}): ingress ${summary.serverIngress} (shape ${shapesUsed.join(', ')}); egress ${summary.clientEgress}`,
      `  decide(${denied.pod.key} → server, TCP ${connectPort}): ingress ${summary.deniedIngress}`,
    ].join('\n'),
  );

  const servers =
    (options.iperfSeconds + options.connectSeconds + 10) * scenarios.length * options.rounds + 60;
  const iperfServer = await startServer(
    server.netns,
    ['timeout', String(servers), 'iperf3', '-s', '-p', String(iperfPort), '--forceflush'],
    /listening/,
  );
  const connectServer = await startServer(
    server.netns,
    [process.execPath, self, '--connect-server', String(connectPort), String(servers)],
    /ready/,
  );
  try {
    const setScenario = async (scenario: Scenario): Promise<void> => {
      deleteTable();
      if (scenario === 'policies') await nftApplyAsync(policies);
      if (scenario === 'conntrack') await nftApplyAsync(conntrackOnly);
    };

    // The kernel agrees with decide(): the allowed client connects, the other pod's SYNs
    // are dropped in the server's ingress chain and counted there.
    await setScenario('policies');
    const counter = podCounterName(server.pod.key, 'ingress');
    const before = counterPackets(counter);
    const allowedConnected = await probe(client, server);
    const deniedDropped = !(await probe(denied, server));
    const dropCounterDelta = counterPackets(counter) - before;
    console.log(
      `  kernel: client → server:${connectPort} ${allowedConnected ? 'connected' : 'FAILED'}; ` +
        `${denied.pod.key} → server:${connectPort} ${deniedDropped ? 'dropped' : 'CONNECTED'}, ` +
        `${counter} +${dropCounterDelta} packets`,
    );
    if (!allowedConnected || !deniedDropped || dropCounterDelta <= 0) {
      throw new Error('The kernel does not enforce what decide() says; no data-path figures');
    }

    const samples: DataSample[] = [];
    for (let r = 0; r < options.rounds; r++) {
      // ABC CBA ...: drift over the run hits every scenario alike.
      const order = r % 2 === 0 ? scenarios : [...scenarios].reverse();
      for (const scenario of order) {
        await setScenario(scenario);
        const iperf = JSON.parse(
          await inPod(
            client.netns,
            [
              'iperf3',
              '-c',
              server.ip,
              '-p',
              String(iperfPort),
              '-t',
              String(options.iperfSeconds),
              '-J',
            ],
            (options.iperfSeconds + 20) * 1000,
          ),
        ) as IperfJson;
        const received = iperf.end.sum_received;
        const cpu = iperf.end.cpu_utilization_percent;
        const conn = JSON.parse(
          await inPod(
            client.netns,
            [
              process.execPath,
              self,
              '--connect-client',
              server.ip,
              String(connectPort),
              String(options.connectSeconds),
            ],
            (options.connectSeconds + 20) * 1000,
          ),
        ) as ConnectResult;
        const sample: DataSample = {
          round: r + 1,
          scenario,
          gbits: received.bits_per_second / 1e9,
          cpuMsPerGb:
            (((cpu.host_total + cpu.remote_total) / 100) * received.seconds * 1000) /
            (received.bytes / 1e9),
          connectionsPerSecond: conn.connections / conn.seconds,
          clientCpuMicrosPerConnection: conn.cpuMicros / Math.max(1, conn.connections),
          failures: conn.failures,
        };
        samples.push(sample);
        console.log(
          `  round ${r + 1} ${scenario.padEnd(9)} ${sample.gbits.toFixed(2)} Gbit/s, ${sample.cpuMsPerGb.toFixed(0)} CPU ms/GB, ` +
            `${sample.connectionsPerSecond.toFixed(0)} conn/s, ${sample.clientCpuMicrosPerConnection.toFixed(0)} client CPU µs/conn` +
            Object.entries(conn.failures)
              .map(([why, n]) => `, ${n} failed (${why})`)
              .join(''),
        );
      }
    }
    await setScenario('policies');
    return {
      pair: summary,
      kernelCheck: { allowedConnected, deniedDropped, dropCounterDelta },
      samples,
    };
  } finally {
    iperfServer.kill('SIGTERM');
    connectServer.kill('SIGTERM');
  }
}

// ---------------------------------------------------------------------------------------------
// Report

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

async function inside(options: Options, command: string): Promise<void> {
  const started = now();
  const input = policyWorkload(options.size);
  const localPods = input.pods.filter((p) => p.node === nodeName).length;
  console.log(
    `workload "${options.size.shape ?? 'typical'}": ${input.policies.length} policies, ${input.pods.length} model-only pods (${localPods} on ${nodeName}), ${input.namespaces.length} namespaces; ${options.rounds} rounds\n`,
  );

  console.log('1. full apply: a new compiler, renderPolicyRuleset, one transaction into no table');
  const cp = await controlPlane(input, options);
  const full = summarize(cp.fullApply);
  console.log(
    `  the ruleset for ${nodeName}: ${cp.ruleset.chains} chains, ${cp.ruleset.sets} sets, ${cp.ruleset.elements} set elements, ${cp.ruleset.lines} lines, ${(cp.ruleset.bytes / 1e6).toFixed(2)} MB\n`,
  );

  const real = cp.updates.filter((u) => u.lines > 0);
  const noops = cp.updates.length - real.length;
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
  const update = summarize(real);
  const add = summarize(cp.addPod);
  if (runnerFallback) console.log(`  NftRunner: ${runnerFallback}`);
  console.log('');

  console.log('3. data path: two pods on cni0, br_netfilter on in the node');
  const dp = await dataPath(input, cp.script, options);
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
      runner: runnerFallback
        ? `NftRunner, fell back to the command: ${runnerFallback}`
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

// ---------------------------------------------------------------------------------------------
// Entry points

function cleanupInside(): void {
  stopChildren();
}

/** This run's namespaces: every process in them (all started by this run) stopped, then deleted. */
function cleanupOutside(): string[] {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  const ours = list
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(prefix));
  for (const netns of ours) {
    const pids = spawnSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' }).stdout;
    for (const pid of pids.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    spawnSync('ip', ['netns', 'del', netns]);
  }
  return ours;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const mode = argv[0];
  if (mode === '--connect-server') {
    await connectServer(Number(argv[1]), Number(argv[2]));
    return;
  }
  if (mode === '--connect-client') {
    await connectClient(argv[1] ?? '', Number(argv[2]), Number(argv[3]));
    return;
  }
  if (mode === '--probe') {
    const outcome = await connectOnce(argv[1] ?? '', Number(argv[2]), Number(argv[3]));
    process.exitCode = outcome === 'connected' ? 0 : 1;
    return;
  }
  if (process.getuid?.() !== 0) {
    console.error('bench:policy needs root (network namespaces, nftables)');
    process.exitCode = 1;
    return;
  }
  if (mode === '--inside') {
    // --inside PREFIX COMMAND OPTIONS...
    prefix = argv[1] ?? prefix;
    const options = parseOptions(argv.slice(3));
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      console.error(`${signal}: stopping, cleaning up`);
      cleanupInside();
      process.exit(130);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    try {
      await inside(options, argv[2] ?? '');
    } finally {
      cleanupInside();
      await runner.close();
    }
    return;
  }

  parseOptions(argv); // Reject bad options before making anything.
  const command = ['node', relative(process.cwd(), self), ...argv].join(' ');
  console.log(
    `bench:policy — NetworkPolicy compile, apply and data path; node ${process.version}; ${sh('nft', ['--version']).trim()}; ${new Date().toISOString()}`,
  );
  console.log(`command: ${command}\n`);
  // A signal before the measuring process runs: cleaned up below all the same.
  let child: ChildProcess | undefined;
  let interrupted = false;
  const forward = (signal: NodeJS.Signals): void => {
    interrupted = true;
    process.exitCode = 130;
    if (!child) return;
    child.kill(signal);
    // Should the measuring process not stop on its own, it does not outlive this one.
    setTimeout(() => child?.kill('SIGKILL'), 10_000).unref();
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    const names = [nodeNamespace(), ...Array.from({ length: podCount }, (_, i) => podNamespace(i))];
    for (const netns of names) sh('ip', ['netns', 'add', netns]);
    if (interrupted) return;
    const inner = spawn(
      'ip',
      [
        'netns',
        'exec',
        nodeNamespace(),
        process.execPath,
        self,
        '--inside',
        prefix,
        command,
        ...argv,
      ],
      { stdio: 'inherit' },
    );
    child = inner;
    const code = await new Promise<number>((resolve) => {
      inner.on('exit', (status, signal) => {
        resolve(status ?? (signal ? 130 : 1));
      });
      inner.on('error', () => {
        resolve(1);
      });
    });
    if (!interrupted) process.exitCode = code;
  } finally {
    const removed = cleanupOutside();
    const after = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    const left = after.split('\n').filter((l) => l.startsWith(prefix));
    console.log(
      `namespaces removed: ${removed.join(' ') || 'none'}; left: ${left.length === 0 ? 'none' : left.join(' ')}`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  cleanupInside();
  process.exitCode = 1;
});
