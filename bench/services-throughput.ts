/**
 * Part 2 of bench:services: the data path through a ClusterIP (issue 5: iperf3 through
 * a Service >= 95 % of straight to the pod).
 *
 * Topology, all in namespaces of this run: a node namespace with a bridge cni0
 * (10.244.0.1/24, br_netfilter on with bridge-nf-call-iptables=1 and forwarding on, as
 * the agent sets a node up) and two pod namespaces on it by veth pairs, the server
 * 10.244.0.2 and the client 10.244.0.3, default route via the bridge. The node holds
 * the real strata table: Service bench/iperf, ClusterIP 10.96.0.50, ports 5201 (iperf3)
 * and 5202 (connection loop), the server pod its only endpoint, beside 999 Services × 10
 * endpoints of the workload, compiled by NodeServiceCompiler and loaded through an
 * NftContext in the node namespace.
 *
 * Three destinations, the order reversed each round (ABC CBA), medians:
 * - the pod IP: bridged both ways, the node's IP stack never sees the packets;
 * - the ClusterIP: the client's packets go to the gateway's MAC, are DNATed in nat
 *   prerouting and routed by the node back out of cni0; the replies are bridged back and
 *   un-NATed by conntrack through br_netfilter;
 * - for diagnosis only, a second address of the server pod (10.245.0.2/32) that the node
 *   routes to it: the ClusterIP's path without the DNAT, so the table shows what
 *   routing through the node costs and what the Service costs on top (the client ignores
 *   ICMP redirects, so it keeps going through the node).
 * Before measuring: the ClusterIP connects (nothing else owns 10.96.0.50, so only DNAT
 * can deliver) and a port the ClusterIP does not serve is refused at once by the table's
 * cluster-ips-check.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NftContext } from '../src/kernel/libnftables.js';
import { NodeServiceCompiler, servicesTable } from '../src/services/compile.js';
import { type ServiceInput, serviceKey, servicePortKey } from '../src/services/input.js';
import { renderTable } from '../src/services/nft-state.js';
import type { ConnectResult } from './connection-rate.js';
import { type BenchOptions, type Lab, mapElements, progress, sh } from './services-lab.js';
import {
  type Check,
  type SectionResult,
  check,
  median,
  printTable,
  round,
} from './services-report.js';
import { benchNode, endpointsFor, serviceWorkload, shapeOf } from './services-workload.js';

const spine = fileURLToPath(new URL('./services.js', import.meta.url));
const serverIp = '10.244.0.2';
const clientIp = '10.244.0.3';
const gateway = '10.244.0.1';
const routedIp = '10.245.0.2';
const clusterIp = '10.96.0.50';
const iperfPort = 5201;
const connectPort = 5202;
const throughputTarget = 0.95;

type Destination = 'pod IP' | 'routed' | 'ClusterIP';
const destinations: readonly Destination[] = ['pod IP', 'routed', 'ClusterIP'];
const addressOf: Record<Destination, string> = {
  'pod IP': serverIp,
  routed: routedIp,
  ClusterIP: clusterIp,
};

const iperfService: ServiceInput = {
  namespace: 'bench',
  name: 'iperf',
  type: 'ClusterIP',
  clusterIps: [clusterIp],
  ports: [
    { name: 'iperf', protocol: 'TCP', port: iperfPort },
    { name: 'connect', protocol: 'TCP', port: connectPort },
  ],
  internalTrafficPolicy: 'Cluster',
  externalTrafficPolicy: 'Cluster',
};

/** `ip -n <netns> <words>`. */
function ipIn(netns: string, words: string): void {
  sh('ip', ['-n', netns, ...words.split(' ')]);
}

function sysctl(netns: string, setting: string): void {
  sh('ip', ['netns', 'exec', netns, 'sysctl', '-qw', setting]);
}

function wire(lab: Lab): { node: string; server: string; client: string } {
  const node = lab.namespace('node');
  const server = lab.namespace('pod-server');
  const client = lab.namespace('pod-client');
  ipIn(node, 'link add cni0 type bridge');
  ipIn(node, `addr add ${gateway}/24 dev cni0`);
  ipIn(node, 'link set cni0 up');
  sysctl(node, 'net.ipv4.ip_forward=1');
  sysctl(node, 'net.bridge.bridge-nf-call-iptables=1');
  const setting = ['netns', 'exec', node, 'sysctl', '-n', 'net.bridge.bridge-nf-call-iptables'];
  if (sh('ip', setting).trim() !== '1') {
    throw new Error('bridge-nf-call-iptables is not 1 in the node namespace');
  }
  for (const [pod, ip, veth] of [
    [server, serverIp, 'veth-server'],
    [client, clientIp, 'veth-client'],
  ] as const) {
    ipIn(node, `link add ${veth} type veth peer name eth0 netns ${pod}`);
    ipIn(node, `link set ${veth} master cni0 up`);
    ipIn(pod, `addr add ${ip}/24 dev eth0`);
    ipIn(pod, 'link set eth0 up');
    ipIn(pod, `route add default via ${gateway}`);
  }
  ipIn(server, `addr add ${routedIp}/32 dev eth0`);
  ipIn(node, `route add ${routedIp}/32 via ${serverIp} dev cni0`);
  sysctl(client, 'net.ipv4.conf.all.accept_redirects=0');
  sysctl(client, 'net.ipv4.conf.eth0.accept_redirects=0');
  return { node, server, client };
}

