/**
 * rtnetlink messages (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h),
 * encoded and decoded as plain bytes: a header, a fixed family message
 * (ifinfomsg, ifaddrmsg, rtmsg) and type-length-value attributes, each
 * padded to 4 bytes. Pure: nothing here touches a socket.
 */

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_DUMP = 0x300;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_GETROUTE = 26;

export const AF_UNSPEC = 0;
export const AF_BRIDGE = 7;
export const AF_INET = 2;
export const AF_INET6 = 10;

export const IFF_UP = 0x1;
export const IFF_PROMISC = 0x100;

export const IFLA_ADDRESS = 1;
export const IFLA_LINK = 5;
export const IFLA_PROTINFO = 12;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_MASTER = 10;
export const IFLA_LINKINFO = 18;
export const IFLA_IFALIAS = 20;
export const IFLA_NET_NS_FD = 28;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const VETH_INFO_PEER = 1;
/** Bridge port attributes inside IFLA_PROTINFO (linux/if_link.h). */
export const IFLA_BRPORT_MODE = 4;
export const IFLA_BRPORT_ISOLATED = 33;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02;

export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_METRICS = 8;
export const RTA_TABLE = 15;
export const RTAX_MTU = 2;
export const RTAX_ADVMSS = 8;

export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RTN_UNICAST = 1;

// Nested attributes are written without NLA_F_NESTED, as iproute2 writes them, unless the
// attribute asks for it: the bridge reads IFLA_PROTINFO as nested only when the flag is set.
const NLA_F_NESTED = 0x8000;
const headerLength = 16;

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** One attribute: a type and its payload, or nested attributes. */
export interface Attribute {
  type: number;
  value: Uint8Array | Attribute[];
  /** Sets NLA_F_NESTED on the type. */
  nestedFlag?: boolean;
}

export function u8(value: number): Uint8Array {
  return Uint8Array.of(value & 0xff);
}

export function u32(value: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return b;
}

/** A NUL-terminated string, as the kernel wants names and kinds. */
export function cstring(value: string): Uint8Array {
  return Buffer.concat([Buffer.from(value, 'utf8'), Buffer.alloc(1)]);
}

function attributeLength(a: Attribute): number {
  const payload = Array.isArray(a.value)
    ? a.value.reduce((n, child) => n + align4(attributeLength(child)), 0)
    : a.value.length;
  return 4 + payload;
}

function writeAttributes(target: Buffer, offset: number, attributes: readonly Attribute[]): number {
  for (const a of attributes) {
    const length = attributeLength(a);
    target.writeUInt16LE(length, offset);
    target.writeUInt16LE(a.nestedFlag ? a.type | NLA_F_NESTED : a.type, offset + 2);
    if (Array.isArray(a.value)) writeAttributes(target, offset + 4, a.value);
    else target.set(a.value, offset + 4);
    offset += align4(length);
  }
  return offset;
}

/** The attributes' bytes, for a payload that carries attributes itself (a veth peer). */
export function encodeAttributes(attributes: readonly Attribute[]): Uint8Array {
  const size = attributes.reduce((n, a) => n + align4(attributeLength(a)), 0);
  const b = Buffer.alloc(size);
  writeAttributes(b, 0, attributes);
  return b;
}

/** A whole message: header, the family message, attributes. */
export function encodeMessage(
  type: number,
  flags: number,
  seq: number,
  body: Uint8Array,
  attributes: readonly Attribute[] = [],
): Buffer {
  const attrs = encodeAttributes(attributes);
  const length = headerLength + align4(body.length) + attrs.length;
  const b = Buffer.alloc(length);
  b.writeUInt32LE(length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq, 8);
  b.writeUInt32LE(0, 12);
  b.set(body, headerLength);
  b.set(attrs, headerLength + align4(body.length));
  return b;
}

export interface IfInfo {
  family?: number;
  index?: number;
  flags?: number;
  change?: number;
}

/** struct ifinfomsg. */
export function ifinfomsg(info: IfInfo = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(info.family ?? AF_UNSPEC, 0);
  b.writeInt32LE(info.index ?? 0, 4);
  b.writeUInt32LE(info.flags ?? 0, 8);
  b.writeUInt32LE(info.change ?? 0, 12);
  return b;
}

/** struct ifaddrmsg. */
export function ifaddrmsg(
  family: number,
  prefixLength: number,
  flags: number,
  index: number,
): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(family, 0);
  b.writeUInt8(prefixLength, 1);
  b.writeUInt8(flags & 0xff, 2);
  b.writeUInt8(RT_SCOPE_UNIVERSE, 3);
  b.writeUInt32LE(index, 4);
  return b;
}

/** struct rtmsg. */
export function rtmsg(fields: {
  family: number;
  dstLength: number;
  table: number;
  scope: number;
}): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(fields.family, 0);
  b.writeUInt8(fields.dstLength, 1);
  b.writeUInt8(0, 2);
  b.writeUInt8(0, 3);
  b.writeUInt8(fields.table > 255 ? 0 : fields.table, 4);
  b.writeUInt8(RTPROT_BOOT, 5);
  b.writeUInt8(fields.scope, 6);
  b.writeUInt8(RTN_UNICAST, 7);
  return b;
}

export interface DecodedMessage {
  type: number;
  flags: number;
  seq: number;
  /** The bytes after the header. */
  payload: Buffer;
}

/** Splits a datagram into its messages. */
export function decodeMessages(data: Buffer): DecodedMessage[] {
  const out: DecodedMessage[] = [];
  let offset = 0;
  while (offset + headerLength <= data.length) {
    const length = data.readUInt32LE(offset);
    if (length < headerLength || offset + length > data.length) break;
    out.push({
      type: data.readUInt16LE(offset + 4),
      flags: data.readUInt16LE(offset + 6),
      seq: data.readUInt32LE(offset + 8),
      payload: data.subarray(offset + headerLength, offset + length),
    });
    offset += align4(length);
  }
  return out;
}

/** The attributes in `data`, by type (the last of a repeated type wins). */
export function decodeAttributes(data: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let offset = 0;
  while (offset + 4 <= data.length) {
    const length = data.readUInt16LE(offset);
    if (length < 4 || offset + length > data.length) break;
    out.set(
      data.readUInt16LE(offset + 2) & ~NLA_F_NESTED,
      data.subarray(offset + 4, offset + length),
    );
    offset += align4(length);
  }
  return out;
}

/** The (negative) errno of an NLMSG_ERROR payload; 0 is an acknowledgement. */
export function errorCode(payload: Buffer): number {
  return payload.readInt32LE(0);
}

/** A MAC address as 6 bytes. */
export function macBytes(mac: string): Uint8Array {
  return Buffer.from(mac.split(':').map((h) => Number.parseInt(h, 16)));
}
