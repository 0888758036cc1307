/**
 * npm run bench:cni — strata-cni + strata-ipam against the reference
 * `bridge` + `host-local` plugins, side by side in one run, with the same
 * network shape: ADD and DEL latency (p50, p90) over sequential runs, and the
 * wall time of 20 concurrent ADDs. Prints each ratio strata/reference.
 *
 * Everything happens in namespaces this script creates (a "node" namespace
 * standing in for the host, one namespace per pod) and is removed on exit.
 * The measuring process itself runs inside the node namespace, so neither
 * plugin pays for `ip netns exec`.
 *
 * Options: --runs N (default 40), --concurrent N (default 20), --rounds N
 * (concurrent rounds, default 3), --shape gateway|masquerade|all.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const strataCni = join(here, '..', 'bin', 'strata-cni');
const referenceDir = '/usr/lib/cni';

interface Options {
  runs: number;
  concurrent: number;
  rounds: number;
  shapes: Shape[];
}

type Shape = 'gateway' | 'masquerade';

function parseOptions(argv: string[]): Options {
  const get = (flag: string, fallback: string): string => {
    const i = argv.indexOf(flag);
    return i >= 0 && argv[i + 1] ? (argv[i + 1] as string) : fallback;
  };
  const shape = get('--shape', 'all');
  return {
    runs: Number(get('--runs', '40')),
    concurrent: Number(get('--concurrent', '20')),
    rounds: Number(get('--rounds', '3')),
    shapes: shape === 'all' ? ['gateway', 'masquerade'] : [shape as Shape],
  };
}

const tag = process.pid.toString(36);

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

interface Implementation {
  label: string;
  plugin: string;
  conf: (shape: Shape, dataDir: string, index: number) => Record<string, unknown>;
}

function shapeFields(shape: Shape): Record<string, unknown> {
  return { isGateway: true, isDefaultGateway: true, ipMasq: shape === 'masquerade' };
}

const implementations: Implementation[] = [
  {
    label: 'reference bridge + host-local',
    plugin: join(referenceDir, 'bridge'),
    conf: (shape, dataDir, index) => ({
      cniVersion: '1.0.0',
      name: `bench-ref-${shape}`,
      type: 'bridge',
      bridge: `brref${index}`,
      ...shapeFields(shape),
      ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: `10.211.${index}.0/24` }]] },
    }),
  },
  {
    label: 'strata-cni + strata-ipam',
    plugin: strataCni,
    conf: (shape, dataDir, index) => ({
      cniVersion: '1.0.0',
      name: `bench-strata-${shape}`,
      type: 'strata-cni',
      bridge: `brst${index}`,
      ...shapeFields(shape),
      ipam: { type: 'strata-ipam', dataDir, ranges: [[{ subnet: `10.212.${index}.0/24` }]] },
    }),
  },
];

function env(command: string, pod: string, id: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: id,
    CNI_NETNS: `/var/run/netns/${pod}`,
    CNI_IFNAME: 'eth0',
    CNI_PATH: `${dirname(strataCni)}:${referenceDir}`,
  };
}

/** One plugin call, timed from spawn to exit, in milliseconds. */
function timedCall(plugin: string, command: string, pod: string, id: string, conf: string): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(plugin, [], { input: conf, env: env(command, pod, id), encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`${plugin} ${command} failed: ${r.stdout} ${r.stderr}`);
  return ms;
}

