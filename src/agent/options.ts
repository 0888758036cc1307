/**
 * The node agent's settings: what `strata agent` is given on its command
 * line (docs/cluster.md, "Components"), the defaults, and the paths of the
 * node's state directory they imply.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ApiTarget } from '../client/index.js';
import type { LogRotationLimits } from './container-logs.js';
import { checkWorkloadCertTtl, workloadCertTtlProblem } from '../mesh/certificates/lifetime.js';
import { type IpAddress, type IpPrefix, parseIp, parsePrefix } from '../netaddr/ip.js';

/** How pod traffic reaches other nodes: routed on the underlay, or in a VXLAN overlay (Flannel's layout). */
export type Backend = 'host-gw' | 'vxlan';

export interface AgentOptions {
  /** The cluster's state directory; the agent keeps its own under `nodes/<node>/`. */
  stateDir: string;
  /** The API server: a unix socket path, `unix:///path` or `http://host:port`. */
  api: ApiTarget;
  nodeName: string;
  /** The node's address on the underlay (its InternalIP). */
  nodeIp: string;
  backend: Backend;
  /** Names pod network namespaces (`strata-<cluster>-<uid>`); `default` when unset. */
  cluster?: string;
  /** Where CNI plugins are looked for; strata's own dist/bin, then /opt/cni/bin, when unset. */
  cniBinDirs?: readonly string[];
  /** Use the network configuration found in this directory instead of writing strata's own conflist. */
  cniConfDir?: string;
  /** Destinations never masqueraded besides every node's pod CIDR (the cluster CIDR, when known). */
  clusterCidr?: string;
  /** The Services' virtual address range: routed out of the node's link, so the node's own traffic reaches the NAT rules. */
  serviceCidr?: string;
  /** The cluster DNS server(s) pods get in resolv.conf (kubelet's --cluster-dns); none when unset. */
  clusterDns?: readonly string[];
  /** The cluster's DNS domain (kubelet's --cluster-domain); `cluster.local` when unset. */
  clusterDomain?: string;
  /** The underlay link of the node; `eth0` when unset. */
  nodeInterface?: string;
  /** How often the Ready condition is refreshed; 10 s (kubelet's nodeStatusUpdateFrequency). */
  heartbeatIntervalMs?: number;
  /** How often pods that vanished without a watch event are looked for; 30 s. */
  housekeepingIntervalMs?: number;
  /** A container log larger than this is rotated; 10 MiB (kubelet's containerLogMaxSize). */
  containerLogMaxBytes?: number;
  /** Log files kept per container, the one written included; 3, at least 2. */
  containerLogMaxFiles?: number;
  /** How often container logs are checked for rotation; 10 s (kubelet's containerLogMonitorInterval). */
  containerLogMonitorIntervalMs?: number;
  /** The controller's mesh CA service (`<state>/ca.sock`); the mesh runs only with caTokenFile too. */
  caSocket?: string;
  /** This node's CA token (`<state>/nodes/<node>/ca-token`). */
  caTokenFile?: string;
  /** The mesh's trust domain; `cluster.local` when unset. */
  trustDomain?: string;
  /** The lifetime asked of the CA for workload certificates, in seconds; the CA's default (24 h) when unset. */
  workloadCertTtlSeconds?: number;
  /** Where the agent reports what it does; stderr when unset. */
  log?: (line: string) => void;
  /** Aborts a start that is still waiting (for the API server, for the pod CIDR). */
  signal?: AbortSignal;
}

/** The options with every default filled and every value checked. */
export interface AgentSettings {
  stateDir: string;
  api: ApiTarget;
  nodeName: string;
  nodeIp: IpAddress;
  nodeIpText: string;
  backend: Backend;
  cluster: string;
  cniBinDirs: readonly string[];
  /** The agent writes its own conflist into netDir (false with --cni-conf-dir). */
  writesConflist: boolean;
  clusterCidr?: IpPrefix;
  serviceCidr?: IpPrefix;
  clusterDns: readonly string[];
  clusterDomain: string;
  nodeInterface: string;
  heartbeatIntervalMs: number;
  housekeepingIntervalMs: number;
  containerLogs: LogRotationLimits;
  containerLogMonitorIntervalMs: number;
  log: (line: string) => void;
  /** The ambient mesh (src/agent/mesh.ts): on only when both CA paths are given. */
  mesh?: {
    caSocket: string;
    caTokenFile: string;
    trustDomain: string;
    /** Undefined: the CA's default lifetime. */
    workloadCertTtlSeconds?: number;
  };
  /** `<stateDir>/nodes/<node>`, and the paths docs/cluster.md lays out under it. */
  nodeDir: string;
  netDir: string;
  cniCacheDir: string;
  ipamDir: string;
  podsDir: string;
}

