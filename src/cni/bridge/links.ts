/**
 * The links of an attachment: the node's bridge, a veth pair with its host
 * end on the bridge and its container end named CNI_IFNAME in the pod's
 * namespace. Functions named compile* return `ip -batch` lines and touch
 * nothing; the others read or change the kernel.
 */
import { CniError, CniErrorCode } from '../errors.js';
import type { CniIpConfig, CniRoute } from '../result.js';
import { ipBatch, ipJsonBatchAsync, quoteBatchWord } from '../../kernel/ip.js';
import { linkAttribute, linkKind } from '../../kernel/sysfs.js';
import {
  type IpPrefix,
  familyOf,
  formatIp,
  formatPrefix,
  ipEqual,
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
  return `veth${fnv1a64(`${network}\0${containerId}\0${ifname}`).toString(16).padStart(16, '0').slice(0, 11)}`;
}

/** True for names hostVethName makes. */
export function isStrataVethName(name: string): boolean {
  return /^veth[0-9a-f]{11}$/.test(name);
}

/**
 * 64-bit FNV-1a: spreads names well and costs nothing to start, where
 * loading node:crypto alone adds milliseconds to every plugin call. The name
 * needs no secrecy, only few collisions (44 bits kept).
 */
function fnv1a64(text: string): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash;
}

const aliasPrefix = 'strata-cni';

/** The alias written on the host end: says which network and attachment it belongs to. */
export function ownerAlias(network: string, containerId: string, ifname: string): string {
  return `${aliasPrefix} ${network} ${containerId} ${ifname}`;
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

const IFF_UP = 0x1;
const IFF_PROMISC = 0x100;

/**
 * Creates the bridge unless it exists, and makes sure it is up (and
 * promiscuous when asked), as the reference plugin's ensureBridge does for
 * new and existing bridges alike. An existing link of another kind is an error.
 */
export function ensureBridge(config: BridgeConfig): boolean {
  const kind = linkKind(config.bridge);
  if (kind === 'other') {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `bridge: "${config.bridge}" already exists and is not a bridge`,
    );
  }
  if (kind === 'bridge') {
    const flags = Number.parseInt(linkAttribute(config.bridge, 'flags') ?? '0', 16);
    const wanted: string[] = [];
    if ((flags & IFF_UP) === 0) wanted.push('up');
    if (config.promiscMode && (flags & IFF_PROMISC) === 0) wanted.push('promisc on');
    if (wanted.length > 0) ipBatch([`link set ${config.bridge} ${wanted.join(' ')}`]);
    return false;
  }
  const mtu = config.mtu ? ` mtu ${config.mtu}` : '';
  const lines = [`link add name ${config.bridge}${mtu} type bridge`];
  if (config.promiscMode) lines.push(`link set ${config.bridge} promisc on`);
  lines.push(`link set ${config.bridge} up`);
  try {
    ipBatch(lines);
  } catch (error) {
    // Another ADD may have created it between our look and our create.
    if (linkKind(config.bridge) !== 'bridge') {
      throw new CniError(CniErrorCode.Internal, `cannot create bridge ${config.bridge}`, {
        cause: error,
      });
    }
    return ensureBridge(config);
  }
  return true;
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

/** The bridge's current addresses, as `address/prefix`. */
export async function bridgeAddresses(bridge: string): Promise<string[]> {
  const [links] = await ipJsonBatchAsync([`addr show dev ${bridge}`]);
  const out: string[] = [];
  for (const link of links ?? []) {
    for (const a of (
      link as { addr_info?: { local?: string; prefixlen?: number; scope?: string }[] }
    ).addr_info ?? []) {
      if (a.local && a.prefixlen !== undefined && a.scope !== 'link')
        out.push(`${a.local}/${a.prefixlen}`);
    }
  }
  return out;
}

export interface HostVeth {
  config: BridgeConfig;
  hostVeth: string;
  alias: string;
  ifname: string;
  netns: string;
  mac: string;
}

/**
 * ip lines for the node's side of the pair. The first line makes the whole
 * pair in one netlink request: the container end straight into the pod's
 * namespace (no move between namespaces), the host end already on the bridge
 * and up. The alias, which GC reads, follows at once.
 */
export function compileHostVeth(h: HostVeth): string[] {
  const mtu = h.config.mtu ? ` mtu ${h.config.mtu}` : '';
  const lines = [
    `link add ${h.hostVeth}${mtu} master ${h.config.bridge} up type veth peer name ${h.ifname}${mtu} address ${h.mac} netns ${quoteBatchWord(h.netns)}`,
    `link set ${h.hostVeth} alias ${quoteBatchWord(h.alias)}`,
  ];
  const port: string[] = [];
  if (h.config.hairpinMode) port.push('hairpin on');
  if (h.config.portIsolation) port.push('isolated on');
  if (port.length > 0) lines.push(`link set ${h.hostVeth} type bridge_slave ${port.join(' ')}`);
  return lines;
}

/** ip lines that give the bridge its gateway addresses. */
export function compileBridgeAddresses(bridge: string, plan: BridgeAddressPlan): string[] {
  return [
    ...plan.remove.map((a) => `addr del ${a} dev ${bridge}`),
    ...plan.add.map((a) => `addr add ${a} dev ${bridge}${familyOf(a) === 6 ? ' nodad' : ''}`),
  ];
}

function routeLine(route: CniRoute, ifname: string, gateways: Map<number, string>): string {
  const family = familyOf(route.dst);
  const gw = route.gw ?? (family ? gateways.get(family) : undefined);
  let line = `route add ${route.dst}${gw ? ` via ${gw}` : ''} dev ${ifname}`;
  if (route.priority !== undefined) line += ` metric ${route.priority}`;
  if (route.table !== undefined) line += ` table ${route.table}`;
  if (route.scope !== undefined) line += ` scope ${route.scope}`;
  if (route.mtu !== undefined) line += ` mtu ${route.mtu}`;
  if (route.advmss !== undefined) line += ` advmss ${route.advmss}`;
  return line;
}

/** ip lines inside the pod: addresses, link up, routes (a route without gw goes via its family's gateway). */
export function compileContainerSide(
  ifname: string,
  ips: readonly CniIpConfig[],
  routes: readonly CniRoute[],
  enableDad: boolean,
): string[] {
  const lines: string[] = [];
  const gateways = new Map<number, string>();
  for (const ip of ips) {
    const family = familyOf(ip.address);
    lines.push(`addr add ${ip.address} dev ${ifname}${family === 6 && !enableDad ? ' nodad' : ''}`);
    if (ip.gateway && family && !gateways.has(family)) gateways.set(family, ip.gateway);
  }
  lines.push(`link set ${ifname} up`);
  for (const route of routes) lines.push(routeLine(route, ifname, gateways));
  return lines;
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
