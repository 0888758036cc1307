/**
 * The controller's settings, checked up front with messages naming the
 * flag, as kube-controller-manager checks its own: the cluster CIDRs (one
 * per family) and the node mask sizes (--node-cidr-mask-size for a
 * single-stack cluster, -ipv4/-ipv6 for each family; 24 and 64 by default),
 * the service CIDRs, which controllers run, the node lifecycle
 * controller's durations (Go durations, as its flags take them), and where
 * the mesh's CA service keeps its files and serves.
 */
import { dirname, join, resolve as resolvePath } from 'node:path';
import { parseGoDuration } from '../api/validation/formats.js';
import type { CaServiceConfig } from '../mesh/ca-service/service.js';
import { trustDomainProblem } from '../mesh/identity/spiffe.js';
import {
  type IpPrefix,
  familyBits,
  formatPrefix,
  networkAddress,
  networkOf,
  parsePrefix,
} from '../netaddr/ip.js';
import { SubnetAllocator } from './subnet-allocator.js';
import { upperBandStart } from './service-ips.js';

export const controllerNames = [
  'node-ipam',
  'scheduler',
  'deployment',
  'endpointslice',
  'service-ip',
  'node-lifecycle',
] as const;

export type ControllerName = (typeof controllerNames)[number];

export interface AllocationOptions {
  /** `10.244.0.0/16`, or one IPv4 and one IPv6 CIDR separated by a comma. */
  clusterCidr?: string;
  /** The pod CIDR size of a single-stack cluster (24 for IPv4, 64 for IPv6 by default). */
  nodeCidrMaskSize?: number;
  nodeCidrMaskSizeIpv4?: number;
  nodeCidrMaskSizeIpv6?: number;
  /** Enables cluster IP allocation: `10.96.0.0/16`, or one CIDR per family. */
  serviceCidr?: string;
  /** Which controllers run; by default all (service-ip only with a service CIDR). */
  controllers?: readonly ControllerName[];
}

export interface NodeLifecycleOptions {
  /** How long a Node's Ready heartbeat may go unrenewed before it turns Unknown (40 s by default). */
  nodeMonitorGracePeriodMs?: number;
  /** How often every Node's heartbeat is checked (5 s by default). */
  nodeMonitorPeriodMs?: number;
}

export interface NodeLifecycleSettings {
  gracePeriodMs: number;
  monitorPeriodMs: number;
}

export class ControllerConfigError extends Error {
  readonly code = 'STRATA_ERR_CONTROLLER_CONFIG';
  override readonly name = 'ControllerConfigError';
}

/** clusterSubnetMaxDiff: a cluster CIDR splits into at most 2^16 node CIDRs. */
const maxSubnetBits = 16;

function parseCidrs(text: string, flag: string): IpPrefix[] {
  const parts = text.split(',').map((p) => p.trim());
  const prefixes = parts.map((part) => {
    const prefix = parsePrefix(part);
    if (!prefix) {
      throw new ControllerConfigError(
        `${flag} "${text}": "${part}" is not a CIDR like 10.244.0.0/16`,
      );
    }
    if (networkAddress(prefix).value !== prefix.address.value) {
      throw new ControllerConfigError(
        `${flag} "${text}": "${part}" has host bits set; did you mean ${networkOf(prefix)}?`,
      );
    }
    return prefix;
  });
  const families = prefixes.map((p) => p.address.family);
  if (prefixes.length > 2 || (prefixes.length === 2 && families[0] === families[1])) {
    throw new ControllerConfigError(
      `${flag} "${text}": at most one CIDR per IP family (an IPv4 and an IPv6 one)`,
    );
  }
  return prefixes;
}

function maskFor(options: AllocationOptions, prefix: IpPrefix, dualStack: boolean): number {
  const ipv4 = prefix.address.family === 4;
  const perFamily = ipv4 ? options.nodeCidrMaskSizeIpv4 : options.nodeCidrMaskSizeIpv6;
  const flag = ipv4 ? '--node-cidr-mask-size-ipv4' : '--node-cidr-mask-size-ipv6';
  if (dualStack && options.nodeCidrMaskSize !== undefined) {
    throw new ControllerConfigError(
      '--node-cidr-mask-size is for single-stack clusters: use --node-cidr-mask-size-ipv4 and --node-cidr-mask-size-ipv6',
    );
  }
  const mask = options.nodeCidrMaskSize ?? perFamily ?? (ipv4 ? 24 : 64);
  const used = options.nodeCidrMaskSize !== undefined ? '--node-cidr-mask-size' : flag;
  const bits = familyBits(prefix.address.family);
  if (!Number.isInteger(mask) || mask < prefix.length || mask > bits) {
    throw new ControllerConfigError(
      `${used} ${mask}: must be ${prefix.length}-${bits} for cluster CIDR ${formatPrefix(prefix)}`,
    );
  }
  if (mask - prefix.length > maxSubnetBits) {
    throw new ControllerConfigError(
      `${used} ${mask}: cluster CIDR ${formatPrefix(prefix)} would hold more than 2^${maxSubnetBits} node CIDRs; use a mask of at most ${prefix.length + maxSubnetBits}`,
    );
  }
  return mask;
}

