/**
 * The links of an attachment: the node's bridge, a veth pair with its host
 * end on the bridge and its container end named CNI_IFNAME in the pod's
 * namespace. Functions named compile* and plan* decide and touch nothing;
 * apply* and ensure* carry the decision out over rtnetlink.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { checkpoint } from '../checkpoints.js';
import { CniError, CniErrorCode } from '../errors.js';
import type { CniIpConfig, CniRoute } from '../result.js';
import {
  type RouteSpec,
  addAddress,
  addRoute,
  createBridge,
  createVethPair,
  getLink,
  type LinkInfo,
  setBridgePort,
  setLinkMac,
  deleteAddress,
  linkIndex,
  listAddresses,
  setLinkAlias,
  setLinkFlags,
} from '../../kernel/netlink/route.js';
import { inNetns, libc } from '../../kernel/libc.js';
import { IFF_PROMISC, IFF_UP } from '../../kernel/netlink/message.js';
import { NetlinkError, type RouteSocket } from '../../kernel/netlink/socket.js';

import {
  type IpAddress,
  type IpPrefix,
  formatIp,
  formatPrefix,
  ipEqual,
  networkOf,
  parseIp,
  parsePrefix,
  prefixContains,
} from '../../netaddr/ip.js';
import type { BridgeConfig } from './config.js';

/**
 * The host end's name, derived from the attachment (like Calico's `cali` +
 * hash), so DEL and GC find it with nothing but the attachment's identity,
 * even when the pod's namespace is gone.
 */
export function hostVethName(network: string, containerId: string, ifname: string): string {
  const [high, low] = fnv1a(`${network}\0${containerId}\0${ifname}`);
  return `veth${high.toString(16).padStart(8, '0')}${low.toString(16).padStart(8, '0').slice(0, 3)}`;
}

/** True for names hostVethName makes. */
export function isStrataVethName(name: string): boolean {
  return /^veth[0-9a-f]{11}$/.test(name);
}

/**
 * FNV-1a, in two 32-bit lanes with different offset bases: spreads names
 * well and costs nothing to start, where node:crypto adds milliseconds to
 * every plugin call. The name needs no secrecy, only few collisions (44 bits
 * kept).
 */
function fnv1a(text: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (const byte of Buffer.from(text, 'utf8')) {
    a = Math.imul(a ^ byte, 0x01000193) >>> 0;
    b = Math.imul(b ^ byte, 0x01000193) >>> 0;
  }
  return [a, b];
}

const aliasPrefix = 'strata-cni';

/**
 * `text` cut to `max` characters with a hash of the whole in its place, so
 * aliases (255 bytes) and nft comments (128) hold names of any length and
 * still tell them apart.
 */
export function shortName(text: string, max: number): string {
  if (text.length <= max) return text;
  const [high, low] = fnv1a(text);
  return `${text.slice(0, max - 17)}~${high.toString(16).padStart(8, '0')}${low.toString(16).padStart(8, '0')}`;
}

/** The alias written on the host end: says which network and attachment it belongs to. */
export function ownerAlias(network: string, containerId: string, ifname: string): string {
  return `${aliasPrefix} ${shortName(network, 64)} ${shortName(containerId, 128)} ${ifname}`;
}

export function parseOwnerAlias(
  alias: string,
): { network: string; containerId: string; ifname: string } | undefined {
  const [prefix, network, containerId, ifname, ...rest] = alias.split(' ');
  if (prefix !== aliasPrefix || !network || !containerId || !ifname || rest.length > 0)
    return undefined;
  return { network, containerId, ifname };
}

