/**
 * nfnetlink_log (linux/netfilter/nfnetlink_log.h, linux/netfilter/nfnetlink.h),
 * the userspace end of nftables' `log group N`: the NFULNL_MSG_CONFIG
 * request that binds a socket to a group, and the NFULNL_MSG_PACKET
 * messages the kernel then sends it, down to the logged packet's IP and
 * L4 headers. Pure, like message.ts, whose attribute codec it uses;
 * nfnetlink's own fields and attributes are big-endian.
 */
import { formatIp, ipFromBytes } from '../../netaddr/ip.js';
import { type Attribute, AF_UNSPEC, type DecodedMessage, decodeAttributes, u8 } from './message.js';

/** The subsystem in the high byte of an nfnetlink message type (linux/netfilter/nfnetlink.h). */
export const NFNL_SUBSYS_ULOG = 4;
export const NFNETLINK_V0 = 0;

export const NFULNL_MSG_PACKET = 0;
export const NFULNL_MSG_CONFIG = 1;
/** The netlink message types: subsystem << 8 | message. */
export const NFLOG_PACKET = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
export const NFLOG_CONFIG = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;

/** enum nfulnl_msg_config_cmds. PF_BIND/PF_UNBIND are no-ops since Linux 3.17 and unused. */
export const NFULNL_CFG_CMD_BIND = 1;
export const NFULNL_CFG_CMD_UNBIND = 2;

/** enum nfulnl_attr_config. */
export const NFULA_CFG_CMD = 1;
export const NFULA_CFG_MODE = 2;
export const NFULA_CFG_NLBUFSIZ = 3;
export const NFULA_CFG_TIMEOUT = 4;
export const NFULA_CFG_QTHRESH = 5;
export const NFULA_CFG_FLAGS = 6;

export const NFULNL_COPY_NONE = 0;
export const NFULNL_COPY_META = 1;
export const NFULNL_COPY_PACKET = 2;

/** enum nfulnl_attr_type: the attributes of a packet message. */
export const NFULA_PACKET_HDR = 1;
export const NFULA_MARK = 2;
export const NFULA_TIMESTAMP = 3;
export const NFULA_IFINDEX_INDEV = 4;
export const NFULA_IFINDEX_OUTDEV = 5;
export const NFULA_PAYLOAD = 9;
export const NFULA_PREFIX = 10;

/** Enough of a packet for its IP header (options or IPv6 extension headers included) and ports. */
export const DEFAULT_COPY_RANGE = 128;

function be32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

/** struct nfgenmsg: the family, NFNETLINK_V0 and the resource (here the group) in network order. */
export function nfgenmsg(family: number, resourceId: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt8(family, 0);
  b.writeUInt8(NFNETLINK_V0, 1);
  b.writeUInt16BE(resourceId, 2);
  return b;
}

/** A request for NetlinkSocket.request(): the message type, family message and attributes. */
export interface NfnetlinkRequest {
  type: number;
  body: Buffer;
  attributes: Attribute[];
}

export interface NflogBindOptions {
  /** Bytes of each packet to copy (NFULNL_COPY_PACKET); default DEFAULT_COPY_RANGE. */
  copyRange?: number;
  /** Longest time the kernel holds logged packets before sending them, in 1/100 s. */
  flushTimeout?: number;
  /** Packets the kernel batches into one datagram at most. */
  queueThreshold?: number;
}

function checkGroup(group: number): void {
  if (!Number.isInteger(group) || group < 0 || group > 0xffff) {
    throw new RangeError(`An nflog group must be an integer 0-65535: got ${group}`);
  }
}

/**
 * Binds the sending socket to `group` and sets its copy mode, in one
 * NFULNL_MSG_CONFIG message: the kernel applies NFULA_CFG_CMD first, then
 * the parameters to the instance it just made (nfulnl_recv_config).
 */
