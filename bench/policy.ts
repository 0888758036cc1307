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
 *
 * This file is the spine (options, namespaces, the sequence of measurements);
 * policy-control-plane.ts measures the full apply and the updates, policy-data-path.ts
 * the traffic between two pods, policy-lab.ts holds the node's table and links and the
 * processes in the pods, policy-report.ts prints the report.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connectClient, connectOnce, connectServer } from './connection-rate.js';
import { controlPlane, runner } from './policy-control-plane.js';
import { dataPath } from './policy-data-path.js';
import { nodeName, sh, stopChildren } from './policy-lab.js';
import { printChanges, printRuleset, printSummary } from './policy-report.js';
import { type WorkloadSize, policyWorkload } from './policy-workload.js';
import { now } from './services-lab.js';

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

interface Options {
  rounds: number;
  /** Seconds per iperf3 run and per connection loop. */
  iperfSeconds: number;
  connectSeconds: number;
  size: WorkloadSize;
}

const usage = 'Usage: node dist/bench/policy.js [--rounds N] [--quick] [--workload typical|broad]';

/** The options, checked; an unknown flag or a bad value throws, naming it. */
function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      rounds: { type: 'string' },
      quick: { type: 'boolean' },
      workload: { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const rounds = Number(values.rounds ?? (quick ? 2 : 4));
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new Error(`--rounds must be a positive integer: got ${values.rounds ?? ''}`);
  }
  const workload = values.workload ?? 'typical';
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

async function inside(options: Options, command: string): Promise<void> {
  const started = now();
  const input = policyWorkload(options.size);
  const localPods = input.pods.filter((p) => p.node === nodeName).length;
  console.log(
    `workload "${options.size.shape ?? 'typical'}": ${input.policies.length} policies, ${input.pods.length} model-only pods (${localPods} on ${nodeName}), ${input.namespaces.length} namespaces; ${options.rounds} rounds\n`,
  );

  console.log('1. full apply: a new compiler, renderPolicyRuleset, one transaction into no table');
  const cp = await controlPlane(input, options);
  printRuleset(cp);
  printChanges(cp);

  console.log('3. data path: two pods on cni0, br_netfilter on in the node');
  const dp = await dataPath(input, cp.script, options, podNamespace);
  printSummary({ command, options, localPods, started, cp, dp });
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
  if (mode === '--help' || mode === '-h') {
    console.log(usage);
    return;
  }
  if (mode !== '--inside') {
    // Reject bad options before making anything.
    try {
      parseOptions(argv);
    } catch (error) {
      console.error(`${(error as Error).message}\n${usage}`);
      process.exitCode = 2;
      return;
    }
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