/** A random locally administered unicast MAC for the container end (as random as the kernel's own choice would need to be). */
export function randomMac(): string {
  const bytes = Array.from({ length: 6 }, () => Math.floor(Math.random() * 256));
  bytes[0] = ((bytes[0] ?? 0) & 0xfe) | 0x02;
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * Creates the bridge unless it exists, and makes sure it is up (and
 * promiscuous when asked), as the reference plugin's ensureBridge does for
 * new and existing bridges alike; returns it. An existing link of
 * another kind is an error.
 */
export function ensureBridge(sock: RouteSocket, config: BridgeConfig): LinkInfo {
  // Asked of the kernel, not of /sys: a bridge another ADD is creating shows in /sys
  // before its bridge/ directory does.
  let link = getLink(sock, config.bridge);
  if (!link) {
    try {
      // An explicit MAC: otherwise the bridge takes the lowest MAC of its ports and
      // changes it, and the pods' gateway with it, as pods come and go.
      createBridge(sock, config.bridge, {
        mtu: config.mtu,
        promisc: config.promiscMode,
        mac: randomMac(),
      });
    } catch (error) {
      // Another ADD may have created it between our look and our create.
      if (!(error instanceof NetlinkError && error.code === 'EEXIST')) {
        throw new CniError(CniErrorCode.Internal, `cannot create bridge ${config.bridge}`, {
          cause: error,
        });
      }
    }
    link = getLink(sock, config.bridge);
    if (!link) throw new CniError(CniErrorCode.Internal, `bridge ${config.bridge} vanished`);
  }
  if (link.kind !== 'bridge') {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `bridge: "${config.bridge}" already exists and is not a bridge`,
    );
  }
  const wanted = IFF_UP | (config.promiscMode ? IFF_PROMISC : 0);
  if ((link.flags & wanted) !== wanted) setLinkFlags(sock, link.index, wanted);
  return link;
}

export interface BridgeAddressPlan {
  add: string[];
  remove: string[];
}

/**
 * Decides the gateway addresses of the bridge, as the reference plugin's
 * ensureAddr does: an address already there is kept; a different IPv4
 * address, or an IPv6 address of an overlapping subnet, is replaced when
 * forceAddress is set and an error otherwise.
 */
export function planBridgeAddresses(
  bridge: string,
  existing: readonly string[],
  gateways: readonly string[],
  forceAddress: boolean,
): BridgeAddressPlan {
  const plan: BridgeAddressPlan = { add: [], remove: [] };
  for (const gateway of gateways) {
    const want = parsePrefix(gateway);
    if (!want) continue;
    let present = false;
    for (const text of existing) {
      const have = parsePrefix(text);
      if (!have || have.address.family !== want.address.family || plan.remove.includes(text))
        continue;
      // The same address with the same prefix length: nothing to do (and, like the
      // reference plugin, look no further).
      if (ipEqual(have.address, want.address) && have.length === want.length) {
        present = true;
        break;
      }
      const conflicts =
        want.address.family === 4 ||
        prefixContains(have, want.address) ||
        prefixContains(want, have.address);
      if (!conflicts) continue;
      if (!forceAddress) {
        throw new CniError(
          CniErrorCode.InvalidNetworkConfig,
          `bridge "${bridge}" already has address ${text}, different from ${gateway} (set forceAddress to replace it)`,
        );
      }
      plan.remove.push(text);
    }
    if (!present) plan.add.push(gateway);
  }
  return plan;
}

/** The bridge's current global addresses of the gateways' families, as `address/prefix`. */
export function bridgeAddresses(
  sock: RouteSocket,
  bridgeIndex: number,
  gateways: readonly string[],
): string[] {
  const families = new Set(gateways.map((g) => parsePrefix(g)?.address.family));
  const only = families.size === 1 ? [...families][0] : undefined;
  return listAddresses(sock, bridgeIndex, only).map(formatPrefix);
}

/**
 * Carries out a bridge address plan. Like the reference plugin's ensureAddr,
 * it pins the bridge's current MAC when it gives it a gateway address, so a
 * bridge someone else created stops following its ports' MACs.
 */
