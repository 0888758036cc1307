/**
 * The rtnetlink operations a CNI plugin needs, each one request on a
 * RouteSocket: links (bridge, veth pair, alias, flags, delete), addresses
 * and routes. The same requests `ip link`, `ip addr` and `ip route` send,
 * without a process per step.
 */
import {
  type IpAddress,
  type IpPrefix,
  formatPrefix,
  ipBytes,
  ipFromBytes,
} from '../../netaddr/ip.js';
import {
  AF_INET,
  AF_BRIDGE,
  AF_INET6,
  AF_UNSPEC,
  type Attribute,
  IFA_ADDRESS,
  IFA_F_NODAD,
  IFA_FLAGS,
  IFA_LOCAL,
  IFF_PROMISC,
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_IFALIAS,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINK,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  RTA_DST,
  RTA_GATEWAY,
  RTA_METRICS,
  RTA_OIF,
  RTA_PRIORITY,
  RTA_TABLE,
  RTAX_ADVMSS,
  RTAX_MTU,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETROUTE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RTM_SETLINK,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  VETH_INFO_PEER,
  cstring,
  u8,
  IFLA_BRPORT_ISOLATED,
  IFLA_BRPORT_MODE,
  IFLA_PROTINFO,
  decodeAttributes,
  encodeAttributes,
  ifaddrmsg,
  ifinfomsg,
  macBytes,
  rtmsg,
  u32,
} from './message.js';
import { NetlinkError, type RouteSocket } from './socket.js';

const familyCode = { 4: AF_INET, 6: AF_INET6 } as const;

/** IFLA_LINKINFO's attributes for the master's view of a port (linux/if_link.h). */
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INFO_SLAVE_DATA = 5;
/** IFA_FLAGS: no prefix route for the address's subnet (linux/if_addr.h). */
const IFA_F_NOPREFIXROUTE = 0x200;

/** A bridge port's flags, as the bridge reports them for its port. */
export interface BridgePortInfo {
  hairpin: boolean;
  isolated: boolean;
}

export interface LinkInfo {
  index: number;
  name: string;
  flags: number;
  /** IFLA_INFO_KIND: "bridge", "veth", ...; empty for a link with no kind (a physical one). */
  kind: string;
  mac: string;
  mtu: number;
  /** IFLA_IFALIAS; empty when unset. */
  alias: string;
  /** The index of the bridge (or other master) the link is enslaved to. */
  master?: number;
  /** IFLA_LINK: for a veth, its peer's index (in the peer's namespace). */
  peerIndex?: number;
  /** For a port of a bridge: its port flags (IFLA_INFO_SLAVE_DATA). */
  bridgePort?: BridgePortInfo;
}

function text(value: Buffer | undefined): string {
  return value ? value.toString('utf8').replace(/\0+$/, '') : '';
}

function decodeLink(payload: Buffer): LinkInfo {
  const attrs = decodeAttributes(payload.subarray(16));
  const raw = attrs.get(IFLA_LINKINFO);
  const linkinfo = raw ? decodeAttributes(raw) : undefined;
  const mac = attrs.get(IFLA_ADDRESS);
  const info: LinkInfo = {
    index: payload.readInt32LE(4),
    name: text(attrs.get(IFLA_IFNAME)),
    flags: payload.readUInt32LE(8),
    kind: text(linkinfo?.get(IFLA_INFO_KIND)),
    mac: mac ? [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':') : '',
    mtu: attrs.get(IFLA_MTU)?.readUInt32LE(0) ?? 0,
    alias: text(attrs.get(IFLA_IFALIAS)),
  };
  const master = attrs.get(IFLA_MASTER);
  if (master) info.master = master.readUInt32LE(0);
  const peer = attrs.get(IFLA_LINK);
  if (peer) info.peerIndex = peer.readUInt32LE(0);
  const portData = linkinfo?.get(IFLA_INFO_SLAVE_DATA);
  if (text(linkinfo?.get(IFLA_INFO_SLAVE_KIND)) === 'bridge' && portData) {
    const port = decodeAttributes(portData);
    info.bridgePort = {
      hairpin: port.get(IFLA_BRPORT_MODE)?.readUInt8(0) === 1,
      isolated: port.get(IFLA_BRPORT_ISOLATED)?.readUInt8(0) === 1,
    };
  }
  return info;
}

