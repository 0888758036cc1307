/**
 * CHECK: the attachment is still as ADD left it (CNI spec 1.1.0, "CHECK"):
 * the interface in the prevResult exists in the pod, is the container end of
 * our veth, carries the result's MAC, addresses and routes; its host end is
 * on the bridge, isolated when the configuration asks; with routedPods the
 * bridge still answers ARP for the pods and IPv6 subnets are routed via the
 * gateway in the pod.
 */
import { CniError, CniErrorCode } from '../errors.js';
import type { CniEnvironment } from '../environment.js';
import type { NetConf } from '../netconf.js';
import { getLink, listAddresses, listRoutes } from '../../kernel/netlink/route.js';
import { RouteSocket } from '../../kernel/netlink/socket.js';
import {
  defaultRoute,
  familyOf,
  formatIp,
  formatPrefix,
  networkOf,
  parseIp,
  parsePrefix,
} from '../../netaddr/ip.js';
import type { BridgeConfig } from './config.js';
import { compileBridgeSysctls, readSysctl } from './links.js';

function failed(message: string): CniError {
  return new CniError(CniErrorCode.Internal, `CHECK failed: ${message}`);
}

export async function checkAttachment(
  config: BridgeConfig,
  conf: NetConf,
  env: CniEnvironment,
  hostVeth: string,
): Promise<void> {
  const prev = conf.prevResult;
  if (!prev) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      'CHECK needs prevResult in the network configuration',
    );
  }
  const index = prev.interfaces.findIndex((i) => i.name === env.ifname && i.sandbox === env.netns);
  const expected = prev.interfaces[index];
  if (!expected) throw failed(`prevResult has no interface ${env.ifname} in sandbox ${env.netns}`);

  const node = await RouteSocket.open();
  let bridgeIndex: number;
  let host: ReturnType<typeof getLink>;
  try {
    const bridge = getLink(node, config.bridge);
    if (bridge?.kind !== 'bridge') throw failed(`bridge ${config.bridge} does not exist`);
    bridgeIndex = bridge.index;
    host = getLink(node, hostVeth);
  } finally {
    node.close();
  }

  let pod: RouteSocket;
  try {
    pod = await RouteSocket.open(env.netns);
  } catch (error) {
    throw failed(`cannot enter ${env.netns}: ${(error as Error).message}`);
  }
  try {
    const link = getLink(pod, env.ifname);
    if (!link) throw failed(`interface ${env.ifname} is not in ${env.netns}`);
    if (link.kind !== 'veth') {
      throw failed(`${env.ifname} is a ${link.kind || 'plain'} link, not a veth`);
    }
    if (expected.mac && link.mac !== expected.mac.toLowerCase()) {
      throw failed(`${env.ifname} has MAC ${link.mac}, expected ${expected.mac}`);
    }
    if (config.mtu && link.mtu !== config.mtu) {
      throw failed(`${env.ifname} has MTU ${link.mtu}, expected ${config.mtu}`);
    }

    const have = new Set(listAddresses(pod, link.index).map(formatPrefix));
    for (const ip of prev.ips) {
      if (ip.interface !== undefined && ip.interface !== index) continue;
      const p = parsePrefix(ip.address);
      if (p && !have.has(formatPrefix(p)))
        throw failed(`${env.ifname} does not carry ${ip.address}`);
    }

    const installed = [...listRoutes(pod, 4), ...listRoutes(pod, 6)]
      .filter((r) => r.oif === link.index)
      .map((r) => ({
        dst: r.dst.length === 0 ? defaultRoute(r.dst.address.family) : networkOf(r.dst),
        gw: r.gateway ? formatIp(r.gateway) : undefined,
      }));
    if (config.routedPods) {
      for (const ip of prev.ips) {
        const p = parsePrefix(ip.address);
        if (!p || p.address.family !== 6 || !ip.gateway) continue;
        if (ip.interface !== undefined && ip.interface !== index) continue;
        const gw = parseIp(ip.gateway);
        const subnet = networkOf(p);
        if (!installed.some((r) => r.dst === subnet && gw && r.gw === formatIp(gw))) {
          throw failed(`route to ${subnet} via ${ip.gateway} is missing in ${env.netns}`);
        }
      }
    }
    for (const route of prev.routes) {
      const family = familyOf(route.dst);
      const dst = parsePrefix(route.dst);
      if (!family || !dst) continue;
      const gwText = route.gw ?? prev.ips.find((ip) => familyOf(ip.address) === family)?.gateway;
      const gwIp = gwText ? parseIp(gwText) : undefined;
      const gw = gwIp ? formatIp(gwIp) : undefined;
      const want = dst.length === 0 ? defaultRoute(family) : networkOf(dst);
      if (!installed.some((r) => r.dst === want && (gw === undefined || r.gw === gw))) {
        throw failed(`route to ${route.dst}${gw ? ` via ${gw}` : ''} is missing in ${env.netns}`);
      }
    }

    if (!host) throw failed(`host end ${hostVeth} of ${env.ifname} does not exist`);
    if (host.master !== bridgeIndex) {
      throw failed(`host end ${hostVeth} is not on bridge ${config.bridge}`);
    }
    if (link.peerIndex !== undefined && link.peerIndex !== host.index) {
      throw failed(`${env.ifname} is not paired with ${hostVeth}`);
    }
    if (config.portIsolation && host.bridgePort?.isolated !== true) {
      throw failed(`host end ${hostVeth} is not isolated on bridge ${config.bridge}`);
    }
    // Proxy ARP is what pods reach each other by; accept_dad mattered only when the bridge came up.
    for (const s of compileBridgeSysctls(config, prev.ips).filter((s) => s.path[1] === 'ipv4')) {
      const value = readSysctl(s);
      if (value !== s.value) {
        throw failed(`${s.path.join('.')} is ${value ?? 'unreadable'}, expected ${s.value}`);
      }
    }
  } finally {
    pod.close();
  }
}