export function applyBridgeAddresses(
  sock: RouteSocket,
  bridge: LinkInfo,
  plan: BridgeAddressPlan,
): void {
  for (const text of plan.remove) {
    const prefix = parsePrefix(text);
    if (prefix) deleteAddress(sock, bridge.index, prefix);
  }
  for (const text of plan.add) {
    const prefix = parsePrefix(text);
    if (!prefix) continue;
    try {
      addAddress(sock, bridge.index, prefix, { nodad: prefix.address.family === 6 });
    } catch (error) {
      // A concurrent ADD put the same gateway address on first: as good as ours
      // (the reference plugin's ensureAddr ignores EEXIST too).
      if (!(error instanceof NetlinkError && error.code === 'EEXIST')) throw error;
    }
  }
  if (plan.add.length > 0 && bridge.mac) setLinkMac(sock, bridge.index, bridge.mac);
}

export interface HostVeth {
  config: BridgeConfig;
  hostVeth: string;
  alias: string;
  ifname: string;
  netns: string;
  /** The container end's MAC. */
  mac: string;
  /** The host end's MAC, chosen here so the result needs no read-back. */
  hostMac: string;
}

/** What the node's side of an attachment is made of: the pair, its alias, its bridge port flags. */
export interface HostVethPlan {
  name: string;
  mac: string;
  mtu?: number;
  peer: { name: string; mac: string; mtu?: number };
  alias: string;
  /** Bridge port flags to set on the host end. */
  port: { hairpin?: boolean; isolated?: boolean };
}

export function compileHostVeth(h: HostVeth): HostVethPlan {
  const port: HostVethPlan['port'] = {};
  if (h.config.hairpinMode) port.hairpin = true;
  if (h.config.portIsolation) port.isolated = true;
  const plan: HostVethPlan = {
    name: h.hostVeth,
    mac: h.hostMac,
    peer: { name: h.ifname, mac: h.mac },
    alias: h.alias,
    port,
  };
  if (h.config.mtu) {
    plan.mtu = h.config.mtu;
    plan.peer.mtu = h.config.mtu;
  }
  return plan;
}

/**
 * Makes the pair in one request (the container end straight into the pod's
 * namespace, the host end already on the bridge and up), then writes the
 * alias GC reads and the bridge port flags.
 */
export function applyHostVeth(
  sock: RouteSocket,
  plan: HostVethPlan,
  bridgeIndex: number,
  netns: string,
): void {
  const netnsFd = openSync(netns, 'r');
  try {
    createVethPair(sock, {
      name: plan.name,
      mac: plan.mac,
      ...(plan.mtu ? { mtu: plan.mtu } : {}),
      master: bridgeIndex,
      peer: { ...plan.peer, netnsFd },
    });
  } finally {
    closeSync(netnsFd);
  }
  checkpoint('after-veth-created');
  setLinkAlias(sock, plan.name, plan.alias);
  if (plan.port.hairpin || plan.port.isolated) {
    const index = linkIndex(sock, plan.name);
    if (index !== undefined) setBridgePort(sock, index, plan.port);
  }
}

/** One change inside the pod, in order. */
export type ContainerStep =
  | { op: 'address'; prefix: IpPrefix; nodad: boolean; noprefixroute?: boolean }
  | { op: 'up' }
  | { op: 'route'; route: Omit<RouteSpec, 'oif'> };

/**
 * The pod's side: its addresses, the link up, its routes. A route without a
 * gateway goes via its family's gateway (libcni's ConfigureIface); IPv6
 * addresses skip duplicate address detection unless `enabledad`.
 *
 * With `routedPods`, an IPv6 address gets no on-link route to its subnet:
 * the pod reaches the gateway by a host route and the rest of the subnet via
 * the gateway, as the reference ptp plugin wires a pod. IPv6 has no
 * counterpart of proxy_arp_pvlan, so this is what keeps IPv6 between pods on
 * the node's IP layer (IPv4 keeps its on-link subnet; the bridge answers ARP).
 */
