/**
 * CHECK: the attachment is still as ADD left it (CNI spec 1.1.0, "CHECK"):
 * the interface in the prevResult exists in the pod, is the container end of
 * our veth, carries the result's MAC, addresses and routes; its host end is
 * on the bridge.
 */
import { CniError, CniErrorCode } from '../errors.js';
import type { CniEnvironment } from '../environment.js';
import type { NetConf } from '../netconf.js';
import { ipJsonBatch } from '../../kernel/ip.js';
import { linkAttribute, linkKind, linkMaster } from '../../kernel/sysfs.js';
import { familyOf, formatPrefix, parsePrefix, parseIp, formatIp } from '../../netaddr/ip.js';
import type { BridgeConfig } from './config.js';

interface LinkJson {
  ifname?: string;
  address?: string;
  mtu?: number;
  link_index?: number;
  linkinfo?: { info_kind?: string };
  addr_info?: { local?: string; prefixlen?: number; family?: string }[];
}

interface RouteJson {
  dst?: string;
  gateway?: string;
  dev?: string;
}

function failed(message: string): CniError {
  return new CniError(CniErrorCode.Internal, `CHECK failed: ${message}`);
}

function canonicalDst(dst: string | undefined, family: 4 | 6): string {
  if (!dst || dst === 'default') return family === 4 ? '0.0.0.0/0' : '::/0';
  const prefix = parsePrefix(dst.includes('/') ? dst : `${dst}/${family === 4 ? 32 : 128}`);
  return prefix ? formatPrefix(prefix) : dst;
}

function canonicalIp(text: string | undefined): string | undefined {
  const ip = text ? parseIp(text) : undefined;
  return ip ? formatIp(ip) : text;
}

export function checkAttachment(
  config: BridgeConfig,
  conf: NetConf,
  env: CniEnvironment,
  hostVeth: string,
): void {
  const prev = conf.prevResult;
  if (!prev) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      'CHECK needs prevResult in the network configuration',
    );
  }
  const index = prev.interfaces.findIndex((i) => i.name === env.ifname && i.sandbox === env.netns);
  const expected = prev.interfaces[index];
  if (!expected) {
    throw failed(`prevResult has no interface ${env.ifname} in sandbox ${env.netns}`);
  }
  if (linkKind(config.bridge) !== 'bridge') throw failed(`bridge ${config.bridge} does not exist`);

  let shown: unknown[][];
  let routes6: unknown[][];
  try {
    shown = ipJsonBatch([`link show dev ${env.ifname}`, `route show dev ${env.ifname}`], {
      netns: env.netns,
    });
    routes6 = ipJsonBatch([`route show dev ${env.ifname}`], { netns: env.netns }, ['-6']);
  } catch (error) {
    throw failed(`interface ${env.ifname} is not in ${env.netns}: ${(error as Error).message}`);
  }
  const [links, routes4] = shown as [LinkJson[] | undefined, RouteJson[] | undefined];
  const link = links?.[0];
  if (!link) throw failed(`interface ${env.ifname} is not in ${env.netns}`);
  if (link.linkinfo?.info_kind !== 'veth')
    throw failed(`${env.ifname} is a ${link.linkinfo?.info_kind ?? 'plain'} link, not a veth`);
  if (expected.mac && link.address?.toLowerCase() !== expected.mac.toLowerCase()) {
    throw failed(`${env.ifname} has MAC ${link.address ?? 'none'}, expected ${expected.mac}`);
  }
  if (config.mtu && link.mtu !== config.mtu)
    throw failed(`${env.ifname} has MTU ${link.mtu ?? 0}, expected ${config.mtu}`);

  const addrShown = ipJsonBatch([`addr show dev ${env.ifname}`], { netns: env.netns })[0] as
    LinkJson[] | undefined;
  const have = new Set(
    (addrShown?.[0]?.addr_info ?? []).map((a) => {
      const p = parsePrefix(`${a.local ?? ''}/${a.prefixlen ?? 0}`);
      return p ? formatPrefix(p) : '';
    }),
  );
  for (const ip of prev.ips) {
    if (ip.interface !== undefined && ip.interface !== index) continue;
    const p = parsePrefix(ip.address);
    if (p && !have.has(formatPrefix(p))) throw failed(`${env.ifname} does not carry ${ip.address}`);
  }

  const installed = [
    ...(routes4 ?? []).map((r) => ({
      dst: canonicalDst(r.dst, 4),
      gw: canonicalIp(r.gateway),
    })),
    ...((routes6[0] ?? []) as RouteJson[]).map((r) => ({
      dst: canonicalDst(r.dst, 6),
      gw: canonicalIp(r.gateway),
    })),
  ];
  for (const route of prev.routes) {
    const family = familyOf(route.dst);
    if (!family) continue;
    const dst = canonicalDst(route.dst, family);
    const gw = canonicalIp(
      route.gw ?? prev.ips.find((ip) => familyOf(ip.address) === family)?.gateway,
    );
    if (!installed.some((r) => r.dst === dst && (gw === undefined || r.gw === gw))) {
      throw failed(`route to ${route.dst}${gw ? ` via ${gw}` : ''} is missing in ${env.netns}`);
    }
  }

  if (linkKind(hostVeth) === 'absent')
    throw failed(`host end ${hostVeth} of ${env.ifname} does not exist`);
  const master = linkMaster(hostVeth);
  if (master !== config.bridge)
    throw failed(`host end ${hostVeth} is not on bridge ${config.bridge}`);
  if (
    link.link_index !== undefined &&
    String(link.link_index) !== linkAttribute(hostVeth, 'ifindex')
  ) {
    throw failed(`${env.ifname} is not paired with ${hostVeth}`);
  }
}
