/**
 * What a cluster is made of, decided before anything is made: `planCluster`
 * turns `strata up`'s options into the names, addresses and ranges of
 * docs/cluster.md (the record cluster.json holds), or refuses with an error
 * naming the option. Pure: no file, namespace or process is touched here.
 */
import { join, resolve as resolvePath } from 'node:path';
import {
  type IpPrefix,
  formatIp,
  formatPrefix,
  lastAddress,
  networkAddress,
  parsePrefix,
  prefixesOverlap,
} from '../netaddr/ip.js';
import { checkWorkloadCertTtl } from '../mesh/certificates/lifetime.js';
import { trustDomainProblem } from '../mesh/identity/spiffe.js';
import { ClusterError } from './errors.js';

export type Backend = 'host-gw' | 'vxlan';
export const backends: readonly Backend[] = ['host-gw', 'vxlan'];

/** Which cluster a command is about: its name and its state directory. */
export interface ClusterTarget {
  name: string;
  stateDir: string;
}

export interface UpOptions extends Partial<ClusterTarget> {
  nodes?: number;
  clusterCidr?: string;
  serviceCidr?: string;
  underlayCidr?: string;
  backend?: string;
  /** The prefix length of each node's pod CIDR within the cluster CIDR. */
  nodeCidrMaskSize?: number;
  /** Install the cluster DNS (dns-addon.ts); true unless false, as kubeadm's addon/coredns phase. */
  dns?: boolean;
  /** The mesh's trust domain, which the controller's CA signs for; cluster.local by default. */
  trustDomain?: string;
  /** A directory with Istio's four plug-in CA files to use instead of a self-signed root. */
  pluginCa?: string;
  /** The lifetime of workload certificates, as written (`90s`, `1h`); 24 h, Istio's SECRET_TTL, when unset. */
  workloadCertTtl?: string;
}

export const clusterDefaults = {
  name: 'default',
  nodes: 1,
  clusterCidr: '10.244.0.0/16',
  serviceCidr: '10.96.0.0/16',
  underlayCidr: '172.31.0.0/24',
  backend: 'host-gw' as Backend,
  nodeCidrMaskSize: 24,
  trustDomain: 'cluster.local',
} as const;

/** The bridge in the underlay namespace that every node's eth0 hangs off. */
export const underlayBridge = 'underlay0';

/** Node IPs start at the underlay's network address + 11 (.11, .12, ...). */
const firstNodeHost = 11;

export interface NodePlan {
  name: string;
  netns: string;
  /** The node's address on the underlay, without its prefix length. */
  ip: string;
}

/** cluster.json without what `up` records as it goes (the processes). */
export interface ClusterPlan {
  name: string;
  stateDir: string;
  apiSocket: string;
  clusterCidr: string;
  nodeCidrMaskSize: number;
  serviceCidr: string;
  underlayCidr: string;
  backend: Backend;
  underlay: { netns: string; bridge: string };
  nodes: NodePlan[];
}

// RFC 1123 label, short enough that every name derived from it stays readable.
const clusterNamePattern = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;
/** sockaddr_un's sun_path holds 108 bytes, the terminating NUL included. */
const maxSocketPath = 107;

function optionError(message: string): ClusterError {
  return new ClusterError('STRATA_ERR_CLUSTER_OPTION', message);
}

/** The cluster name, checked: it becomes part of namespace names and paths. */
export function checkClusterName(name: string): string {
  if (!clusterNamePattern.test(name)) {
    throw optionError(
      `--name ${JSON.stringify(name)} is not a valid cluster name: use 1-40 lowercase letters, digits and '-', starting and ending with a letter or digit`,
    );
  }
  return name;
}

/** `/var/lib/strata/<name>`: where a cluster's state lives unless --state-dir says otherwise. */
export function defaultStateDir(name: string): string {
  return join('/var/lib/strata', name);
}

/** The cluster a command names with --name and --state-dir. */
export function resolveTarget(options: Partial<ClusterTarget>): ClusterTarget {
  const name = checkClusterName(options.name ?? clusterDefaults.name);
  // One spelling of the directory: `down` finds the cluster's processes by the state
  // directory on their command lines, so `dir/`, `./dir` and `dir` must all be the same.
  return { name, stateDir: resolvePath(options.stateDir ?? defaultStateDir(name)) };
}

/** The prefix of every network namespace of cluster `name`: nodes, underlay and pods. */
export function namespacePrefix(name: string): string {
  return `strata-${name}-`;
}

export function underlayNamespace(name: string): string {
  return `${namespacePrefix(name)}underlay`;
}

export function nodeNamespace(cluster: string, node: string): string {
  return `${namespacePrefix(cluster)}${node}`;
}

/**
 * Whether `netns` is one of cluster `name`'s namespaces: its underlay, a
 * node (`node-N`) or a pod (12 characters of the pod's uid). Another
 * cluster whose name starts with `<name>-` never matches: its suffixes are
 * longer, or hold letters a uid does not.
 */
export function isClusterNamespace(name: string, netns: string): boolean {
  const prefix = namespacePrefix(name);
  if (!netns.startsWith(prefix)) return false;
  return /^(underlay|node-\d+|[0-9a-f-]{12})$/.test(netns.slice(prefix.length));
}

function parseRange(option: string, text: string): IpPrefix {
  const prefix = parsePrefix(text);
  if (!prefix) {
    throw optionError(
      `${option} ${JSON.stringify(text)} is not a CIDR: expected address/length, for example ${clusterDefaults[optionKey(option)]}`,
    );
  }
  if (prefix.address.family !== 4) {
    throw optionError(
      `${option} ${text}: strata up builds IPv4 clusters only for now; give an IPv4 range`,
    );
  }
  return { address: networkAddress(prefix), length: prefix.length };
}

