/**
 * npm run bench:services — Services and cluster DNS against issue 5's targets, in one run:
 *   1. programming speed (services-kernel.ts): 1,000 Services × 10 endpoints compiled,
 *      rendered and loaded <= 1 s; one endpoint change in the kernel <= 100 ms; the
 *      `nft -f -` command against an in-process NftContext, and a kube-proxy-style
 *      ruleset (one chain per endpoint) loaded for scale;
 *   2. data path (services-throughput.ts): iperf3 through a ClusterIP >= 95 % of straight
 *      to the pod IP, with 1,000 Services in the node's table;
 *   3. DNS (services-dns.ts): dnsperf against strata's DNS server >= 0.5× dnsmasq serving
 *      the same records, no lost answers.
 * Everything runs in network namespaces this run creates (`sb-<random>-<role>`), on
 * loopback or on veths between them; they go, with every process started in them, on
 * every exit path, SIGINT included.
 *
 * Output: progress on stderr; on stdout a table per part, one verdict per target (MET or
 * MISSED), the correctness checks, and one JSON line with every sample. Exit status 1
 * when a correctness check failed (the figures could be hollow), 2 for a bad command
 * line, 130 when interrupted; a missed target alone is exit 0.
 *
 * Options: --quick (fewer rounds and shorter runs: a smoke run), --only
 * kernel|throughput|dns (comma-separated for several).
 */
import { cpus, loadavg } from 'node:os';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { messageChain } from '../src/cni/errors.js';
import { dnsSection } from './services-dns.js';
import { kernelSection } from './services-kernel.js';
import {
  type BenchOptions,
  BenchUsageError,
  Lab,
  type SectionName,
  parseOptions,
  progress,
  sh,
} from './services-lab.js';
import { type Check, type SectionResult, type Verdict, check, round } from './services-report.js';
import { connectClient, connectOnce, connectServer } from './connection-rate.js';
import { throughputSection } from './services-throughput.js';

const usage = 'Usage: node dist/bench/services.js [--quick] [--only kernel|throughput|dns]';

const sections: Record<SectionName, (lab: Lab, options: BenchOptions) => Promise<SectionResult>> = {
  kernel: kernelSection,
  throughput: throughputSection,
  dns: dnsSection,
};

/** The processes the benchmark starts in pod namespaces: the spine, in another mode. */
async function childMode(argv: readonly string[]): Promise<boolean> {
  const [mode, a = '', b = '', c = ''] = argv;
  if (mode === '--connect-server') await connectServer(Number(a), Number(b));
  else if (mode === '--connect-client') await connectClient(a, Number(b), Number(c));
  else if (mode === '--probe')
    process.stdout.write(`${await connectOnce(a, Number(b), Number(c))}\n`);
  else return false;
  return true;
}

function report(results: readonly SectionResult[], checks: readonly Check[]): void {
  const verdicts: Verdict[] = results.flatMap((r) => r.verdicts);
  console.log('\nverdicts (issue 5 targets; kube-proxy cannot run here, so they are absolute)');
  for (const v of verdicts) {
    console.log(`${v.met ? 'MET   ' : 'MISSED'} ${v.target}: ${v.value} (target ${v.limit})`);
  }
  console.log('\ncorrectness checks');
  for (const c of checks) console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (await childMode(argv)) return;
  let options: BenchOptions;
  try {
    options = parseOptions(argv);
  } catch (error) {
    if (!(error instanceof BenchUsageError)) throw error;
    console.error(`${error.message}\n${usage}`);
    process.exitCode = 2;
    return;
  }
  if (process.getuid?.() !== 0) {
    console.error('bench:services needs root (network namespaces, nftables)');
    process.exitCode = 1;
    return;
  }

  const started = process.hrtime.bigint();
  const command = ['node', relative(process.cwd(), fileURLToPath(import.meta.url)), ...argv].join(
    ' ',
  );
  const loadAtStart = loadavg();
  const lab = new Lab();
  const finish = (): void => {
    const { removed, left } = lab.cleanup();
    const say = left.length === 0 ? progress : console.log;
    say(`namespaces removed: ${removed.join(' ') || 'none'}; left: ${left.join(' ') || 'none'}`);
  };
  const interrupt = (signal: NodeJS.Signals): void => {
    progress(`${signal}: stopping, cleaning up`);
    finish();
    process.exit(130);
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  // Last resort (an uncaught error): cleanup() is idempotent and synchronous.
  process.on('exit', () => lab.cleanup());

  console.log(
    `bench:services — Services programming, ClusterIP data path and cluster DNS; node ${process.version}; ` +
      `${sh('nft', ['--version']).trim()}; ${cpus().length} cores; ${new Date().toISOString()}`,
  );
  console.log(`command: ${command}`);
  console.log(`load average at start: ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}`);

  const results: SectionResult[] = [];
  const checks: Check[] = [];
  try {
    for (const name of options.sections) {
      progress(`${name}: starting (namespaces ${lab.prefix}-*)`);
      try {
        const result = await sections[name](lab, options);
        results.push(result);
        checks.push(...result.checks);
      } catch (error) {
        checks.push(check(`${name} ran to the end`, false, messageChain(error)));
        progress(`${name}: FAILED: ${messageChain(error)}`);
      }
    }
  } finally {
    finish();
  }

  const runtime = Number(process.hrtime.bigint() - started) / 1e9;
  const loadAtEnd = loadavg();
  report(results, checks);
  console.log(
    `\nload average at start ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}, at end ${loadAtEnd.map((l) => l.toFixed(2)).join(' ')}; runtime ${runtime.toFixed(0)} s`,
  );
  console.log(
    JSON.stringify({
      bench: 'services',
      command,
      date: new Date().toISOString(),
      node: process.version,
      cores: cpus().length,
      loadAverage: { start: loadAtStart.map((l) => round(l)), end: loadAtEnd.map((l) => round(l)) },
      runtimeSeconds: round(runtime, 1),
      verdicts: results.flatMap((r) => r.verdicts),
      checks,
      ...Object.fromEntries(results.map((r) => [r.section, r.data])),
    }),
  );
  if (checks.some((c) => !c.ok)) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(messageChain(error));
  process.exitCode = 1;
});
