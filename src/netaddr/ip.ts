/**
 * IP addresses and prefixes as numbers, for range arithmetic. Parsing and
 * the canonical text form (RFC 5952 for IPv6, the form Go's net.IP prints and
 * host-local uses for file names) come from ipaddr.js.
 */
import ipaddr from 'ipaddr.js';

export type IpFamily = 4 | 6;

export interface IpAddress {
  family: IpFamily;
  value: bigint;
}

export interface IpPrefix {
  /** The address as written (host bits may be set: `10.1.0.5/24`). */
  address: IpAddress;
  length: number;
}

export function familyBits(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

const dottedQuad = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * Plain IPv4 text (no leading zeros) without the library: the IPAM store
 * parses every file name on every ADD, and ipaddr.js's general parser is
 * most of that time.
 */
function parseDottedQuad(text: string): IpAddress | undefined {
  const m = dottedQuad.exec(text);
  if (!m) return undefined;
  let value = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i] ?? '';
    const n = Number(part);
    if (n > 255 || (part.length > 1 && part.startsWith('0'))) return undefined;
    value = value * 256 + n;
  }
  return { family: 4, value: BigInt(value) };
}

/** Parses a literal IPv4 or IPv6 address; undefined when it is not one. */
export function parseIp(text: string): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  const quad = parseDottedQuad(text);
  if (quad) return quad;
  if (text.includes('%') || !ipaddr.isValid(text)) return undefined;
  // ipaddr.isValid accepts shorthand like "10.1" for IPv4; insist on four parts.
  if (!text.includes(':') && !ipaddr.IPv4.isValidFourPartDecimal(text)) return undefined;
  const parsed = ipaddr.parse(text);
  let value = 0n;
  for (const byte of parsed.toByteArray()) value = (value << 8n) | BigInt(byte);
  return { family: parsed.kind() === 'ipv4' ? 4 : 6, value };
}

/** The canonical text of an address. */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const bytes: number[] = [];
  let v = ip.value;
  for (let i = 0; i < familyBits(ip.family) / 8; i++) {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** Parses `address/length`; undefined when malformed. */
export function parsePrefix(text: string): IpPrefix | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = parseIp(text.slice(0, slash));
  const lengthText = text.slice(slash + 1);
  if (!address || !/^\d{1,3}$/.test(lengthText)) return undefined;
  const length = Number(lengthText);
  if (length > familyBits(address.family)) return undefined;
  return { address, length };
}

export function formatPrefix(prefix: IpPrefix): string {
  return `${formatIp(prefix.address)}/${prefix.length}`;
}

function hostMask(family: IpFamily, length: number): bigint {
  return (1n << BigInt(familyBits(family) - length)) - 1n;
}

/** The first address of the prefix (host bits cleared). */
export function networkAddress(prefix: IpPrefix): IpAddress {
  const mask = hostMask(prefix.address.family, prefix.length);
  return { family: prefix.address.family, value: prefix.address.value & ~mask };
}

/** The last address of the prefix (host bits all set). */
export function lastAddress(prefix: IpPrefix): IpAddress {
  const mask = hostMask(prefix.address.family, prefix.length);
  return { family: prefix.address.family, value: prefix.address.value | mask };
}

/** The prefix with its host bits cleared, as text: `10.1.0.0/24`. */
export function networkOf(prefix: IpPrefix): string {
  return formatPrefix({ address: networkAddress(prefix), length: prefix.length });
}

export function prefixContains(prefix: IpPrefix, ip: IpAddress): boolean {
  if (prefix.address.family !== ip.family) return false;
  const mask = hostMask(ip.family, prefix.length);
  return (prefix.address.value & ~mask) === (ip.value & ~mask);
}

/** True when the two prefixes share any address. */
export function prefixesOverlap(a: IpPrefix, b: IpPrefix): boolean {
  return prefixContains(a, b.address) || prefixContains(b, a.address);
}

export function ipEqual(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.value === b.value;
}

export function nextIp(ip: IpAddress): IpAddress {
  return { family: ip.family, value: ip.value + 1n };
}

/** The all-zeroes default route destination of a family. */
export function defaultRoute(family: IpFamily): string {
  return family === 4 ? '0.0.0.0/0' : '::/0';
}

/** The family of an address or prefix given as text, or undefined. */
export function familyOf(text: string): IpFamily | undefined {
  const slash = text.indexOf('/');
  return parseIp(slash < 0 ? text : text.slice(0, slash))?.family;
}

/** The address in network byte order: 4 or 16 bytes. */
export function ipBytes(ip: IpAddress): Uint8Array {
  const bytes = new Uint8Array(familyBits(ip.family) / 8);
  let v = ip.value;
  for (let i = bytes.length - 1; i >= 0; i--) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return bytes;
}

/** An address from 4 or 16 bytes in network byte order. */
export function ipFromBytes(bytes: Uint8Array): IpAddress | undefined {
  if (bytes.length !== 4 && bytes.length !== 16) return undefined;
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return { family: bytes.length === 4 ? 4 : 6, value };
}