/** A link by name, as the kernel sees it now; undefined when there is no such link. */
export function getLink(sock: RouteSocket, name: string): LinkInfo | undefined {
  try {
    const [reply] = sock.request(`looking up ${name}`, RTM_GETLINK, 0, ifinfomsg(), [
      { type: IFLA_IFNAME, value: cstring(name) },
    ]);
    return reply ? decodeLink(reply.payload) : undefined;
  } catch (error) {
    if (error instanceof NetlinkError && error.code === 'ENODEV') return undefined;
    throw error;
  }
}

/** Every link of the socket's namespace. */
export function listLinks(sock: RouteSocket): LinkInfo[] {
  return sock
    .request('listing links', RTM_GETLINK, NLM_F_DUMP, ifinfomsg())
    .map((m) => decodeLink(m.payload));
}

/** Sets a link's MAC address. */
export function setLinkMac(sock: RouteSocket, index: number, mac: string): void {
  sock.request(`setting the MAC of link ${index}`, RTM_SETLINK, 0, ifinfomsg({ index }), [
    { type: IFLA_ADDRESS, value: macBytes(mac) },
  ]);
}

/** Sets bridge port flags (hairpin, isolation) on a port of a bridge. */
export function setBridgePort(
  sock: RouteSocket,
  index: number,
  port: { hairpin?: boolean; isolated?: boolean },
): void {
  const flags: Attribute[] = [];
  if (port.hairpin !== undefined)
    flags.push({ type: IFLA_BRPORT_MODE, value: u8(port.hairpin ? 1 : 0) });
  if (port.isolated !== undefined)
    flags.push({ type: IFLA_BRPORT_ISOLATED, value: u8(port.isolated ? 1 : 0) });
  if (flags.length === 0) return;
  sock.request(
    `setting bridge port flags on link ${index}`,
    RTM_SETLINK,
    0,
    ifinfomsg({ family: AF_BRIDGE, index }),
    [{ type: IFLA_PROTINFO, value: flags, nestedFlag: true }],
  );
}

/** A link's index by name; undefined when there is no such link. */
export function linkIndex(sock: RouteSocket, name: string): number | undefined {
  return getLink(sock, name)?.index;
}

/** Creates a bridge, up (and promiscuous when asked). */
export function createBridge(
  sock: RouteSocket,
  name: string,
  options: { mtu?: number; promisc?: boolean; mac?: string },
): void {
  const flags = IFF_UP | (options.promisc ? IFF_PROMISC : 0);
  const attrs: Attribute[] = [{ type: IFLA_IFNAME, value: cstring(name) }];
  if (options.mtu) attrs.push({ type: IFLA_MTU, value: u32(options.mtu) });
  if (options.mac) attrs.push({ type: IFLA_ADDRESS, value: macBytes(options.mac) });
  attrs.push({ type: IFLA_LINKINFO, value: [{ type: IFLA_INFO_KIND, value: cstring('bridge') }] });
  sock.request(
    `creating bridge ${name}`,
    RTM_NEWLINK,
    NLM_F_CREATE | NLM_F_EXCL,
    ifinfomsg({ flags, change: flags }),
    attrs,
  );
}

/** Sets (and only sets) the given flags on a link. */
export function setLinkFlags(sock: RouteSocket, index: number, flags: number): void {
  sock.request(
    `setting flags on link ${index}`,
    RTM_SETLINK,
    0,
    ifinfomsg({ index, flags, change: flags }),
  );
}

export interface VethPair {
  name: string;
  mac?: string;
  mtu?: number;
  /** Index of the bridge the host end joins. */
  master?: number;
  peer: { name: string; mac?: string; mtu?: number; netnsFd: number };
}

/**
 * Creates a veth pair in one request: the peer is born in the namespace of
 * `peer.netnsFd` (no move between namespaces), the host end joins its
 * master and comes up.
 */
