/**
 * npm run bench:mesh — what the ambient mesh costs (issue 6, Speed), mesh on against
 * mesh off, in one run on one `strata up --nodes 2` cluster:
 *   1. latency the two node proxies add to small HTTP requests at a fixed 1,000 req/s
 *      over 4 keep-alive connections (mesh-client.ts, open loop, measured from the time
 *      each request was due): p50/p90/p99 off and on, and the difference; target
 *      <= 0.3 ms added at p90 (anchor: Istio 1.22's ztunnel pair ~0.17 ms p90, ~0.20 ms
 *      p99);
 *   2. CPU and memory of one node proxy per 1,000 req/s: each node's proxy is its own
 *      process (`strata mesh-proxy`, started by the node's agent), so its share is its
 *      CPU (utime + stime) during the mesh-on run minus during the mesh-off run, per
 *      second, per 1,000 req/s, and its peak RSS during the mesh-on runs (and the
 *      anonymous part of it); targets <= 0.10 vCPU, <= 60 MB (anchors: ztunnel ~0.06
 *      vCPU / 12 MB, a sidecar ~0.20 vCPU / 60 MB);
 *   3. bulk throughput pod to pod through the tunnel: iperf3 `-t 5`, mesh on / mesh off;
 *      target >= 25 %.
 * Namespace `mesh-<run>` is labelled istio.io/dataplane-mode=ambient, `plain-<run>` is
 * not; each has a client pod on node-1 and a server pod on node-2 (mesh-server.ts on
 * 8080 and `iperf3 -s` on 5201). Off and on alternate, round by round (off first in
 * odd rounds, on first in even ones); the figures are medians over rounds.
 *
 * Correctness, checked on every run: with the mesh on, node-2's access log
 * (`nodes/node-2/mesh-access.log`) gets inbound lines with the client's SPIFFE ID (the
 * measured path is the mesh); with the mesh off it gets no line about the plain server.
 *
 * The cluster has a run-unique name and its state in a temporary directory; `strata
 * down` runs on every exit path, SIGINT included. Output: progress on stderr; on stdout
 * the tables, one verdict per target (MET or MISSED), the checks, load average at start
 * and end, and one JSON line. Exit 1 when a check failed, 2 for a bad command line, 130
 * when interrupted; a missed target alone is exit 0.
 *
 * Options: --quick (1 round of 3 s latency runs and 2 s iperf3 runs: a smoke run).
 *
 * This file is the spine (setup, the rounds); mesh-cluster.ts holds the cluster and
 * workloads, mesh-runs.ts one measurement run, mesh-report.ts the report.
 */
import { cpus, loadavg } from 'node:os';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { messageChain } from '../src/cni/errors.js';
import { type Check, check } from './services-report.js';
import {
  type NodeName,
  BenchCluster,
  children,
  httpPort,
  podSpec,
  run,
  runningPod,
  waitFor,
} from './mesh-cluster.js';
import {
  type IperfRun,
  type LatencyRun,
  type Mode,
  type Options,
  type Pair,
  iperfRun,
  latencyRun,
} from './mesh-runs.js';
import { figure, printReport } from './mesh-report.js';

const usage = 'Usage: node dist/bench/mesh.js [--quick]';
const trustDomain = 'cluster.local';