/** A command line or option the agent cannot run with; the message says which and why. */
export class AgentUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentUsageError';
  }
}

/** dist/bin next to the compiled agent (dist/src/agent): strata-cni and strata-ipam. */
export const bundledCniBinDir = fileURLToPath(new URL('../../bin', import.meta.url));

/** A DNS-1123 subdomain, as a Node's name must be. */
const nodeNamePattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const clusterNamePattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** The mesh's flags, as `strata agent` takes them and passes them on to `strata mesh-proxy`. */
export const meshFlagOptions = {
  'ca-socket': { type: 'string' },
  'ca-token-file': { type: 'string' },
  'trust-domain': { type: 'string' },
  'workload-cert-ttl': { type: 'string' },
} as const;

/** Why `domain` cannot be the mesh's trust domain (a DNS-1123 subdomain), or undefined. */
export function trustDomainProblem(domain: string): string | undefined {
  return nodeNamePattern.test(domain) && domain.length <= 253
    ? undefined
    : `--trust-domain must be a DNS-1123 subdomain: got ${JSON.stringify(domain)}`;
}

function stderrLog(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

/** Fills the defaults and checks the options; AgentUsageError names the bad one. */
export function resolveSettings(options: AgentOptions): AgentSettings {
  const { nodeName, stateDir } = options;
  if (!nodeNamePattern.test(nodeName) || nodeName.length > 253) {
    throw new AgentUsageError(
      `--node must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.'): got ${JSON.stringify(nodeName)}`,
    );
  }
  const nodeIp = parseIp(options.nodeIp);
  if (nodeIp?.family !== 4) {
    throw new AgentUsageError(
      `--node-ip must be an IPv4 address: got ${JSON.stringify(options.nodeIp)}`,
    );
  }
  if (options.backend !== 'host-gw' && options.backend !== 'vxlan') {
    throw new AgentUsageError(
      `--backend must be host-gw or vxlan: got ${JSON.stringify(options.backend)}`,
    );
  }
  const cluster = options.cluster ?? 'default';
  if (!clusterNamePattern.test(cluster) || cluster.length > 40) {
    throw new AgentUsageError(
      `--cluster must be a DNS-1123 label of at most 40 characters: got ${JSON.stringify(cluster)}`,
    );
  }
  let clusterCidr: IpPrefix | undefined;
  if (options.clusterCidr !== undefined) {
    clusterCidr = parsePrefix(options.clusterCidr);
    if (clusterCidr?.address.family !== 4) {
      throw new AgentUsageError(
        `--cluster-cidr must be an IPv4 CIDR: got ${JSON.stringify(options.clusterCidr)}`,
      );
    }
  }
  let serviceCidr: IpPrefix | undefined;
  if (options.serviceCidr !== undefined) {
    serviceCidr = parsePrefix(options.serviceCidr);
    if (serviceCidr?.address.family !== 4) {
      throw new AgentUsageError(
        `--service-cidr must be an IPv4 CIDR: got ${JSON.stringify(options.serviceCidr)}`,
      );
    }
  }
  const clusterDns = options.clusterDns ?? [];
  for (const server of clusterDns) {
    if (parseIp(server) === undefined) {
      throw new AgentUsageError(
        `--cluster-dns must be an IP address: got ${JSON.stringify(server)}`,
      );
    }
  }
  const clusterDomain = options.clusterDomain ?? 'cluster.local';
  if (!nodeNamePattern.test(clusterDomain) || clusterDomain.length > 253) {
    throw new AgentUsageError(
      `--cluster-domain must be a DNS-1123 subdomain: got ${JSON.stringify(clusterDomain)}`,
    );
  }
  if (stateDir === '') throw new AgentUsageError('--state-dir must not be empty');
  if (options.cniConfDir === '') throw new AgentUsageError('--cni-conf-dir must not be empty');
  const logMaxBytes = options.containerLogMaxBytes ?? 10 * 1024 * 1024;
  if (!Number.isSafeInteger(logMaxBytes) || logMaxBytes < 1) {
    throw new AgentUsageError(
      `--container-log-max-size must be a positive size: got ${String(logMaxBytes)}`,
    );
  }
  const logMaxFiles = options.containerLogMaxFiles ?? 3;
  if (!Number.isSafeInteger(logMaxFiles) || logMaxFiles < 2) {
    throw new AgentUsageError(
      `--container-log-max-files must be an integer of at least 2: got ${String(logMaxFiles)}`,
    );
  }
  const logIntervalMs = options.containerLogMonitorIntervalMs ?? 10_000;
  if (!Number.isFinite(logIntervalMs) || logIntervalMs < 10) {
    throw new AgentUsageError(
      `--container-log-monitor-interval must be at least 10ms: got ${String(logIntervalMs)}ms`,
    );
  }
  if ((options.caSocket === undefined) !== (options.caTokenFile === undefined)) {
    throw new AgentUsageError('--ca-socket and --ca-token-file go together (the mesh needs both)');
  }
  if (options.caSocket === '' || options.caTokenFile === '') {
    throw new AgentUsageError('--ca-socket and --ca-token-file must not be empty');
  }
  const trustDomain = options.trustDomain ?? 'cluster.local';
  const domainProblem = trustDomainProblem(trustDomain);
  if (domainProblem !== undefined) throw new AgentUsageError(domainProblem);
  const ttl = options.workloadCertTtlSeconds;
  const ttlProblem = ttl === undefined ? undefined : workloadCertTtlProblem(ttl);
  if (ttlProblem !== undefined) {
    throw new AgentUsageError(`--workload-cert-ttl ${ttlProblem}: got ${String(ttl)}s`);
  }
  const mesh =
    options.caSocket !== undefined && options.caTokenFile !== undefined
      ? {
          caSocket: options.caSocket,
          caTokenFile: options.caTokenFile,
          trustDomain,
          ...(ttl === undefined ? {} : { workloadCertTtlSeconds: ttl }),
        }
      : undefined;
  const nodeDir = join(stateDir, 'nodes', nodeName);
  return {
    stateDir,
    api: options.api,
    nodeName,
    nodeIp,
    nodeIpText: options.nodeIp,
    backend: options.backend,
    cluster,
    cniBinDirs: options.cniBinDirs?.length
      ? options.cniBinDirs
      : [bundledCniBinDir, '/opt/cni/bin'],
    writesConflist: options.cniConfDir === undefined,
    clusterCidr,
    serviceCidr,
    clusterDns,
    clusterDomain,
    nodeInterface: options.nodeInterface ?? 'eth0',
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 10_000,
    housekeepingIntervalMs: options.housekeepingIntervalMs ?? 30_000,
    containerLogs: { maxBytes: logMaxBytes, maxFiles: logMaxFiles },
    containerLogMonitorIntervalMs: logIntervalMs,
    log: options.log ?? stderrLog,
    ...(mesh === undefined ? {} : { mesh }),
    nodeDir,
    netDir: options.cniConfDir ?? join(nodeDir, 'net.d'),
    cniCacheDir: join(nodeDir, 'cni-cache'),
    ipamDir: join(nodeDir, 'ipam'),
    podsDir: join(nodeDir, 'pods'),
  };
}

export const agentUsage = `Usage: strata agent --state-dir DIR --api SOCKET --node NAME --node-ip IP --backend host-gw|vxlan
                    [--cluster NAME] [--cni-bin-dir DIR]... [--cni-conf-dir DIR]
                    [--cluster-cidr CIDR] [--service-cidr CIDR] [--cluster-dns IP]...
                    [--cluster-domain DOMAIN] [--container-log-max-size SIZE]
                    [--container-log-max-files N] [--container-log-monitor-interval DURATION]
                    [--ca-socket SOCKET --ca-token-file FILE [--trust-domain DOMAIN]
                     [--workload-cert-ttl DURATION]]

Runs the node agent inside the node's network namespace: registers the Node, runs the
pods bound to it (network namespace, CNI, processes), routes to other nodes' pods, and
programs NetworkPolicy and Service virtual IPs in nftables. Pods get a resolv.conf naming
--cluster-dns with the search path of --cluster-domain (cluster.local).
Container logs are rotated past --container-log-max-size (10Mi; bytes, or Ki, Mi, Gi),
keeping --container-log-max-files files each (3), checked every
--container-log-monitor-interval (10s; ms, s or m).
With --ca-socket and --ca-token-file (the controller's mesh CA service and this node's
token) the agent also runs the node's ambient mesh proxy (docs/mesh.md) for the
--trust-domain (cluster.local), asking the CA for workload certificates that last
--workload-cert-ttl (the CA's default, 24h; 10s to 2160h, e.g. 90s, 1h30m), rotated at
half life.
`;

const sizeUnits: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };

/** `4096`, `512Ki`, `10Mi`, `1Gi`: a size in bytes, as kubelet's quantities. */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+)(Ki|Mi|Gi)?$/.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * (sizeUnits[match[2] ?? ''] ?? 1);
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** `500ms`, `10s`, `1m`: a duration in milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)(ms|s|m)$/.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * (durationUnits[match[2] ?? ''] ?? 1);
}

/** `--workload-cert-ttl`'s seconds; AgentUsageError naming the flag for a bad duration. */
function workloadCertTtl(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const checked = checkWorkloadCertTtl(text);
  if (!checked.ok) throw new AgentUsageError(`--workload-cert-ttl ${checked.problem}`);
  return checked.seconds;
}

/** Parses `strata agent` arguments; AgentUsageError on anything missing or unknown. */
export function parseAgentArgs(argv: readonly string[]): AgentOptions {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        'state-dir': { type: 'string' },
        api: { type: 'string' },
        node: { type: 'string' },
        'node-ip': { type: 'string' },
        backend: { type: 'string' },
        cluster: { type: 'string' },
        'cni-bin-dir': { type: 'string', multiple: true },
        'cni-conf-dir': { type: 'string' },
        'cluster-cidr': { type: 'string' },
        'service-cidr': { type: 'string' },
        'cluster-dns': { type: 'string', multiple: true },
        'cluster-domain': { type: 'string' },
        'container-log-max-size': { type: 'string' },
        'container-log-max-files': { type: 'string' },
        'container-log-monitor-interval': { type: 'string' },
        ...meshFlagOptions,
      },
    }));
  } catch (error) {
    throw new AgentUsageError((error as Error).message);
  }
  const required = (name: string): string => {
    const value = values[name];
    if (typeof value !== 'string' || value === '') {
      throw new AgentUsageError(`--${name} is required`);
    }
    return value;
  };
  const optional = (name: string): string | undefined => {
    const value = values[name];
    return typeof value === 'string' ? value : undefined;
  };
  const converted = (name: string, parse: (text: string) => number | undefined, what: string) => {
    const text = optional(name);
    if (text === undefined) return undefined;
    const value = parse(text);
    if (value === undefined) {
      throw new AgentUsageError(`--${name} must be ${what}: got ${JSON.stringify(text)}`);
    }
    return value;
  };
  const binDirs = values['cni-bin-dir'];
  return {
    stateDir: required('state-dir'),
    api: required('api'),
    nodeName: required('node'),
    nodeIp: required('node-ip'),
    backend: required('backend') as Backend,
    cluster: optional('cluster'),
    cniBinDirs: Array.isArray(binDirs) ? binDirs : undefined,
    cniConfDir: optional('cni-conf-dir'),
    clusterCidr: optional('cluster-cidr'),
    serviceCidr: optional('service-cidr'),
    clusterDns: Array.isArray(values['cluster-dns']) ? values['cluster-dns'] : undefined,
    clusterDomain: optional('cluster-domain'),
    containerLogMaxBytes: converted('container-log-max-size', parseSize, 'a size (10Mi, 512Ki)'),
    containerLogMaxFiles: converted(
      'container-log-max-files',
      (text) => (/^\d+$/.test(text) ? Number(text) : undefined),
      'an integer',
    ),
    containerLogMonitorIntervalMs: converted(
      'container-log-monitor-interval',
      parseDuration,
      'a duration (10s, 500ms)',
    ),
    caSocket: optional('ca-socket'),
    caTokenFile: optional('ca-token-file'),
    trustDomain: optional('trust-domain'),
    workloadCertTtlSeconds: workloadCertTtl(optional('workload-cert-ttl')),
  };
}
