/**
 * Part 3 of bench:services: cluster DNS queries per second (issue 5: strata's server
 * >= 0.5× dnsmasq, no lost answers).
 *
 * Both servers run in one namespace of this run, on 127.0.0.1, strata on port 5300
 * (services-dns-server.ts: DnsServer in a Node process of its own) and dnsmasq on 5301
 * (`--no-resolv --no-hosts --no-poll --conf-file=/dev/null`: no system configuration, no
 * upstream; `--local=/cluster.local/` so an unknown name in the zone is NXDOMAIN, as
 * from strata), both serving the zone of services-dns-zone.ts. Nothing leaves the
 * namespace.
 *
 * Before measuring, `dig` asks each server for an A, an SRV, a headless A (5 addresses)
 * and an unknown name, and the answers must be the expected ones. Then dnsperf
 * (`-c 4 -T 1`, one sending thread) runs `-l N` seconds against each server in turn, the
 * order swapped each round. Each run must get NXDOMAIN for the query file's share of
 * unknown names and nothing but NOERROR otherwise, and strata's own counters must have
 * seen every query dnsperf got an answer to. The CPU each server used during its runs is
 * read from /proc: the machine has 2 cores, for dnsperf and the server.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type DigCase, digCases, dnsmasqRecordOptions, queryFile } from './services-dns-zone.js';
import { type BenchOptions, type Lab, msSince, now, progress, sh } from './services-lab.js';
import {
  type Check,
  type SectionResult,
  check,
  grouped,
  median,
  printTable,
  round,
} from './services-report.js';

const strataScript = fileURLToPath(new URL('./services-dns-server.js', import.meta.url));
const host = '127.0.0.1';
const qpsTarget = 0.5;

type ServerName = 'strata' | 'dnsmasq';
const serverNames: readonly ServerName[] = ['strata', 'dnsmasq'];

interface RunningServer {
  name: ServerName;
  port: number;
  child: ChildProcess;
}

interface PerfRun {
  round: number;
  server: ServerName;
  sent: number;
  completed: number;
  lost: number;
  qps: number;
  latencyMs: number;
  rcodes: Record<string, number>;
  /** CPU the server used during the run, in % of one core. */
  serverCpu: number;
}

function parseDig(output: string): { status: string; answers: string[] } {
  const status = /status: ([A-Z]+)/.exec(output)?.[1] ?? 'no answer';
  const section = output.split(';; ANSWER SECTION:\n')[1]?.split('\n\n')[0] ?? '';
  const answers = section
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith(';'))
    .map((line) => {
      const [, , , type, ...data] = line.split(/\s+/);
      return `${type ?? ''} ${data.join(' ')}`;
    })
    .sort();
  return { status, answers };
}

function parseDnsperf(output: string): Omit<PerfRun, 'round' | 'server' | 'serverCpu'> {
  const number = (label: string): number => {
    const match = new RegExp(`${label}:\\s+([\\d.]+)`).exec(output);
    if (!match?.[1]) throw new Error(`dnsperf printed no "${label}":\n${output}`);
    return Number(match[1]);
  };
  const rcodes: Record<string, number> = {};
  const codes = /Response codes:\s+(.*)/.exec(output)?.[1] ?? '';
  for (const [, code, count] of codes.matchAll(/([A-Z]+) (\d+)/g))
    rcodes[code ?? ''] = Number(count);
  return {
    sent: number('Queries sent'),
    completed: number('Queries completed'),
    lost: number('Queries lost'),
    qps: number('Queries per second'),
    latencyMs: number('Average Latency \\(s\\)') * 1000,
    rcodes,
  };
}

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid ?? 0}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** strata's counters, asked for on its stdin. */
function strataStats(child: ChildProcess): Promise<{ udpQueries: number }> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      reject(new Error('strata DNS server sent no stats'));
    }, 5000);
    const seen = (d: Buffer): void => {
      out += d.toString();
      const line = /^stats (.*)$/m.exec(out)?.[1];
      if (line === undefined) return;
      clearTimeout(timer);
      child.stdout?.off('data', seen);
      resolve(JSON.parse(line) as { udpQueries: number });
    };
    child.stdout?.on('data', seen);
    child.stdin?.write('stats\n');
  });
}