export function compileContainerSide(
  ips: readonly CniIpConfig[],
  routes: readonly CniRoute[],
  enableDad: boolean,
  routedPods = false,
): ContainerStep[] {
  const steps: ContainerStep[] = [];
  const gateways = new Map<number, IpAddress>();
  const routedSubnets: { gateway: IpAddress; subnet: IpPrefix }[] = [];
  for (const ip of ips) {
    const prefix = parsePrefix(ip.address);
    if (!prefix) {
      throw new CniError(CniErrorCode.InvalidNetworkConfig, `invalid address "${ip.address}"`);
    }
    const gateway = ip.gateway ? parseIp(ip.gateway) : undefined;
    const routed = routedPods && prefix.address.family === 6 && gateway !== undefined;
    const step: ContainerStep = {
      op: 'address',
      prefix,
      nodad: prefix.address.family === 6 && !enableDad,
    };
    if (routed) {
      step.noprefixroute = true;
      const subnet = parsePrefix(networkOf(prefix));
      if (subnet && !routedSubnets.some((r) => formatPrefix(r.subnet) === formatPrefix(subnet)))
        routedSubnets.push({ gateway, subnet });
    }
    steps.push(step);
    if (gateway && !gateways.has(gateway.family)) gateways.set(gateway.family, gateway);
  }
  steps.push({ op: 'up' });
  const hosts = new Set<string>();
  for (const { gateway } of routedSubnets) {
    const host = formatIp(gateway);
    if (hosts.has(host)) continue;
    hosts.add(host);
    steps.push({ op: 'route', route: { dst: { address: gateway, length: 128 } } });
  }
  const ipamDsts = new Set(
    routes.map((r) => parsePrefix(r.dst)).flatMap((p) => (p ? [formatPrefix(p)] : [])),
  );
  for (const { gateway, subnet } of routedSubnets) {
    if (!ipamDsts.has(formatPrefix(subnet)))
      steps.push({ op: 'route', route: { dst: subnet, gateway } });
  }
  for (const r of routes) {
    const dst = parsePrefix(r.dst);
    if (!dst) throw new CniError(CniErrorCode.InvalidNetworkConfig, `invalid route "${r.dst}"`);
    const gateway = r.gw ? parseIp(r.gw) : gateways.get(dst.address.family);
    const route: Omit<RouteSpec, 'oif'> = { dst };
    if (gateway) route.gateway = gateway;
    for (const key of ['priority', 'table', 'scope', 'mtu', 'advmss'] as const) {
      if (r[key] !== undefined) route[key] = r[key];
    }
    steps.push({ op: 'route', route });
  }
  return steps;
}

/** Carries the pod's side out, over a socket in the pod's namespace. */
export function applyContainerSide(
  sock: RouteSocket,
  ifname: string,
  steps: readonly ContainerStep[],
): void {
  const index = linkIndex(sock, ifname);
  if (index === undefined)
    throw new CniError(CniErrorCode.Internal, `${ifname} vanished from the pod`);
  for (const step of steps) {
    if (step.op === 'address')
      addAddress(sock, index, step.prefix, {
        nodad: step.nodad,
        ...(step.noprefixroute ? { noprefixroute: true } : {}),
      });
    else if (step.op === 'up') setLinkFlags(sock, index, IFF_UP);
    else addRoute(sock, { ...step.route, oif: index });
  }
}

/** A sysctl as the segments of its path under /proc/sys (an interface name may hold dots). */
export interface Sysctl {
  path: string[];
  value: string;
}