function callAsync(
  plugin: string,
  command: string,
  pod: string,
  id: string,
  conf: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(plugin, [], {
      env: env(command, pod, id),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${plugin} ${command}: ${out}`));
    });
    child.stdin.end(conf);
  });
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] ?? NaN;
}

interface Row {
  metric: string;
  reference: number;
  strata: number;
}

async function measureShape(shape: Shape, options: Options, pods: () => string): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'strata-bench-'));
  try {
    const confs = implementations.map((impl, i) => JSON.stringify(impl.conf(shape, dataDir, i)));
    const samples = implementations.map(() => ({ add: [] as number[], del: [] as number[] }));
    // Warm-up: the first ADD creates the bridge (and nft/iptables tables); keep one pod attached
    // so every measured ADD finds the node as a running node would.
    const anchors = implementations.map((impl, i) => {
      const pod = pods();
      timedCall(impl.plugin, 'ADD', pod, `anchor${i}`, confs[i] as string);
      return pod;
    });
    for (let w = 0; w < 3; w++) {
      implementations.forEach((impl, i) => {
        const pod = pods();
        timedCall(impl.plugin, 'ADD', pod, `warm${w}`, confs[i] as string);
        timedCall(impl.plugin, 'DEL', pod, `warm${w}`, confs[i] as string);
      });
    }
    // Sequential runs, the implementations interleaved so drift on a shared machine hits both alike.
    const attached: string[][] = implementations.map(() => []);
    for (let r = 0; r < options.runs; r++) {
      implementations.forEach((impl, i) => {
        const pod = pods();
        samples[i]?.add.push(timedCall(impl.plugin, 'ADD', pod, `seq${r}`, confs[i] as string));
        attached[i]?.push(pod);
      });
    }
    for (let r = 0; r < options.runs; r++) {
      implementations.forEach((impl, i) => {
        const pod = attached[i]?.[r] as string;
        samples[i]?.del.push(timedCall(impl.plugin, 'DEL', pod, `seq${r}`, confs[i] as string));
      });
    }
    // Concurrent ADDs: all launched at once; wall time until the last one exits.
    const walls = implementations.map(() => [] as number[]);
    for (let round = 0; round < options.rounds; round++) {
      for (const [i, impl] of implementations.entries()) {
        const batch = Array.from({ length: options.concurrent }, () => pods());
        const start = process.hrtime.bigint();
        await Promise.all(
          batch.map((pod, k) =>
            callAsync(impl.plugin, 'ADD', pod, `par${round}x${k}`, confs[i] as string),
          ),
        );
        walls[i]?.push(Number(process.hrtime.bigint() - start) / 1e6);
        await Promise.all(
          batch.map((pod, k) =>
            callAsync(impl.plugin, 'DEL', pod, `par${round}x${k}`, confs[i] as string),
          ),
        );
      }
    }
    implementations.forEach((impl, i) => {
      timedCall(impl.plugin, 'DEL', anchors[i] as string, `anchor${i}`, confs[i] as string);
    });
    const [ref, st] = samples as [
      { add: number[]; del: number[] },
      { add: number[]; del: number[] },
    ];
    const [refWall, stWall] = walls as [number[], number[]];
    return [
      {
        metric: 'ADD p50 (ms)',
        reference: percentile(ref.add, 50),
        strata: percentile(st.add, 50),
      },
      {
        metric: 'ADD p90 (ms)',
        reference: percentile(ref.add, 90),
        strata: percentile(st.add, 90),
      },
      {
        metric: 'DEL p50 (ms)',
        reference: percentile(ref.del, 50),
        strata: percentile(st.del, 50),
      },
      {
        metric: 'DEL p90 (ms)',
        reference: percentile(ref.del, 90),
        strata: percentile(st.del, 90),
      },
      {
        metric: `${options.concurrent} concurrent ADDs, wall (ms, median of ${options.rounds})`,
        reference: percentile(refWall, 50),
        strata: percentile(stWall, 50),
      },
    ];
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const target = 1.25;

function report(shape: Shape, rows: Row[], options: Options): boolean {
  const lines = [
    `shape "${shape}": isGateway, isDefaultGateway, ipMasq ${shape === 'masquerade'}; IPv4 /24; ${options.runs} sequential runs each`,
    `${'metric'.padEnd(48)} ${'reference'.padStart(10)} ${'strata'.padStart(10)} ${'ratio'.padStart(7)}`,
  ];
  let ok = true;
  for (const row of rows) {
    const ratio = row.strata / row.reference;
    if (ratio > target) ok = false;
    lines.push(
      `${row.metric.padEnd(48)} ${row.reference.toFixed(2).padStart(10)} ${row.strata.toFixed(2).padStart(10)} ${ratio.toFixed(2).padStart(7)}${ratio > target ? '  > target' : ''}`,
    );
  }
  console.log(lines.join('\n') + '\n');
  return ok;
}

async function inside(options: Options): Promise<void> {
  let n = 0;
  const created: string[] = [];
  const pods = (): string => {
    const name = `stbp${tag}x${(n++).toString(36)}`;
    ip(['netns', 'add', name]);
    created.push(name);
    return name;
  };
  let allOk = true;
  try {
    for (const shape of options.shapes) {
      const rows = await measureShape(shape, options, pods);
      allOk = report(shape, rows, options) && allOk;
    }
  } finally {
    for (const ns of created) spawnSync('ip', ['netns', 'del', ns]);
  }
  console.log(allOk ? `every ratio <= ${target}` : `some ratios are above the target ${target}`);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) {
    console.error('bench:cni needs root (network namespaces)');
    process.exit(1);
  }
  if (process.argv.includes('--inside')) {
    await inside(options);
    return;
  }
  const node = `stbn${tag}`;
  ip(['netns', 'add', node]);
  const cleanup = (): void => {
    spawnSync('ip', ['netns', 'del', node]);
    // Pods this run created, should the inner process have died before its own cleanup.
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    for (const line of list.split('\n')) {
      const name = line.split(' ')[0];
      if (name?.startsWith(`stbp${tag}x`)) spawnSync('ip', ['netns', 'del', name]);
    }
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    console.log(
      `bench:cni — ${implementations.map((i) => i.label).join(' vs ')}; node ${process.version}; ${new Date().toISOString()}\n`,
    );
    const child = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        node,
        process.execPath,
        fileURLToPath(import.meta.url),
        '--inside',
        ...process.argv.slice(2),
      ],
      {
        stdio: 'inherit',
      },
    );
    process.exitCode = child.status ?? 1;
  } finally {
    cleanup();
  }
}

await main();