export function nflogBindRequest(group: number, options: NflogBindOptions = {}): NfnetlinkRequest {
  checkGroup(group);
  // struct nfulnl_msg_config_mode is packed: __be32 copy_range, __u8 copy_mode, __u8 _pad.
  const mode = Buffer.alloc(6);
  mode.writeUInt32BE(options.copyRange ?? DEFAULT_COPY_RANGE, 0);
  mode.writeUInt8(NFULNL_COPY_PACKET, 4);
  const attributes: Attribute[] = [
    { type: NFULA_CFG_CMD, value: u8(NFULNL_CFG_CMD_BIND) },
    { type: NFULA_CFG_MODE, value: mode },
  ];
  if (options.flushTimeout !== undefined) {
    attributes.push({ type: NFULA_CFG_TIMEOUT, value: be32(options.flushTimeout) });
  }
  if (options.queueThreshold !== undefined) {
    attributes.push({ type: NFULA_CFG_QTHRESH, value: be32(options.queueThreshold) });
  }
  return { type: NFLOG_CONFIG, body: nfgenmsg(AF_UNSPEC, group), attributes };
}

/** Releases `group` (closing the socket releases it too). */
export function nflogUnbindRequest(group: number): NfnetlinkRequest {
  checkGroup(group);
  return {
    type: NFLOG_CONFIG,
    body: nfgenmsg(AF_UNSPEC, group),
    attributes: [{ type: NFULA_CFG_CMD, value: u8(NFULNL_CFG_CMD_UNBIND) }],
  };
}

/** One logged packet, as nfnetlink_log reports it. */
export interface NflogPacket {
  group: number;
  /** nfgenmsg's family: the hook's NFPROTO_* (2 IPv4, 10 IPv6, 7 bridge). */
  family: number;
  /** The rule's `log prefix`, '' when it has none. */
  prefix: string;
  /** The packet from its network header, at most the copy range. */
  payload?: Buffer;
  inIfindex?: number;
  outIfindex?: number;
  /** The packet's timestamp, when the kernel had one (NFULA_TIMESTAMP is optional). */
  time?: Date;
  mark?: number;
}

/** A packet message's fields; undefined when `message` is not one. */
export function decodeNflogPacket(message: DecodedMessage): NflogPacket | undefined {
  if (message.type !== NFLOG_PACKET || message.payload.length < 4) return undefined;
  const attrs = decodeAttributes(message.payload.subarray(4));
  const packet: NflogPacket = {
    family: message.payload.readUInt8(0),
    group: message.payload.readUInt16BE(2),
    prefix: '',
  };
  const prefix = attrs.get(NFULA_PREFIX);
  if (prefix) {
    const nul = prefix.indexOf(0);
    packet.prefix = prefix.subarray(0, nul < 0 ? prefix.length : nul).toString('utf8');
  }
  const payload = attrs.get(NFULA_PAYLOAD);
  if (payload) packet.payload = payload;
  const be32At = (type: number): number | undefined => {
    const value = attrs.get(type);
    return value && value.length >= 4 ? value.readUInt32BE(0) : undefined;
  };
  const inIfindex = be32At(NFULA_IFINDEX_INDEV);
  if (inIfindex !== undefined) packet.inIfindex = inIfindex;
  const outIfindex = be32At(NFULA_IFINDEX_OUTDEV);
  if (outIfindex !== undefined) packet.outIfindex = outIfindex;
  const mark = be32At(NFULA_MARK);
  if (mark !== undefined) packet.mark = mark;
  // struct nfulnl_msg_packet_timestamp: __aligned_be64 sec, usec.
  const timestamp = attrs.get(NFULA_TIMESTAMP);
  if (timestamp && timestamp.length >= 16) {
    const sec = Number(timestamp.readBigUInt64BE(0));
    const usec = Number(timestamp.readBigUInt64BE(8));
    packet.time = new Date(sec * 1000 + Math.floor(usec / 1000));
  }
  return packet;
}

/** IANA protocol numbers and the names nft and /etc/protocols use. */
const protocolNames: Record<number, string> = {
  1: 'icmp',
  2: 'igmp',
  4: 'ipip',
  6: 'tcp',
  17: 'udp',
  33: 'dccp',
  41: 'ipv6',
  47: 'gre',
  50: 'esp',
  51: 'ah',
  58: 'icmpv6',
  132: 'sctp',
  136: 'udplite',
};

/** Protocols whose header starts with the source and destination ports. */
const withPorts = new Set([6, 17, 33, 132, 136]);
const ICMP = 1;
const ICMPV6 = 58;