/**
 * What routedPods sets on the bridge. For IPv4: the node answers every ARP
 * request for an address routed through the bridge itself
 * (`proxy_arp_pvlan`, the private-VLAN proxy ARP of RFC 3069; `proxy_arp`
 * for the others), at once rather than after up to 0.8 s (`proxy_delay`,
 * applied to requests the bridge floods). For IPv6: no duplicate address
 * detection on the bridge's own link-local address, which the node needs to
 * solicit a pod's address: a new bridge would otherwise hold the first
 * packets between its pods for a second or two. Applied before the first
 * port comes up, since that is when the kernel gives the bridge that address.
 */
export function compileBridgeSysctls(config: BridgeConfig, ips: readonly CniIpConfig[]): Sysctl[] {
  if (!config.routedPods) return [];
  const families = new Set(ips.map((ip) => parsePrefix(ip.address)?.address.family));
  const out: Sysctl[] = [];
  if (families.has(4)) {
    out.push(
      { path: ['net', 'ipv4', 'conf', config.bridge, 'proxy_arp'], value: '1' },
      { path: ['net', 'ipv4', 'conf', config.bridge, 'proxy_arp_pvlan'], value: '1' },
      { path: ['net', 'ipv4', 'neigh', config.bridge, 'proxy_delay'], value: '0' },
    );
  }
  if (families.has(6)) {
    out.push({ path: ['net', 'ipv6', 'conf', config.bridge, 'accept_dad'], value: '0' });
  }
  return out;
}

/**
 * What routedPods sets inside the pod for IPv6: no ICMPv6 redirects taken.
 * The node forwards between pods out of the bridge they came in on, and
 * IPv6 always sends a redirect then (it has no send_redirects switch); a pod
 * that took it would look for the other pod on the link, where its isolated
 * port cannot reach it.
 */
export function compilePodSysctls(
  config: BridgeConfig,
  ifname: string,
  ips: readonly CniIpConfig[],
): Sysctl[] {
  if (!config.routedPods || !ips.some((ip) => parsePrefix(ip.address)?.address.family === 6))
    return [];
  return [{ path: ['net', 'ipv6', 'conf', ifname, 'accept_redirects'], value: '0' }];
}

function sysctlPath(s: Sysctl): string {
  return `/proc/sys/${s.path.join('/')}`;
}

/** The value a sysctl holds now, or undefined when it cannot be read. */
export function readSysctl(s: Sysctl): string | undefined {
  try {
    return readFileSync(sysctlPath(s), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Sets each sysctl in this thread's namespace, unless it already has its value. */
export function applySysctls(sysctls: readonly Sysctl[]): void {
  for (const s of sysctls) {
    if (readSysctl(s) === s.value) continue;
    try {
      // Opened here, so the file answers for this thread's namespace.
      const fd = openSync(sysctlPath(s), 'w');
      try {
        writeSync(fd, s.value);
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      throw new CniError(CniErrorCode.Internal, `setting ${s.path.join('.')} to ${s.value}`, {
        cause: error,
      });
    }
  }
}

/** Sets each sysctl inside the namespace at `netns` (the thread enters it and comes back). */
export async function applySysctlsIn(netns: string, sysctls: readonly Sysctl[]): Promise<void> {
  if (sysctls.length === 0) return;
  const c = await libc();
  inNetns(c, netns, () => {
    applySysctls(sysctls);
  });
}

/** The gateway address the bridge should carry for an IP config: the gateway with the subnet's prefix length. */
export function gatewayPrefix(ip: CniIpConfig): string | undefined {
  const address = parsePrefix(ip.address);
  if (!ip.gateway || !address) return undefined;
  const gw = parsePrefix(`${ip.gateway}/${address.length}`);
  return gw ? formatPrefix(gw) : undefined;
}

/** The first address of the subnet: the gateway the reference plugin assumes when IPAM gives none. */
export function firstAddress(prefix: IpPrefix): string {
  const bits = prefix.address.family === 4 ? 32n : 128n;
  const mask = (1n << (bits - BigInt(prefix.length))) - 1n;
  return formatIp({ family: prefix.address.family, value: (prefix.address.value & ~mask) + 1n });
}
