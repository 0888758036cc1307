/**
 * strata-ipam: host-local-compatible address management. The same functions
 * serve the standalone `strata-ipam` executable (any plugin can delegate to
 * it) and strata-cni, which calls them in-process when `ipam.type` is
 * `strata-ipam` instead of paying for another process.
 */
import { readFileSync } from 'node:fs';
import { CniError, CniErrorCode } from '../cni/errors.js';
import type { CniEnvironment } from '../cni/environment.js';
import type { NetConf } from '../cni/netconf.js';
import type { CniPlugin } from '../cni/skel.js';
import { type CniDns, type CniResult, emptyResult } from '../cni/result.js';
import { type IpAddress, formatIp, parseIp, parsePrefix, prefixContains } from '../netaddr/ip.js';
import { allocateFromSet, freeCount, rangeFor } from './allocator.js';
import { type IpamConfig, describeRangeSet, parseIpamConfig } from './config.js';
import { type Allocation, AllocationStore, ownerKey, withStore } from './store.js';

export const ipamType = 'strata-ipam';

/** Reads nameserver, domain, search and options from a resolv.conf, as host-local's resolvConf does. */
export function parseResolvConf(path: string): CniDns {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CniError(CniErrorCode.InvalidNetworkConfig, `ipam.resolvConf: cannot read ${path}`, {
      cause: error,
    });
  }
  const dns: CniDns = {};
  for (const line of text.split('\n')) {
    const [keyword, ...values] = line.trim().split(/\s+/);
    if (keyword === 'nameserver' && values[0]) (dns.nameservers ??= []).push(values[0]);
    else if (keyword === 'domain' && values[0]) dns.domain = values[0];
    else if (keyword === 'search') dns.search = values;
    else if (keyword === 'options') (dns.options ??= []).push(...values);
  }
  return dns;
}

/** The addresses the runtime asked for: runtimeConfig.ips, args.cni.ips and CNI_ARGS IP=. */
export function requestedAddresses(conf: NetConf, env: CniEnvironment): IpAddress[] {
  const texts: { text: string; field: string }[] = [];
  const fromList = (value: unknown, field: string): void => {
    if (value === undefined) return;
    if (!Array.isArray(value)) {
      throw new CniError(CniErrorCode.InvalidNetworkConfig, `${field} must be a list of addresses`);
    }
    value.forEach((v: unknown, i) => {
      texts.push({ text: String(v), field: `${field}[${i}]` });
    });
  };
  fromList(conf.runtimeConfig.ips, 'runtimeConfig.ips');
  const cniArgs = conf.args.cni as Record<string, unknown> | undefined;
  fromList(cniArgs?.ips, 'args.cni.ips');
  const ipArg = env.args.get('IP');
  if (ipArg) ipArg.split(',').forEach((t) => texts.push({ text: t.trim(), field: 'CNI_ARGS IP' }));
  const out: IpAddress[] = [];
  for (const { text, field } of texts) {
    const ip = text.includes('/') ? parsePrefix(text)?.address : parseIp(text);
    if (!ip) {
      throw new CniError(
        CniErrorCode.InvalidNetworkConfig,
        `${field}: not an IP address: "${text}"`,
      );
    }
    if (!out.some((o) => o.family === ip.family && o.value === ip.value)) out.push(ip);
  }
  return out;
}

function ipamConfigOf(conf: NetConf): IpamConfig {
  if (!conf.ipam)
    throw new CniError(CniErrorCode.InvalidNetworkConfig, 'ipam: the section is missing');
  return parseIpamConfig(conf.ipam);
}

/** ADD: one address from each range set, plus routes and DNS. */
export async function ipamAdd(conf: NetConf, env: CniEnvironment): Promise<CniResult> {
  const config = ipamConfigOf(conf);
  const requested = requestedAddresses(conf, env);
  const dns = config.resolvConf ? parseResolvConf(config.resolvConf) : {};
  return withStore(config.dataDir, conf.name, (store) => {
    // One listing serves the duplicate check and every range set; each
    // allocation is then claimed with O_EXCL, so it cannot go stale.
    const allocations = store.allocations();
    const id = env.containerId.trim();
    const existing = allocations
      .filter((a) => a.containerId === id && (a.ifname === env.ifname || a.ifname === ''))
      .map((a) => a.ip);
    const result = emptyResult();
    const claimed: IpAddress[] = [];
    try {
      config.rangeSets.forEach((set, index) => {
        const wanted = requested.find((ip) => rangeFor(set, ip));
        const { ip, range } = allocateFromSet(
          store,
          set,
          index,
          env.containerId,
          env.ifname,
          wanted,
          existing,
          allocations,
        );
        claimed.push(ip);
        result.ips.push({
          address: `${formatIp(ip)}/${range.subnet.length}`,
          gateway: formatIp(range.gateway),
        });
      });
      const unclaimed = requested.find(
        (r) => !claimed.some((c) => c.family === r.family && c.value === r.value),
      );
      if (unclaimed) {
        throw new CniError(
          CniErrorCode.InvalidNetworkConfig,
          `requested IP address ${formatIp(unclaimed)} is not in any configured range`,
        );
      }
    } catch (error) {
      for (const ip of claimed) store.releaseFile(formatIp(ip));
      throw error;
    }
    result.routes = config.routes.map((r) => (r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst }));
    result.dns = dns;
    return result;
  });
}