export function createVethPair(sock: RouteSocket, pair: VethPair): void {
  const peer: Attribute[] = [{ type: IFLA_IFNAME, value: cstring(pair.peer.name) }];
  if (pair.peer.mac) peer.push({ type: IFLA_ADDRESS, value: macBytes(pair.peer.mac) });
  if (pair.peer.mtu) peer.push({ type: IFLA_MTU, value: u32(pair.peer.mtu) });
  peer.push({ type: IFLA_NET_NS_FD, value: u32(pair.peer.netnsFd) });
  const attrs: Attribute[] = [{ type: IFLA_IFNAME, value: cstring(pair.name) }];
  if (pair.mtu) attrs.push({ type: IFLA_MTU, value: u32(pair.mtu) });
  if (pair.mac) attrs.push({ type: IFLA_ADDRESS, value: macBytes(pair.mac) });
  if (pair.master !== undefined) attrs.push({ type: IFLA_MASTER, value: u32(pair.master) });
  attrs.push({
    type: IFLA_LINKINFO,
    value: [
      { type: IFLA_INFO_KIND, value: cstring('veth') },
      {
        type: IFLA_INFO_DATA,
        value: [
          { type: VETH_INFO_PEER, value: Buffer.concat([ifinfomsg(), encodeAttributes(peer)]) },
        ],
      },
    ],
  });
  sock.request(
    `creating veth pair ${pair.name}/${pair.peer.name}`,
    RTM_NEWLINK,
    NLM_F_CREATE | NLM_F_EXCL,
    ifinfomsg({ flags: IFF_UP, change: IFF_UP }),
    attrs,
  );
}

/** Sets a link's alias (ifalias), by name. */
export function setLinkAlias(sock: RouteSocket, name: string, alias: string): void {
  sock.request(`setting the alias of ${name}`, RTM_SETLINK, 0, ifinfomsg(), [
    { type: IFLA_IFNAME, value: cstring(name) },
    { type: IFLA_IFALIAS, value: Buffer.from(alias, 'utf8') },
  ]);
}

/** Deletes a link by name; false when it did not exist. */
export function deleteLink(sock: RouteSocket, name: string): boolean {
  try {
    sock.request(`deleting ${name}`, RTM_DELLINK, 0, ifinfomsg(), [
      { type: IFLA_IFNAME, value: cstring(name) },
    ]);
    return true;
  } catch (error) {
    if (error instanceof NetlinkError && error.code === 'ENODEV') return false;
    throw error;
  }
}

function addressAttributes(prefix: IpPrefix): Attribute[] {
  const bytes = ipBytes(prefix.address);
  return [
    { type: IFA_LOCAL, value: bytes },
    { type: IFA_ADDRESS, value: bytes },
  ];
}

/**
 * Adds an address (with its prefix length) to a link; IPv6 with `nodad`
 * skips duplicate address detection, and `noprefixroute` leaves out the
 * kernel's route to the address's subnet.
 */
export function addAddress(
  sock: RouteSocket,
  index: number,
  prefix: IpPrefix,
  options: { nodad?: boolean; noprefixroute?: boolean } = {},
): void {
  const flags =
    (options.nodad ? IFA_F_NODAD : 0) | (options.noprefixroute ? IFA_F_NOPREFIXROUTE : 0);
  const attrs = addressAttributes(prefix);
  if (flags) attrs.push({ type: IFA_FLAGS, value: u32(flags) });
  sock.request(
    `adding address ${describePrefix(prefix)}`,
    RTM_NEWADDR,
    NLM_F_CREATE | NLM_F_EXCL,
    ifaddrmsg(familyCode[prefix.address.family], prefix.length, flags, index),
    attrs,
  );
}

export function deleteAddress(sock: RouteSocket, index: number, prefix: IpPrefix): void {
  sock.request(
    `deleting address ${describePrefix(prefix)}`,
    RTM_DELADDR,
    0,
    ifaddrmsg(familyCode[prefix.address.family], prefix.length, 0, index),
    addressAttributes(prefix),
  );
}