function optionKey(option: string): 'clusterCidr' | 'serviceCidr' | 'underlayCidr' {
  if (option === '--service-cidr') return 'serviceCidr';
  if (option === '--underlay-cidr') return 'underlayCidr';
  return 'clusterCidr';
}

function checkInteger(option: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw optionError(`${option} ${String(value)}: must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** The mesh's trust domain, checked as a SPIFFE trust domain. */
export function checkTrustDomain(trustDomain: string): string {
  const problem = trustDomainProblem(trustDomain);
  if (problem !== undefined) {
    throw optionError(`--trust-domain ${JSON.stringify(trustDomain)}: ${problem}`);
  }
  return trustDomain;
}

/** `--workload-cert-ttl`, checked: the lifetime in seconds the agents ask the CA for. */
export function workloadCertTtlSeconds(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const checked = checkWorkloadCertTtl(text);
  if (!checked.ok) throw optionError(`--workload-cert-ttl ${checked.problem}`);
  return checked.seconds;
}

/** The three ranges pairwise: any shared address is refused, naming both ranges. */
function checkOverlaps(ranges: readonly { option: string; prefix: IpPrefix }[]): void {
  for (const [i, a] of ranges.entries()) {
    for (const b of ranges.slice(i + 1)) {
      if (prefixesOverlap(a.prefix, b.prefix)) {
        throw optionError(
          `${a.option} ${formatPrefix(a.prefix)} and ${b.option} ${formatPrefix(b.prefix)} overlap: the cluster, service and underlay ranges must not share addresses`,
        );
      }
    }
  }
}

/** Validates `strata up`'s options and decides every name and address of the cluster. */
export function planCluster(options: UpOptions): ClusterPlan {
  const { name, stateDir } = resolveTarget(options);
  const nodes = checkInteger('--nodes', options.nodes ?? clusterDefaults.nodes, 1, 1000);
  const backend = options.backend ?? clusterDefaults.backend;
  if (!backends.includes(backend as Backend)) {
    throw optionError(
      `--backend ${JSON.stringify(backend)}: must be one of ${backends.join(', ')}`,
    );
  }
  checkTrustDomain(options.trustDomain ?? clusterDefaults.trustDomain);
  workloadCertTtlSeconds(options.workloadCertTtl);
  const cluster = parseRange('--cluster-cidr', options.clusterCidr ?? clusterDefaults.clusterCidr);
  const service = parseRange('--service-cidr', options.serviceCidr ?? clusterDefaults.serviceCidr);
  const underlay = parseRange(
    '--underlay-cidr',
    options.underlayCidr ?? clusterDefaults.underlayCidr,
  );
  checkOverlaps([
    { option: '--cluster-cidr', prefix: cluster },
    { option: '--service-cidr', prefix: service },
    { option: '--underlay-cidr', prefix: underlay },
  ]);

  const maskSize = checkInteger(
    '--node-cidr-mask-size',
    options.nodeCidrMaskSize ?? clusterDefaults.nodeCidrMaskSize,
    1,
    30,
  );
  if (maskSize < cluster.length) {
    throw optionError(
      `--cluster-cidr ${formatPrefix(cluster)} is smaller than one node's pod CIDR (/${maskSize}): give a /${maskSize} or larger range, or a longer --node-cidr-mask-size`,
    );
  }
  // Capped: a count beyond this is more than --nodes allows anyway.
  const podCidrs = 2 ** Math.min(maskSize - cluster.length, 20);
  if (nodes > podCidrs) {
    throw optionError(
      `--nodes ${nodes}: the cluster CIDR ${formatPrefix(cluster)} holds ${podCidrs} pod CIDRs of /${maskSize}, one per node`,
    );
  }
  const base = networkAddress(underlay).value;
  // The last usable host: below the broadcast address.
  const lastHost = lastAddress(underlay).value - 1n;
  const room = lastHost - base - BigInt(firstNodeHost) + 1n;
  if (BigInt(nodes) > room) {
    const hosts = room > 0n ? room : 0n;
    throw optionError(
      `--nodes ${nodes}: the underlay CIDR ${formatPrefix(underlay)} has addresses for ${hosts} nodes (node IPs start at its .${firstNodeHost})`,
    );
  }

  const apiSocket = join(stateDir, 'api.sock');
  if (Buffer.byteLength(apiSocket) > maxSocketPath) {
    throw optionError(
      `--state-dir ${stateDir} is too long: the API socket path ${apiSocket} must fit in ${maxSocketPath} bytes`,
    );
  }
  return {
    name,
    stateDir,
    apiSocket,
    clusterCidr: formatPrefix(cluster),
    nodeCidrMaskSize: maskSize,
    serviceCidr: formatPrefix(service),
    underlayCidr: formatPrefix(underlay),
    backend: backend as Backend,
    underlay: { netns: underlayNamespace(name), bridge: underlayBridge },
    nodes: Array.from({ length: nodes }, (_, i) => {
      const node = `node-${i + 1}`;
      const ip = formatIp({ family: 4, value: base + BigInt(firstNodeHost + i) });
      return { name: node, netns: nodeNamespace(name, node), ip };
    }),
  };
}

/** The flags that pick this cluster on a command line: empty for the default one. */
export function targetFlags(target: ClusterTarget): string {
  const flags: string[] = [];
  if (target.name !== clusterDefaults.name) flags.push(`--name ${target.name}`);
  if (target.stateDir !== defaultStateDir(target.name))
    flags.push(`--state-dir ${target.stateDir}`);
  return flags.map((flag) => ` ${flag}`).join('');
}
