/**
 * npm run bench:cluster — how fast the local cluster does its job:
 *   1. `strata up --nodes 2` until every node is Ready;
 *   2. a Deployment of 100 replicas until every pod is Running with an IP;
 *   3. deleting it until every pod, network namespace and address is freed.
 * Targets on this machine (issue 3): up <= 3 s, 100 pods <= 15 s, no leak.
 * There is no peer that runs here to measure side by side (kind needs
 * Docker); the anchors are Kubernetes' pod start-up SLO (p99 <= 5 s per
 * stateless pod) and kind's tens of seconds to create a cluster, printed as
 * ratios against these figures.
 *
 * Options: --replicas N (default 100), --backend host-gw|vxlan.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../src/client/index.js';
import type { KubeObject } from '../src/api/types.js';
import { parseIp } from '../src/netaddr/ip.js';

const strata = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'strata');

function arg(flag: string, fallback: string): string {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

function cli(args: string[]): void {
  const r = spawnSync(process.execPath, [strata, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`strata ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
}

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function clusterNamespaces(name: string): string[] {
  const out = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`strata-${name}-`));
}

function allocationCount(stateDir: string): number {
  const nodes = join(stateDir, 'nodes');
  if (!existsSync(nodes)) return 0;
  let count = 0;
  for (const node of readdirSync(nodes)) {
    const ipam = join(nodes, node, 'ipam');
    if (!existsSync(ipam)) continue;
    for (const network of readdirSync(ipam)) {
      count += readdirSync(join(ipam, network)).filter((f) => parseIp(f) !== undefined).length;
    }
  }
  return count;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:cluster needs root (network namespaces)');
  const replicas = Number(arg('--replicas', '100'));
  const backend = arg('--backend', 'host-gw');
  const name = `b${process.pid.toString(36)}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'strata-bench-cluster-'));
  console.log(
    `bench:cluster — ${replicas} replicas, backend ${backend}; node ${process.version}; ${new Date().toISOString()}\n`,
  );
  const rows: [string, number, number][] = [];
  try {
    let t = Date.now();
    cli(['up', '--nodes', '2', '--backend', backend, '--name', name, '--state-dir', stateDir]);
    rows.push(['strata up --nodes 2 to Ready (s)', (Date.now() - t) / 1000, 3]);

    const client = new ApiClient({ socketPath: join(stateDir, 'api.sock') });
    const pods = { group: '', version: 'v1', plural: 'pods', namespaced: true, kind: 'Pod' };
    const deployments = {
      group: 'apps',
      version: 'v1',
      plural: 'deployments',
      namespaced: true,
      kind: 'Deployment',
    };
    const deployment: KubeObject = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'bench', namespace: 'default' },
      spec: {
        replicas,
        selector: { matchLabels: { app: 'bench' } },
        template: {
          metadata: { labels: { app: 'bench' } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{ name: 'sleep', image: 'none', command: ['sleep', '3600'] }],
          },
        },
      },
    };
    t = Date.now();
    await client.create(deployment);
    await until(`${replicas} pods Running with an IP`, 120_000, async () => {
      const list = await client.list(pods, { namespace: 'default', labelSelector: 'app=bench' });
      const running = list.items.filter(
        (p) =>
          (p.status as { phase?: string; podIP?: string } | undefined)?.phase === 'Running' &&
          (p.status as { podIP?: string }).podIP,
      );
      return running.length === replicas ? true : undefined;
    });
    rows.push([`${replicas} pods Running with IPs (s)`, (Date.now() - t) / 1000, 15]);

    t = Date.now();
    await client.delete(deployments, 'bench', { namespace: 'default' });
    await until('every pod, namespace and address freed', 120_000, async () => {
      const list = await client.list(pods, { namespace: 'default', labelSelector: 'app=bench' });
      const podNamespaces = clusterNamespaces(name).filter(
        (n) => !n.endsWith('-underlay') && !/-node-\d+$/.test(n),
      );
      return list.items.length === 0 &&
        podNamespaces.length === 0 &&
        allocationCount(stateDir) === 0
        ? true
        : undefined;
    });
    rows.push(['delete until everything is freed (s)', (Date.now() - t) / 1000, 15]);
    client.close();
  } finally {
    spawnSync(process.execPath, [strata, 'down', '--name', name, '--state-dir', stateDir], {
      stdio: 'inherit',
    });
    rmSync(stateDir, { recursive: true, force: true });
  }
  const leftovers = clusterNamespaces(name);
  console.log(
    `${'measure'.padEnd(44)} ${'seconds'.padStart(8)} ${'target'.padStart(7)} ${'ratio'.padStart(6)}`,
  );
  for (const [label, seconds, target] of rows) {
    console.log(
      `${label.padEnd(44)} ${seconds.toFixed(2).padStart(8)} ${target.toFixed(0).padStart(7)} ${(seconds / target).toFixed(2).padStart(6)}`,
    );
  }
  console.log(
    `\nnamespaces left after down: ${leftovers.length === 0 ? 'none' : leftovers.join(' ')}`,
  );
  console.log(
    'anchors: kind creates a cluster in tens of seconds; Kubernetes SLO: pod start-up p99 <= 5 s each',
  );
  if (leftovers.length > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error((error as Error).message);
  process.exitCode = 1;
});