/** The name of an IP protocol number: tcp, udp, ...; the number itself when unnamed. */
export function protocolName(protocol: number): string {
  return protocolNames[protocol] ?? String(protocol);
}

/** A packet's addresses and transport, from its IP header (and the L4 header when copied). */
export interface IpPacketHeaders {
  family: 4 | 6;
  src: string;
  dst: string;
  /** The transport's name (tcp, udp, sctp, icmp, icmpv6, ...), or its number as text. */
  protocol: string;
  protocolNumber: number;
  /** TCP, UDP, UDP-Lite, SCTP and DCCP: absent in a non-first fragment or a short copy. */
  srcPort?: number;
  dstPort?: number;
  icmpType?: number;
  icmpCode?: number;
}

/**
 * An IPv4 or IPv6 packet's headers, as far as the copied bytes reach;
 * undefined when the bytes do not start with a whole IP header. IPv6
 * hop-by-hop, routing, fragment, destination options and AH headers are
 * skipped to reach the transport.
 */
export function parseIpPacket(bytes: Uint8Array): IpPacketHeaders | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 1) return undefined;
  const version = b.readUInt8(0) >> 4;
  if (version === 4) return parseIpv4(b);
  if (version === 6) return parseIpv6(b);
  return undefined;
}

function parseIpv4(b: Buffer): IpPacketHeaders | undefined {
  if (b.length < 20) return undefined;
  const headerLength = (b.readUInt8(0) & 0x0f) * 4;
  if (headerLength < 20) return undefined;
  const protocolNumber = b.readUInt8(9);
  const headers = addresses(4, b.subarray(12, 16), b.subarray(16, 20), protocolNumber);
  // Only the first fragment (offset 0) carries the transport header.
  const firstFragment = (b.readUInt16BE(6) & 0x1fff) === 0;
  if (firstFragment) transport(headers, b.subarray(Math.min(headerLength, b.length)));
  return headers;
}

const FRAGMENT = 44;
const AUTHENTICATION = 51;
/** Hop-by-hop options, routing, fragment, AH, destination options (RFC 8200 section 4). */
const extensionHeaders = new Set([0, 43, FRAGMENT, AUTHENTICATION, 60]);

function parseIpv6(b: Buffer): IpPacketHeaders | undefined {
  if (b.length < 40) return undefined;
  let next = b.readUInt8(6);
  let offset = 40;
  let firstFragment = true;
  // Each extension header names the next one; the transport header comes last.
  while (extensionHeaders.has(next) && offset + 8 <= b.length) {
    const headerNext = b.readUInt8(offset);
    if (next === FRAGMENT) {
      firstFragment = (b.readUInt16BE(offset + 2) & 0xfff8) === 0;
      offset += 8;
    } else if (next === AUTHENTICATION) {
      offset += (b.readUInt8(offset + 1) + 2) * 4; // RFC 4302: 4-octet units, minus 2
    } else {
      offset += (b.readUInt8(offset + 1) + 1) * 8; // 8-octet units, not counting the first 8
    }
    next = headerNext;
  }
  const headers = addresses(6, b.subarray(8, 24), b.subarray(24, 40), next);
  if (firstFragment && !extensionHeaders.has(next) && offset <= b.length) {
    transport(headers, b.subarray(offset));
  }
  return headers;
}

function addresses(
  family: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  protocolNumber: number,
): IpPacketHeaders {
  const text = (bytes: Uint8Array): string => {
    const ip = ipFromBytes(bytes);
    if (!ip) throw new Error(`An IPv${family} address is 4 or 16 bytes: got ${bytes.length}`);
    return formatIp(ip);
  };
  return {
    family,
    src: text(src),
    dst: text(dst),
    protocol: protocolName(protocolNumber),
    protocolNumber,
  };
}

function transport(headers: IpPacketHeaders, l4: Buffer): void {
  if (withPorts.has(headers.protocolNumber) && l4.length >= 4) {
    headers.srcPort = l4.readUInt16BE(0);
    headers.dstPort = l4.readUInt16BE(2);
  } else if (
    (headers.protocolNumber === ICMP || headers.protocolNumber === ICMPV6) &&
    l4.length >= 2
  ) {
    headers.icmpType = l4.readUInt8(0);
    headers.icmpCode = l4.readUInt8(1);
  }
}