/** One allocator per cluster CIDR, for the node IPAM controller. */
export function podCidrAllocators(options: AllocationOptions): SubnetAllocator[] {
  if (options.clusterCidr === undefined || options.clusterCidr === '') {
    throw new ControllerConfigError('--cluster-cidr is required (the node IPAM controller runs)');
  }
  const prefixes = parseCidrs(options.clusterCidr, '--cluster-cidr');
  return prefixes.map(
    (prefix) => new SubnetAllocator(prefix, maskFor(options, prefix, prefixes.length > 1)),
  );
}

/** One allocator of single addresses per service CIDR (kube-apiserver's limits: at most 2^20 addresses). */
export function serviceIpAllocators(serviceCidr: string): SubnetAllocator[] {
  return parseCidrs(serviceCidr, '--service-cidr').map((prefix) => {
    const bits = familyBits(prefix.address.family);
    if (bits - prefix.length > 20) {
      throw new ControllerConfigError(
        `--service-cidr ${formatPrefix(prefix)} is too large: the mask must be at least /${bits - 20}`,
      );
    }
    const size = 2 ** (bits - prefix.length);
    if (size < 4) {
      throw new ControllerConfigError(`--service-cidr ${formatPrefix(prefix)} is too small`);
    }
    // The network address never; the IPv4 broadcast address never.
    const reserved = prefix.address.family === 4 ? [0, size - 1] : [0];
    return new SubnetAllocator(prefix, bits, { reserved, firstCandidate: upperBandStart(size) });
  });
}

/** The controllers to run, checked. */
export function enabledControllers(options: AllocationOptions): Set<ControllerName> {
  const asked = options.controllers ?? controllerNames;
  for (const name of asked) {
    if (!(controllerNames as readonly string[]).includes(name)) {
      throw new ControllerConfigError(
        `--controllers: unknown controller "${name}" (known: ${controllerNames.join(', ')})`,
      );
    }
  }
  const enabled = new Set(asked);
  if (options.serviceCidr === undefined || options.serviceCidr === '') {
    if (options.controllers?.includes('service-ip')) {
      throw new ControllerConfigError('--controllers: service-ip needs --service-cidr');
    }
    enabled.delete('service-ip');
  }
  return enabled;
}

/** A Go duration flag ("40s", "1m30s", "500ms") in milliseconds; undefined when not given. */
export function durationFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseGoDuration(value);
  if (ms === undefined) {
    throw new ControllerConfigError(`--${flag} "${value}": expected a duration like 40s or 500ms`);
  }
  return ms;
}

/** The node lifecycle controller's durations (kube-controller-manager's defaults), checked. */
export function nodeLifecycleSettings(options: NodeLifecycleOptions): NodeLifecycleSettings {
  const positive = (flag: string, ms: number | undefined, fallback: number): number => {
    const value = ms ?? fallback;
    if (!Number.isFinite(value) || value <= 0) {
      throw new ControllerConfigError(`--${flag} ${value}ms: must be a positive duration`);
    }
    return value;
  };
  return {
    gracePeriodMs: positive('node-monitor-grace-period', options.nodeMonitorGracePeriodMs, 40_000),
    monitorPeriodMs: positive('node-monitor-period', options.nodeMonitorPeriodMs, 5_000),
  };
}

/** The CA service's flags as given: the service runs only with --ca-dir. */
export interface CaFlags {
  caDir?: string;
  caSocket?: string;
  nodeTokens?: string;
  trustDomain?: string;
}

/** sockaddr_un's sun_path holds 108 bytes, the terminating NUL included. */
const maxSocketPath = 107;

/**
 * The CA service's settings, or undefined when --ca-dir is not given (the
 * service is off). The socket is `ca.sock` beside the CA directory
 * (`<state dir>/ca.sock` for `<state dir>/ca`) and the node tokens are
 * `node-tokens.json` inside it unless the flags say otherwise.
 */
export function caServiceConfig(flags: CaFlags): CaServiceConfig | undefined {
  if (flags.caDir === undefined || flags.caDir === '') {
    const stray = (
      [
        ['--ca-socket', flags.caSocket],
        ['--node-tokens', flags.nodeTokens],
        ['--trust-domain', flags.trustDomain],
      ] as const
    ).find(([, value]) => value !== undefined);
    if (stray !== undefined) {
      throw new ControllerConfigError(
        `${stray[0]} needs --ca-dir (the CA service is off without it)`,
      );
    }
    return undefined;
  }
  const caDir = resolvePath(flags.caDir);
  const socketPath = resolvePath(flags.caSocket ?? join(dirname(caDir), 'ca.sock'));
  if (Buffer.byteLength(socketPath) > maxSocketPath) {
    throw new ControllerConfigError(
      `--ca-socket ${socketPath}: a unix socket path must fit in ${maxSocketPath} bytes`,
    );
  }
  const config: CaServiceConfig = {
    caDir,
    socketPath,
    nodeTokensFile: resolvePath(flags.nodeTokens ?? join(caDir, 'node-tokens.json')),
  };
  if (flags.trustDomain !== undefined) {
    const problem = trustDomainProblem(flags.trustDomain);
    if (problem !== undefined) {
      throw new ControllerConfigError(
        `--trust-domain ${JSON.stringify(flags.trustDomain)}: ${problem}`,
      );
    }
    config.trustDomain = flags.trustDomain;
  }
  return config;
}
