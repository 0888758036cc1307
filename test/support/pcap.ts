/**
 * Just enough of a packet-capture reader for the mesh tests to judge what
 * crossed a link: the classic pcap file format (tcpdump -w; the 24-byte
 * global header, then a 16-byte header per packet), Ethernet frames, IPv4,
 * TCP. Each direction of a TCP connection is put back together from its
 * sequence numbers, and a TLS byte stream is split into its records
 * (RFC 8446 section 5.1: type, legacy version, 16-bit length).
 */

/** One TCP segment as captured. */
export interface TcpSegment {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  seq: number;
  syn: boolean;
  payload: Buffer;
}

const ethernet = 1;
const etherTypeIpv4 = 0x0800;
const etherTypeVlan = 0x8100;

/** The TCP segments over IPv4 in a pcap file (other packets are skipped). */
export function tcpSegments(file: Buffer): TcpSegment[] {
  if (file.length < 24) return [];
  const magic = file.readUInt32LE(0);
  // Microsecond or nanosecond timestamps; the file's byte order is the writer's.
  const littleEndian = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const bigEndian = magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1;
  if (!littleEndian && !bigEndian) {
    throw new Error(`not a pcap file (magic 0x${magic.toString(16)})`);
  }
  const u32 = (offset: number) =>
    littleEndian ? file.readUInt32LE(offset) : file.readUInt32BE(offset);
  const linkType = u32(20) & 0xffff;
  if (linkType !== ethernet)
    throw new Error(`pcap link type ${linkType}: only Ethernet (1) is read`);
  const segments: TcpSegment[] = [];
  let at = 24;
  while (at + 16 <= file.length) {
    const captured = u32(at + 8);
    const frame = file.subarray(at + 16, at + 16 + captured);
    at += 16 + captured;
    const segment = tcpOfFrame(frame);
    if (segment !== undefined) segments.push(segment);
  }
  return segments;
}

function tcpOfFrame(frame: Buffer): TcpSegment | undefined {
  let offset = 12;
  if (frame.length < 14) return undefined;
  let etherType = frame.readUInt16BE(offset);
  if (etherType === etherTypeVlan && frame.length >= 18) {
    offset += 4;
    etherType = frame.readUInt16BE(offset);
  }
  if (etherType !== etherTypeIpv4) return undefined;
  const ip = frame.subarray(offset + 2);
  if (ip.length < 20 || ip[0] === undefined || ip[0] >> 4 !== 4 || ip[9] !== 6) return undefined;
  const headerLength = (ip[0] & 0x0f) * 4;
  const totalLength = ip.readUInt16BE(2);
  const tcp = ip.subarray(headerLength, Math.min(totalLength, ip.length));
  if (tcp.length < 20) return undefined;
  const dataOffset = ((tcp[12] ?? 0) >> 4) * 4;
  const address = (start: number) => [...ip.subarray(start, start + 4)].join('.');
  return {
    src: address(12),
    dst: address(16),
    srcPort: tcp.readUInt16BE(0),
    dstPort: tcp.readUInt16BE(2),
    seq: tcp.readUInt32BE(4),
    syn: ((tcp[13] ?? 0) & 0x02) !== 0,
    payload: Buffer.from(tcp.subarray(dataOffset)),
  };
}

/** `src:port>dst:port`: one direction of a connection. */
export function flowKey(segment: Pick<TcpSegment, 'src' | 'srcPort' | 'dst' | 'dstPort'>): string {
  return `${segment.src}:${segment.srcPort}>${segment.dst}:${segment.dstPort}`;
}

/**
 * The bytes one direction of a connection carried, in sequence order with
 * retransmissions counted once; undefined unless its SYN was captured (the
 * stream's start is known only then).
 */
export function reassemble(segments: readonly TcpSegment[], key: string): Buffer | undefined {
  const own = segments.filter((segment) => flowKey(segment) === key);
  const syn = own.find((segment) => segment.syn);
  if (syn === undefined) return undefined;
  const first = (syn.seq + 1) >>> 0;
  const byOffset = new Map<number, Buffer>();
  for (const segment of own) {
    if (segment.payload.length === 0) continue;
    byOffset.set((segment.seq - first) >>> 0, segment.payload);
  }
  const parts: Buffer[] = [];
  let next = 0;
  for (const [offset, payload] of [...byOffset].sort((a, b) => a[0] - b[0])) {
    if (offset + payload.length <= next) continue;
    if (offset > next) break; // a gap: what follows cannot be placed
    parts.push(payload.subarray(next - offset));
    next = offset + payload.length;
  }
  return Buffer.concat(parts);
}

/** One TLS record's header. */
export interface TlsRecord {
  /** 20 change_cipher_spec, 21 alert, 22 handshake, 23 application_data. */
  type: number;
  /** The legacy record version: 0x0301 or 0x0303. */
  version: number;
  length: number;
}

/**
 * The records of a TLS byte stream from its start; `rest` is what does not
 * parse as a record (a non-TLS stream fails at the first byte), or the
 * incomplete tail of one.
 */
export function tlsRecords(stream: Buffer): { records: TlsRecord[]; rest: number } {
  const records: TlsRecord[] = [];
  let at = 0;
  while (at + 5 <= stream.length) {
    const type = stream[at] ?? 0;
    const version = stream.readUInt16BE(at + 1);
    const length = stream.readUInt16BE(at + 3);
    const known = type >= 20 && type <= 23 && (version === 0x0301 || version === 0x0303);
    // RFC 8446 5.1-5.2: at most 2^14 bytes of plaintext, 2^14 + 256 once protected.
    if (!known || length > 2 ** 14 + 256 || at + 5 + length > stream.length) break;
    records.push({ type, version, length });
    at += 5 + length;
  }
  return { records, rest: stream.length - at };
}