/** The strata table in the node: the iperf Service and 999 of the workload's. */
async function program(node: string): Promise<{ servicePorts: number; loaded: number }> {
  const services = serviceWorkload(999);
  const compiler = new NodeServiceCompiler(benchNode);
  for (const ws of services) {
    compiler.setService(ws.key, ws.service);
    compiler.setEndpoints(ws.key, endpointsFor(ws));
  }
  const key = serviceKey(iperfService.namespace, iperfService.name);
  compiler.setService(key, iperfService);
  const endpoint = { address: serverIp, ready: true, serving: true, terminating: false };
  compiler.setEndpoints(
    key,
    new Map(
      iperfService.ports.map((p) => [
        servicePortKey(iperfService, p),
        [{ ...endpoint, port: p.port, nodeName: benchNode.name }],
      ]),
    ),
  );
  const context = await NftContext.open(`/var/run/netns/${node}`);
  try {
    await context.run(renderTable(compiler.build()));
  } finally {
    await context.close();
  }
  const loaded = mapElements(node, `inet ${servicesTable}`, 'service-ips-v4');
  return { servicePorts: shapeOf(services).servicePorts + iperfService.ports.length, loaded };
}

interface IperfJson {
  end: { sum_received: { bits_per_second: number } };
}

interface Sample {
  round: number;
  to: Destination;
  gbits: number;
  connectionsPerSecond: number;
  failures: Record<string, number>;
}

async function measure(
  lab: Lab,
  client: string,
  to: Destination,
  round: number,
  options: BenchOptions,
): Promise<Sample> {
  const host = addressOf[to];
  const seconds = String(options.iperfSeconds);
  const iperfArgs = ['iperf3', '-c', host, '-p', String(iperfPort), '-t', seconds, '-J'];
  const iperfOut = await lab.exec(client, iperfArgs, (options.iperfSeconds + 20) * 1000);
  const iperf = JSON.parse(iperfOut.stdout) as IperfJson;
  const connect = [spine, '--connect-client', host, String(connectPort)];
  const connOut = await lab.exec(
    client,
    [process.execPath, ...connect, String(options.connectSeconds)],
    (options.connectSeconds + 20) * 1000,
  );
  const conn = JSON.parse(connOut.stdout) as ConnectResult;
  return {
    round,
    to,
    gbits: iperf.end.sum_received.bits_per_second / 1e9,
    connectionsPerSecond: conn.connections / conn.seconds,
    failures: conn.failures,
  };
}