/** DEL: releases the attachment's addresses and returns them (`ip/prefix`); nothing to release is success. */
export async function ipamDel(conf: NetConf, env: CniEnvironment): Promise<string[]> {
  const config = ipamConfigOf(conf);
  const released = await withStore(config.dataDir, conf.name, (store) =>
    store.release(env.containerId, env.ifname),
  );
  return withPrefixLength(config, released);
}

/** Allocations as a result lists addresses: with the prefix length of the subnet they came from. */
function withPrefixLength(config: IpamConfig, allocations: readonly Allocation[]): string[] {
  return allocations.flatMap((a) => {
    const range = config.rangeSets.flat().find((r) => prefixContains(r.subnet, a.ip));
    return range ? [`${a.name}/${range.subnet.length}`] : [];
  });
}

/** The addresses the store holds for an attachment, without changing anything. */
export async function ipamLookup(conf: NetConf, env: CniEnvironment): Promise<Allocation[]> {
  const config = ipamConfigOf(conf);
  return withStore(config.dataDir, conf.name, (store) =>
    store.allocationsOf(env.containerId, env.ifname),
  );
}

/** The attachment's addresses with their subnets' prefix lengths, as a result lists them. */
export async function ipamAddresses(conf: NetConf, env: CniEnvironment): Promise<string[]> {
  return withPrefixLength(ipamConfigOf(conf), await ipamLookup(conf, env));
}

/** CHECK: the store still holds an address for the attachment. */
export async function ipamCheck(conf: NetConf, env: CniEnvironment): Promise<void> {
  const owned = await ipamLookup(conf, env);
  if (owned.length === 0) {
    throw new CniError(
      CniErrorCode.Internal,
      `strata-ipam: no address is allocated to ${env.containerId}/${env.ifname} in network ${conf.name}`,
    );
  }
}

function isStale(a: Allocation, keep: ReadonlySet<string>, keepIds: ReadonlySet<string>): boolean {
  // A file of host-local before 0.7 names the container alone.
  return a.ifname === '' && a.containerId !== ''
    ? !keepIds.has(a.containerId)
    : !keep.has(ownerKey(a.containerId, a.ifname));
}

/** The allocations whose attachments the runtime no longer lists, without releasing them. */
export async function ipamStale(
  conf: NetConf,
  valid: { containerId: string; ifname: string }[],
): Promise<Allocation[]> {
  const config = ipamConfigOf(conf);
  const keep = new Set(valid.map((a) => ownerKey(a.containerId, a.ifname)));
  const keepIds = new Set(valid.map((a) => a.containerId.trim()));
  return withStore(config.dataDir, conf.name, (store) =>
    store.allocations().filter((a) => isStale(a, keep, keepIds)),
  );
}

/** GC: releases every allocation whose attachment the runtime no longer lists; returns them. */
export async function ipamGc(
  conf: NetConf,
  valid: { containerId: string; ifname: string }[],
): Promise<Allocation[]> {
  const config = ipamConfigOf(conf);
  const keep = new Set(valid.map((a) => ownerKey(a.containerId, a.ifname)));
  const keepIds = new Set(valid.map((a) => a.containerId.trim()));
  return withStore(config.dataDir, conf.name, (store) => {
    const stale = store.allocations().filter((a) => isStale(a, keep, keepIds));
    for (const a of stale) store.releaseFile(a.name);
    return stale;
  });
}

/** STATUS: fails with code 50 when some range set has no free address left. */
export async function ipamStatus(conf: NetConf): Promise<void> {
  const config = ipamConfigOf(conf);
  const store = new AllocationStore(config.dataDir, conf.name);
  try {
    await store.open();
  } catch (error) {
    throw new CniError(
      CniErrorCode.PluginNotAvailable,
      `strata-ipam: cannot open the store in ${store.dir}`,
      {
        cause: error,
      },
    );
  }
  try {
    const allocated = store.allocations().map((a) => a.ip);
    config.rangeSets.forEach((set, i) => {
      if (freeCount(set, allocated) <= 0n) {
        throw new CniError(
          CniErrorCode.PluginNotAvailable,
          `strata-ipam: no free address in ipam.ranges[${i}] (${describeRangeSet(set, formatIp)})`,
        );
      }
    });
  } finally {
    store.close();
  }
}

/** strata-ipam as a plugin of its own, for other plugins to delegate to. */
export const ipamPlugin: CniPlugin = {
  async add(conf, env) {
    const result = await ipamAdd(conf, env);
    return result;
  },
  async del(conf, env) {
    await ipamDel(conf, env);
  },
  check: ipamCheck,
  status: ipamStatus,
  async gc(conf) {
    if (!conf.validAttachments) {
      throw new CniError(
        CniErrorCode.InvalidNetworkConfig,
        'GC needs cni.dev/valid-attachments: without it every allocation would look stale',
      );
    }
    await ipamGc(conf, conf.validAttachments);
  },
};
