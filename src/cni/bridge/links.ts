/**
 * The links of an attachment: the node's bridge, a veth pair with its host
 * end on the bridge and its container end named CNI_IFNAME in the pod's
 * namespace. Functions named compile* and plan* decide and touch nothing;
 * apply* and ensure* carry the decision out over rtnetlink.
 */
import { closeSync, openSync } from 'node:fs';
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
import { IFF_PROMISC, IFF_UP } from '../../kernel/netlink/message.js';
import { NetlinkError, type RouteSocket } from '../../kernel/netlink/socket.js';

import {
  type IpAddress,
  type IpPrefix,
  formatIp,
  formatPrefix,
  ipEqual,
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
  | { op: 'address'; prefix: IpPrefix; nodad: boolean }
  | { op: 'up' }
  | { op: 'route'; route: Omit<RouteSpec, 'oif'> };

/**
 * The pod's side: its addresses, the link up, its routes. A route without a
 * gateway goes via its family's gateway (libcni's ConfigureIface); IPv6
 * addresses skip duplicate address detection unless `enabledad`.
 */
export function compileContainerSide(
  ips: readonly CniIpConfig[],
  routes: readonly CniRoute[],
  enableDad: boolean,
): ContainerStep[] {
  const steps: ContainerStep[] = [];
  const gateways = new Map<number, IpAddress>();
  for (const ip of ips) {
    const prefix = parsePrefix(ip.address);
    if (!prefix) {
      throw new CniError(CniErrorCode.InvalidNetworkConfig, `invalid address "${ip.address}"`);
    }
    steps.push({ op: 'address', prefix, nodad: prefix.address.family === 6 && !enableDad });
    const gateway = ip.gateway ? parseIp(ip.gateway) : undefined;
    if (gateway && !gateways.has(gateway.family)) gateways.set(gateway.family, gateway);
  }
  steps.push({ op: 'up' });
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
    if (step.op === 'address') addAddress(sock, index, step.prefix, { nodad: step.nodad });
    else if (step.op === 'up') setLinkFlags(sock, index, IFF_UP);
    else addRoute(sock, { ...step.route, oif: index });
  }
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