/**
 * The global addresses of a link (the kernel's own link-local ones are left
 * out), of one family or both. The dump covers every link of the namespace,
 * so asking for one family skips the IPv6 link-local address every veth has.
 */
export function listAddresses(sock: RouteSocket, index: number, family?: 4 | 6): IpPrefix[] {
  const af = family ? familyCode[family] : AF_UNSPEC;
  const replies = sock.request(
    'listing addresses',
    RTM_GETADDR,
    NLM_F_DUMP,
    ifaddrmsg(af, 0, 0, 0),
  );
  const out: IpPrefix[] = [];
  for (const m of replies) {
    const length = m.payload.readUInt8(1);
    const scope = m.payload.readUInt8(3);
    if (m.payload.readUInt32LE(4) !== index || scope === RT_SCOPE_LINK) continue;
    const attrs = decodeAttributes(m.payload.subarray(8));
    const raw = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
    const address = raw ? ipFromBytes(raw) : undefined;
    if (address) out.push({ address, length });
  }
  return out;
}

export interface RouteSpec {
  dst: IpPrefix;
  gateway?: IpAddress;
  oif: number;
  priority?: number;
  table?: number;
  scope?: number;
  mtu?: number;
  advmss?: number;
}

/** Adds a route; without a gateway it is a link-scope route on `oif`. */
export function addRoute(sock: RouteSocket, route: RouteSpec): void {
  const family = route.dst.address.family;
  const table = route.table ?? RT_TABLE_MAIN;
  const scope = route.scope ?? (route.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  const attrs: Attribute[] = [];
  if (route.dst.length > 0) attrs.push({ type: RTA_DST, value: ipBytes(route.dst.address) });
  if (route.gateway) attrs.push({ type: RTA_GATEWAY, value: ipBytes(route.gateway) });
  attrs.push({ type: RTA_OIF, value: u32(route.oif) });
  if (route.priority !== undefined) attrs.push({ type: RTA_PRIORITY, value: u32(route.priority) });
  if (table > 255) attrs.push({ type: RTA_TABLE, value: u32(table) });
  const metrics: Attribute[] = [];
  if (route.mtu !== undefined) metrics.push({ type: RTAX_MTU, value: u32(route.mtu) });
  if (route.advmss !== undefined) metrics.push({ type: RTAX_ADVMSS, value: u32(route.advmss) });
  if (metrics.length > 0) attrs.push({ type: RTA_METRICS, value: metrics });
  sock.request(
    `adding route to ${describePrefix(route.dst)}`,
    RTM_NEWROUTE,
    NLM_F_CREATE | NLM_F_EXCL,
    rtmsg({ family: familyCode[family], dstLength: route.dst.length, table, scope }),
    attrs,
  );
}

export interface InstalledRoute {
  dst: IpPrefix;
  gateway?: IpAddress;
  oif?: number;
  table: number;
}

/** The routes of one family in a namespace (every table). */
export function listRoutes(sock: RouteSocket, family: 4 | 6): InstalledRoute[] {
  const replies = sock.request(
    'listing routes',
    RTM_GETROUTE,
    NLM_F_DUMP,
    rtmsg({ family: familyCode[family], dstLength: 0, table: 0, scope: 0 }),
  );
  const zero = { family, value: 0n };
  return replies.map((m) => {
    const dstLength = m.payload.readUInt8(1);
    const attrs = decodeAttributes(m.payload.subarray(12));
    const dst = attrs.get(RTA_DST);
    const gateway = attrs.get(RTA_GATEWAY);
    const oif = attrs.get(RTA_OIF);
    const table = attrs.get(RTA_TABLE)?.readUInt32LE(0) ?? m.payload.readUInt8(4);
    const route: InstalledRoute = {
      dst: { address: (dst && ipFromBytes(dst)) || zero, length: dstLength },
      table,
    };
    const gw = gateway && ipFromBytes(gateway);
    if (gw) route.gateway = gw;
    if (oif) route.oif = oif.readUInt32LE(0);
    return route;
  });
}

function describePrefix(prefix: IpPrefix): string {
  return formatPrefix(prefix);
}
