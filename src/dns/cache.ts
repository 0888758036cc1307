/**
 * Encoded responses by the query bytes that decide them: the cluster DNS
 * server's fast path. Within one version of the zone a response depends
 * only on the header flags the response repeats, the question's bytes, and
 * (for the OPT record and truncation) whether the query carried EDNS, its
 * DO bit and the size limit it implies; never on the query id. So a hit is
 * one copy of the stored response with the query's id written in. The
 * server clears the cache whenever the zone changes.
 */
import { type Transport, classicUdpLimit, questionEnd } from './resolve.js';

/** The OPT pseudo-record's type (RFC 6891). */
const optType = 41;

/**
 * The key of a plain query: one question, nothing in the answer and
 * authority sections, at most an EDNS version 0 OPT record after it and no
 * bytes past the end. Anything else (undefined) takes the full path through
 * resolveQuery, and is not cached.
 */
export function cacheKey(message: Buffer, transport: Transport): string | undefined {
  const length = message.length;
  if (length < 17) return undefined;
  // QR clear and opcode QUERY; qdcount 1; ancount and nscount 0; arcount 0 or 1.
  if (((message[2] ?? 0xff) & 0xf8) !== 0) return undefined;
  if (message[4] !== 0 || message[5] !== 1) return undefined;
  if (message[6] !== 0 || message[7] !== 0 || message[8] !== 0 || message[9] !== 0) {
    return undefined;
  }
  if (message[10] !== 0) return undefined;
  const end = questionEnd(message);
  if (end === undefined) return undefined;
  const additionals = message[11];
  let limit: number;
  let dnssecOk = false;
  if (additionals === 0) {
    if (end !== length) return undefined;
    limit = transport === 'udp' ? classicUdpLimit : 65535;
  } else if (additionals === 1) {
    // The OPT record: root name, type, payload size, extended rcode, version, flags, rdlength.
    if (end + 11 > length || message[end] !== 0 || message.readUInt16BE(end + 1) !== optType) {
      return undefined;
    }
    if (message[end + 6] !== 0) return undefined;
    const dataEnd = end + 11 + message.readUInt16BE(end + 9);
    if (dataEnd !== length) return undefined;
    // Options are skipped over, not read, but they must fit their record exactly.
    let option = end + 11;
    while (option + 4 <= dataEnd) option += 4 + message.readUInt16BE(option + 2);
    if (option !== dataEnd) return undefined;
    dnssecOk = ((message[end + 7] ?? 0) & 0x80) !== 0;
    limit = transport === 'udp' ? Math.max(classicUdpLimit, message.readUInt16BE(end + 3)) : 65535;
  } else {
    return undefined;
  }
  return `${limit}${dnssecOk ? 'd' : ''}|${message.toString('latin1', 2, end)}`;
}

/** A copy of the stored `response` carrying the id of `query`. */
export function withQueryId(response: Buffer, query: Buffer): Buffer {
  const out = Buffer.allocUnsafe(response.length);
  response.copy(out);
  out[0] = query[0] ?? 0;
  out[1] = query[1] ?? 0;
  return out;
}

/**
 * At most `maxEntries` responses; past that the oldest entry goes first
 * (so a flood of distinct names cannot grow it without bound).
 */
export class AnswerCache {
  readonly #entries = new Map<string, Buffer>();

  constructor(readonly maxEntries = 50_000) {}

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): Buffer | undefined {
    return this.#entries.get(key);
  }

  set(key: string, response: Buffer): void {
    if (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    // A copy of its own: a slice of Node's shared 8 KiB pool would keep the whole slab alive.
    const own = Buffer.allocUnsafeSlow(response.length);
    response.copy(own);
    this.#entries.set(key, own);
  }

  clear(): void {
    this.#entries.clear();
  }
}