function parseOptions(argv: readonly string[]): Options | string {
  let quick = false;
  for (const arg of argv) {
    if (arg === '--quick') quick = true;
    else return `Unknown argument "${arg}"`;
  }
  return {
    quick,
    rounds: quick ? 1 : 3,
    latencySeconds: quick ? 3 : 10,
    warmupSeconds: 1,
    iperfRounds: quick ? 1 : 3,
    iperfSeconds: quick ? 2 : 5,
  };
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const parsed = parseOptions(argv);
  if (typeof parsed === 'string') {
    console.error(`${parsed}\n${usage}`);
    process.exitCode = 2;
    return;
  }
  const options = parsed;
  if (process.getuid?.() !== 0) {
    console.error('bench:mesh needs root (strata up: network namespaces, nftables)');
    process.exitCode = 1;
    return;
  }
  const started = process.hrtime.bigint();
  const command = ['node', relative(process.cwd(), fileURLToPath(import.meta.url)), ...argv].join(
    ' ',
  );
  const loadAtStart = loadavg();
  const cluster = new BenchCluster();
  const finish = (): void => {
    for (const child of children) child.kill('SIGKILL');
    progress(cluster.down());
  };
  const interrupt = (signal: NodeJS.Signals): void => {
    progress(`${signal}: stopping, strata down`);
    finish();
    process.exit(130);
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);

  console.log(
    `bench:mesh — ambient mesh on vs off on a two-node strata cluster; node ${process.version}; ` +
      `${cpus().length} cores; ${new Date().toISOString()}`,
  );
  console.log(`command: ${command}`);
  console.log(`load average at start: ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}`);

  const checks: Check[] = [];
  const latency: LatencyRun[] = [];
  const iperf: IperfRun[] = [];
  const pairs = {} as Record<Mode, Pair>;
  let pids: Record<NodeName, number>;
  try {
    progress(`strata up --nodes 2 --no-dns --name ${cluster.name} --state-dir ${cluster.stateDir}`);
    await cluster.up();
    pids = { 'node-1': cluster.meshProxyPid('node-1'), 'node-2': cluster.meshProxyPid('node-2') };
    const namespaces: Record<Mode, string> = {
      on: `mesh-${cluster.name}`,
      off: `plain-${cluster.name}`,
    };
    for (const mode of ['on', 'off'] as const) {
      const labels: Record<string, string> =
        mode === 'on' ? { 'istio.io/dataplane-mode': 'ambient' } : {};
      await cluster.client.create({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: namespaces[mode], labels },
      });
      await cluster.client.create(podSpec(namespaces[mode], 'client', 'node-1', false));
      await cluster.client.create(podSpec(namespaces[mode], 'server', 'node-2', true));
    }
    for (const mode of ['on', 'off'] as const) {
      pairs[mode] = {
        client: await runningPod(cluster, namespaces[mode], 'client'),
        server: await runningPod(cluster, namespaces[mode], 'server'),
        spiffe: `spiffe://${trustDomain}/ns/${namespaces[mode]}/sa/client`,
      };
    }
    progress(
      `pods: on ${pairs.on.client.ip} → ${pairs.on.server.ip}, off ${pairs.off.client.ip} → ${pairs.off.server.ip}`,
    );
    const enrolled = async (node: NodeName): Promise<string> =>
      (
        await run(
          'ip',
          [
            'netns',
            'exec',
            cluster.nodeNetns(node),
            'nft',
            'list',
            'set',
            'inet',
            'strata_mesh',
            'enrolled_v4',
          ],
          8000,
        )
      ).stdout;
    await waitFor('both nodes capturing the mesh pods', async () => {
      const [one, two] = await Promise.all([enrolled('node-1'), enrolled('node-2')]);
      return one.includes(pairs.on.client.ip) &&
        two.includes(pairs.on.server.ip) &&
        !one.includes(pairs.off.client.ip) &&
        !two.includes(pairs.off.server.ip)
        ? true
        : undefined;
    });
    // Both servers answer before anything is measured (and the mesh's certificates are issued).
    for (const mode of ['on', 'off'] as const) {
      await waitFor(`the ${mode} server answering`, async () => {
        const r = await run(
          'ip',
          [
            'netns',
            'exec',
            pairs[mode].client.netns,
            'curl',
            '-sS',
            '--max-time',
            '3',
            `http://${pairs[mode].server.ip}:${httpPort}/`,
          ],
          6000,
        );
        return r.code === 0 && r.stdout === 'ok\n' ? true : undefined;
      });
    }
    progress(`mesh proxies: node-1 pid ${pids['node-1']}, node-2 pid ${pids['node-2']}`);

    for (let r = 1; r <= options.rounds; r++) {
      const order: Mode[] = r % 2 === 1 ? ['off', 'on'] : ['on', 'off'];
      for (const mode of order) {
        progress(`latency round ${r}/${options.rounds}: mesh ${mode}`);
        const one = await latencyRun(cluster, pids, pairs[mode], mode, r, options);
        latency.push(one);
        progress(
          `  p50 ${figure(one.client.p50)} p90 ${figure(one.client.p90)} p99 ${figure(one.client.p99)} ms; ` +
            `${one.client.counted} counted, ${one.client.errors} errors; proxy CPU ` +
            `${figure(one.proxyCpu['node-1'])}/${figure(one.proxyCpu['node-2'])} vCPU; access-log lines ${one.accessLinesFromClient}`,
        );
      }
    }
    for (let r = 1; r <= options.iperfRounds; r++) {
      const order: Mode[] = r % 2 === 1 ? ['off', 'on'] : ['on', 'off'];
      for (const mode of order) {
        progress(`iperf3 round ${r}/${options.iperfRounds}: mesh ${mode}`);
        const one = await iperfRun(cluster, pairs[mode], mode, r, options);
        iperf.push(one);
        progress(`  ${figure(one.gbps, 2)} Gbit/s, ${one.retransmits} retransmits`);
      }
    }
  } catch (error) {
    checks.push(check('the benchmark ran to the end', false, messageChain(error)));
    progress(`FAILED: ${messageChain(error)}`);
  } finally {
    finish();
  }

  printReport({ options, started, command, loadAtStart, checks, latency, iperf, pairs });
}

main().catch((error: unknown) => {
  console.error(messageChain(error));
  process.exitCode = 1;
});