export async function throughputSection(lab: Lab, options: BenchOptions): Promise<SectionResult> {
  const { node, server, client } = wire(lab);
  const table = await program(node);
  const checks: Check[] = [
    check(
      'strata table loaded in the node',
      table.loaded === table.servicePorts,
      `service-ips-v4 holds ${table.loaded} elements, expected ${table.servicePorts}`,
    ),
  ];
  const perRound = options.iperfSeconds + options.connectSeconds + 30;
  const lifetime = String(perRound * options.iperfRounds * destinations.length + 60);
  const iperfServer = ['timeout', lifetime, 'iperf3', '-s', '-p', String(iperfPort)];
  const connectServer = [process.execPath, spine, '--connect-server', String(connectPort)];
  const servers: ChildProcess[] = [
    await lab.start(server, [...iperfServer, '--forceflush'], /listening/),
    await lab.start(server, [...connectServer, lifetime], /ready/),
  ];
  try {
    const probe = async (host: string, port: number): Promise<string> => {
      const args = [process.execPath, spine, '--probe', host, String(port), '1000'];
      return (await lab.exec(client, args, 10_000)).stdout.trim();
    };
    const viaService = await probe(clusterIp, connectPort);
    const unserved = await probe(clusterIp, connectPort + 1);
    checks.push(
      check(
        'the ClusterIP is DNATed to the server, and a port it does not serve is refused',
        viaService === 'connected' && unserved === 'ECONNREFUSED',
        `${clusterIp}:${connectPort} ${viaService}; ${clusterIp}:${connectPort + 1} ${unserved}`,
      ),
    );
    if (viaService !== 'connected') {
      throw new Error(`${clusterIp}:${connectPort} does not connect: ${viaService}`);
    }

    const samples: Sample[] = [];
    for (let r = 0; r < options.iperfRounds; r++) {
      for (const to of r % 2 === 0 ? destinations : [...destinations].reverse()) {
        const sample = await measure(lab, client, to, r + 1, options);
        samples.push(sample);
        const failed = Object.entries(sample.failures).map(([why, n]) => `, ${n} failed (${why})`);
        progress(
          `  round ${r + 1}/${options.iperfRounds} ${to.padEnd(9)} ${sample.gbits.toFixed(2)} Gbit/s, ` +
            `${sample.connectionsPerSecond.toFixed(0)} connections/s${failed.join('')}`,
        );
      }
    }
    const of = (to: Destination, f: (s: Sample) => number): number =>
      median(samples.filter((s) => s.to === to).map(f));
    const gbits = (s: Sample): number => s.gbits;
    const rate = (s: Sample): number => s.connectionsPerSecond;
    const ratio = (f: (s: Sample) => number, to: Destination): number =>
      of('ClusterIP', f) / of(to, f);
    console.log(
      `\n2. Data path: iperf3 -t ${options.iperfSeconds} and ${options.connectSeconds} s of new TCP connections, ` +
        `client pod → server pod on cni0 (br_netfilter on), strata table with ${table.loaded} service ports ` +
        `in the node; medians of ${options.iperfRounds} rounds. "routed": the server's ${routedIp}, ` +
        'routed by the node like the ClusterIP but not DNATed (diagnosis)',
    );
    const row = (label: string, f: (s: Sample) => number, digits: number, target: string) => [
      label,
      ...destinations.map((to) => of(to, f).toFixed(digits)),
      ratio(f, 'pod IP').toFixed(3),
      ratio(f, 'routed').toFixed(3),
      target,
    ];
    // The machine is shared: rounds move a lot, so show how much, and the ratio within
    // each round (its two runs are minutes apart at most).
    const range = (values: number[], digits: number): string =>
      `${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)}`;
    const values = (to: Destination, f: (s: Sample) => number): number[] =>
      samples.filter((s) => s.to === to).map(f);
    const paired = (f: (s: Sample) => number, to: Destination): number[] => {
      const base = values(to, f);
      return values('ClusterIP', f).map((v, i) => v / (base[i] ?? NaN));
    };
    const spread = (f: (s: Sample) => number, digits: number): string[][] => [
      [
        '  min-max over rounds',
        ...destinations.map((to) => range(values(to, f), digits)),
        range(paired(f, 'pod IP'), 2),
        range(paired(f, 'routed'), 2),
        '',
      ],
      [
        '  median of the per-round ratios',
        '',
        '',
        '',
        median(paired(f, 'pod IP')).toFixed(3),
        median(paired(f, 'routed')).toFixed(3),
        '',
      ],
    ];
    printTable(
      ['measure', ...destinations, 'ClusterIP/pod IP', 'ClusterIP/routed', 'target'],
      [
        row('iperf3 Gbit/s (medians)', gbits, 2, `>= ${throughputTarget}`),
        ...spread(gbits, 2),
        row('new connections/s (medians)', rate, 0, 'info'),
        ...spread(rate, 0),
      ],
    );
    const met = ratio(gbits, 'pod IP') >= throughputTarget;
    const gbitsText = `${of('ClusterIP', gbits).toFixed(2)} / ${of('pod IP', gbits).toFixed(2)} Gbit/s`;
    return {
      section: 'throughput',
      verdicts: [
        {
          target: 'iperf3 through the ClusterIP / to the pod IP',
          value: `${ratio(gbits, 'pod IP').toFixed(3)} (${gbitsText})`,
          limit: `>= ${throughputTarget}`,
          met,
        },
      ],
      checks,
      data: {
        servicePorts: table.loaded,
        samples: samples.map((s) => ({
          ...s,
          gbits: round(s.gbits, 3),
          connectionsPerSecond: round(s.connectionsPerSecond, 1),
        })),
        throughput: {
          overPodIp: round(ratio(gbits, 'pod IP'), 3),
          overRouted: round(ratio(gbits, 'routed'), 3),
        },
        connectionRate: {
          overPodIp: round(ratio(rate, 'pod IP'), 3),
          overRouted: round(ratio(rate, 'routed'), 3),
        },
      },
    };
  } finally {
    for (const child of servers) child.kill('SIGTERM');
  }
}