async function verifyAnswers(lab: Lab, netns: string, server: RunningServer): Promise<Check> {
  const wrong: string[] = [];
  for (const c of digCases()) {
    const args = [
      'dig',
      `@${host}`,
      '-p',
      String(server.port),
      '+tries=2',
      '+time=2',
      c.name,
      c.type,
    ];
    const got = parseDig((await lab.exec(netns, args, 15_000)).stdout);
    if (got.status !== c.status || got.answers.join(', ') !== c.answers.join(', ')) {
      wrong.push(
        `${c.name} ${c.type}: ${got.status} [${got.answers.join(', ')}], expected ${describe(c)}`,
      );
    }
  }
  return check(
    `${server.name} answers dig as expected`,
    wrong.length === 0,
    wrong.length === 0
      ? `${digCases().length} queries: A, SRV, headless A, NXDOMAIN`
      : wrong.join('; '),
  );
}

function describe(c: DigCase): string {
  return `${c.status} [${c.answers.join(', ')}]`;
}

export async function dnsSection(lab: Lab, options: BenchOptions): Promise<SectionResult> {
  const netns = lab.namespace('dns');
  const file = join(lab.directory(), 'queries.txt');
  const queries = queryFile();
  writeFileSync(file, `${queries.lines.join('\n')}\n`);
  const clockTicks = Number(sh('getconf', ['CLK_TCK']).trim()) || 100;
  const dnsmasqArgs = [
    'dnsmasq',
    '--keep-in-foreground',
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    '--conf-file=/dev/null',
    '--user=root',
    '--pid-file=',
    '--log-facility=-',
    `--listen-address=${host}`,
    '--bind-interfaces',
    '--port=5301',
    '--local=/cluster.local/',
    ...dnsmasqRecordOptions(),
  ];
  const servers: RunningServer[] = [
    {
      name: 'strata',
      port: 5300,
      child: await lab.start(netns, [process.execPath, strataScript, host, '5300'], /^ready /m),
    },
    { name: 'dnsmasq', port: 5301, child: await lab.start(netns, dnsmasqArgs, /started, version/) },
  ];
  try {
    const checks: Check[] = [];
    for (const server of servers) checks.push(await verifyAnswers(lab, netns, server));
    if (checks.some((c) => !c.ok)) return { section: 'dns', verdicts: [], checks, data: {} };

    const runs: PerfRun[] = [];
    const counted: string[] = [];
    for (let r = 0; r < options.dnsRounds; r++) {
      const order = r % 2 === 0 ? servers : [...servers].reverse();
      for (const server of order) {
        const before = server.name === 'strata' ? await strataStats(server.child) : undefined;
        const ticks = cpuTicks(server.child.pid);
        const t = now();
        const args = ['dnsperf', '-s', host, '-p', String(server.port), '-d', file];
        args.push('-l', String(options.dnsSeconds), '-c', '4', '-T', '1');
        const out = (await lab.exec(netns, args, (options.dnsSeconds + 30) * 1000)).stdout;
        const serverCpu =
          ((cpuTicks(server.child.pid) - ticks) / clockTicks / (msSince(t) / 1000)) * 100;
        const run: PerfRun = { round: r + 1, server: server.name, ...parseDnsperf(out), serverCpu };
        runs.push(run);
        if (before) {
          const after = await strataStats(server.child);
          const seen = after.udpQueries - before.udpQueries;
          if (seen < run.completed) counted.push(`round ${r + 1}: ${seen} < ${run.completed}`);
        }
        progress(
          `  round ${r + 1}/${options.dnsRounds} ${server.name.padEnd(7)} ${grouped(run.qps)} queries/s, ` +
            `${run.lost} lost, ${run.latencyMs.toFixed(2)} ms average, server CPU ${run.serverCpu.toFixed(0)} %`,
        );
      }
    }
    checks.push(
      check(
        'strata counted every query dnsperf got an answer to',
        counted.length === 0,
        counted.join('; ') || 'yes',
      ),
    );
    const badCodes = runs.filter((run) => {
      const { NOERROR = 0, NXDOMAIN = 0, ...others } = run.rcodes;
      const answered = NOERROR + NXDOMAIN;
      const share = answered > 0 ? NXDOMAIN / answered : NaN;
      return Object.keys(others).length > 0 || !(Math.abs(share - queries.nxdomainShare) <= 0.01);
    });
    checks.push(
      check(
        `every run answered NXDOMAIN for the ${(queries.nxdomainShare * 100).toFixed(0)} % unknown names, NOERROR otherwise`,
        badCodes.length === 0,
        badCodes
          .map((run) => `${run.server} round ${run.round}: ${JSON.stringify(run.rcodes)}`)
          .join('; ') || 'yes',
      ),
    );

    const of = (name: ServerName, f: (run: PerfRun) => number): number =>
      median(runs.filter((run) => run.server === name).map(f));
    const sum = (name: ServerName, f: (run: PerfRun) => number): number =>
      runs.filter((run) => run.server === name).reduce((n, run) => n + f(run), 0);
    const ratio = of('strata', (run) => run.qps) / of('dnsmasq', (run) => run.qps);
    const lost = sum('strata', (run) => run.lost);
    const sent = sum('strata', (run) => run.sent);
    console.log(
      `\n3. DNS: dnsperf -c 4 -T 1 -l ${options.dnsSeconds} against each server on ${host} in one namespace, ` +
        `${queries.lines.length} queries (90 % A, 5 % SRV, ${(queries.nxdomainShare * 100).toFixed(0)} % NXDOMAIN); ` +
        `medians of ${options.dnsRounds} rounds. The 2 cores are shared by dnsperf (one thread) and the server under test.`,
    );
    const perCpu = (run: PerfRun): number => run.qps / Math.max(run.serverCpu / 100, 0.01);
    const both = (f: (run: PerfRun) => number, digits: number): string[] =>
      serverNames.map((name) => grouped(of(name, f), digits));
    const qpsOf = (name: ServerName): number[] =>
      runs.filter((run) => run.server === name).map((run) => run.qps);
    const dnsmasqQps = qpsOf('dnsmasq');
    const paired = qpsOf('strata').map((qps, i) => qps / (dnsmasqQps[i] ?? NaN));
    const range = (values: number[], f: (v: number) => string): string =>
      `${f(Math.min(...values))}-${f(Math.max(...values))}`;
    printTable(
      ['measure', ...serverNames, 'ratio', 'target'],
      [
        ['queries/s', ...both((run) => run.qps, 0), ratio.toFixed(3), `>= ${qpsTarget}`],
        [
          '  min-max over rounds',
          ...serverNames.map((name) => range(qpsOf(name), (v) => grouped(v))),
          range(paired, (v) => v.toFixed(2)),
          '',
        ],
        [
          'queries lost (all rounds)',
          ...serverNames.map(
            (name) => `${sum(name, (run) => run.lost)} of ${grouped(sum(name, (run) => run.sent))}`,
          ),
          '',
          '0',
        ],
        ['average latency (ms)', ...both((run) => run.latencyMs, 3), '', ''],
        ['server CPU (% of one core)', ...both((run) => run.serverCpu, 0), '', ''],
        [
          'queries per server CPU-second',
          ...both(perCpu, 0),
          (of('strata', perCpu) / of('dnsmasq', perCpu)).toFixed(3),
          'info',
        ],
      ],
    );
    const idle = serverNames.filter((name) => of(name, (run) => run.serverCpu) < 90);
    if (idle.length > 0) {
      console.log(
        `   ${idle.join(' and ')} used under 90 % of a core: not saturated, dnsperf and the shared ` +
          `cores set the pace, so ${idle.length > 1 ? 'their' : 'its'} queries/s is a floor; ` +
          'queries per server CPU-second compares the servers themselves.',
      );
    }
    return {
      section: 'dns',
      verdicts: [
        {
          target: 'DNS queries/s, strata / dnsmasq',
          value: `${ratio.toFixed(3)} (${grouped(of('strata', (run) => run.qps))} / ${grouped(of('dnsmasq', (run) => run.qps))})`,
          limit: `>= ${qpsTarget}`,
          met: ratio >= qpsTarget,
        },
        {
          target: 'DNS answers lost by strata',
          value: `${lost} of ${grouped(sent)}`,
          limit: '0',
          met: lost === 0,
        },
      ],
      checks,
      data: {
        queries: queries.lines.length,
        runs: runs.map((run) => ({
          ...run,
          qps: round(run.qps, 0),
          latencyMs: round(run.latencyMs, 3),
          serverCpu: round(run.serverCpu, 0),
        })),
        qpsRatio: round(ratio, 3),
      },
    };
  } finally {
    for (const server of servers) server.child.kill('SIGTERM');
  }
}
