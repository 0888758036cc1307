/**
 * The data path of bench:policy (policy.ts): iperf3 and a loop of new TCP connections
 * between two pods of the workload, bridged by cni0 in the node namespace with
 * br_netfilter on, with the 1,000 policies loaded, with a conntrack-only table, and with
 * no table at all, interleaved round by round. The pair is chosen with decide() so that
 * the server is isolated and a rule of the workload lets the client in, and the kernel is
 * checked to agree.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nftApplyAsync } from '../src/kernel/nft.js';
import { podCounterName, policyTable } from '../src/policy/compile.js';
import { type Decision, type SideDecision, decide } from '../src/policy/decide.js';
import { type PodPolicy, type PolicyInput, buildPolicyModel } from '../src/policy/model.js';
import type { ConnectResult } from './connection-rate.js';
import {
  type WiredPod,
  deleteTable,
  inPod,
  nodeName,
  sh,
  startServer,
  wireTopology,
} from './policy-lab.js';
import { policyShapes } from './policy-workload.js';

/** The spine, whose --probe, --connect-server and --connect-client modes run in the pods. */
const spine = join(dirname(fileURLToPath(import.meta.url)), 'policy.js');

const iperfPort = 5201;
const connectPort = 5202;

function counterPackets(name: string): number {
  const out = sh('nft', ['-j', 'list', 'counter', 'inet', policyTable, name]);
  const items = (JSON.parse(out) as { nftables: { counter?: { packets: number } }[] }).nftables;
  return items.find((i) => i.counter)?.counter?.packets ?? NaN;
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
  return Number.isNaN(n) ? '?' : String(n % policyShapes);
}

interface IperfJson {
  end: {
    sum_received: { bits_per_second: number; bytes: number; seconds: number };
    cpu_utilization_percent: { host_total: number; remote_total: number };
  };
}

/** No table at all (conntrack off in the node), a table that only turns conntrack on, the workload. */
export type Scenario = 'none' | 'conntrack' | 'policies';
const scenarios: readonly Scenario[] = ['none', 'conntrack', 'policies'];

/** The policy table's established fast path alone, at the same hook. */
const conntrackOnly = [
  `add table inet ${policyTable}`,
  `add chain inet ${policyTable} prerouting { type filter hook prerouting priority dstnat + 10; policy accept; }`,
  `add rule inet ${policyTable} prerouting ct state established,related accept`,
  '',
].join('\n');

export interface DataSample {
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

export interface DataPath {
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
      [process.execPath, spine, '--probe', to.ip, String(connectPort), '1000'],
      10_000,
    );
    return true;
  } catch {
    return false;
  }
}

/** Chooses and wires the pair, checks the kernel against decide(), then measures each scenario. */
export async function dataPath(
  input: PolicyInput,
  policies: string,
  options: { rounds: number; iperfSeconds: number; connectSeconds: number },
  podNamespace: (i: number) => string,
): Promise<DataPath> {
  const pair = choosePair(input);
  const [server, client, denied] = wireTopology(
    [pair.server, pair.client, pair.denied],
    podNamespace,
  ) as [WiredPod, WiredPod, WiredPod];
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
    [process.execPath, spine, '--connect-server', String(connectPort), String(servers)],
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
              spine,
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
