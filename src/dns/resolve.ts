/**
 * One DNS query in, one response out, as a pure function of the query's
 * bytes and the zone (records.ts): the part of the cluster DNS server that
 * decides, with the sockets in server.ts. Packets are decoded and encoded
 * by dns-packet; the question section is echoed byte for byte (so answers
 * keep the question's case, and nothing the decoder cannot re-encode is
 * lost).
 *
 * What it answers (RFC 1034/1035, RFC 2308 for negative answers, RFC 6891
 * for EDNS0, RFC 8020 for empty non-terminals):
 * - names in the zone: their records (AA set); a name that does not exist
 *   is NXDOMAIN and one without records of the type asked is NODATA, both
 *   with the zone's SOA in the authority section;
 * - `<a-b-c-d>.<ns>.pod.<zone>`: the address the label spells (CoreDNS
 *   `pods insecure`), without looking anything up;
 * - PTR names of the cluster's addresses; other reverse names and names
 *   outside the zone are forwarded when an upstream is configured, else
 *   REFUSED;
 * - an opcode other than QUERY is NOTIMP; a packet that does not decode,
 *   or holds other than one question or more than one OPT record, is
 *   FORMERR; EDNS versions above 0 get BADVERS; a response, or fewer bytes
 *   than a header, is dropped;
 * - over UDP a response larger than the client's limit (its EDNS payload
 *   size, else 512 bytes) first loses its additional records, then its
 *   answers, with TC set: the client asks again over TCP.
 */
import {
  AUTHORITATIVE_ANSWER,
  CHECKING_DISABLED,
  RECURSION_AVAILABLE,
  RECURSION_DESIRED,
  TRUNCATED_RESPONSE,
  type Answer,
  type DecodedPacket,
  type OptAnswer,
  type Packet,
  decode,
  encode,
} from 'dns-packet';
import { formatIp } from '../netaddr/ip.js';
import { type DnsZone, type NameRecords, addressFromLabel } from './records.js';

export const rcodes = {
  noError: 0,
  formErr: 1,
  servFail: 2,
  nxDomain: 3,
  notImp: 4,
  refused: 5,
} as const;

/** The EDNS payload size strata advertises (the DNS Flag Day 2020 value). */
export const advertisedPayloadSize = 1232;
/** RFC 1035 section 4.2.1: a UDP message without EDNS. */
export const classicUdpLimit = 512;
const tcpLimit = 65535;
/** BADVERS (16), whose upper eight bits go in the OPT record. */
const badVersExtendedRcode = 1;

export type Transport = 'udp' | 'tcp';

export interface ResolveOptions {
  transport: Transport;
  /** Whether an upstream takes names outside the zone; without one they are REFUSED. */
  forwarding: boolean;
}

/** What to do with a query: send `response`, forward the query as it is, or ignore it. */
export type Resolution =
  { action: 'reply'; response: Buffer } | { action: 'forward' } | { action: 'drop' };

/**
 * The offset just past the question section of a one-question message, or
 * undefined when the name runs past the end or uses a compression pointer
 * (a question has nothing earlier to point at).
 */
export function questionEnd(message: Buffer): number | undefined {
  let offset = 12;
  for (;;) {
    if (offset >= message.length) return undefined;
    const length = message[offset] ?? 0;
    if (length === 0) break;
    if (length > 63) return undefined;
    offset += length + 1;
  }
  offset += 5;
  return offset <= message.length ? offset : undefined;
}

/** The query's own header bits a response repeats: opcode, RD and CD. */
function echoedFlags(message: Buffer): number {
  const flags = message.readUInt16BE(2);
  return flags & ((0xf << 11) | RECURSION_DESIRED | CHECKING_DISABLED);
}

/**
 * Encodes `packet` (without questions) with the query's question bytes
 * spliced in after the header: dns-packet writes no compression pointers,
 * so nothing after the question moves relative to anything it points at.
 */
function encodeWithQuestion(packet: Packet, question: Buffer | undefined): Buffer {
  const body = encode(packet);
  if (!question) return body;
  const out = Buffer.allocUnsafe(body.length + question.length);
  body.copy(out, 0, 0, 12);
  question.copy(out, 12);
  body.copy(out, 12 + question.length, 12);
  out.writeUInt16BE(1, 4);
  return out;
}

/** A response of only a header (and the question, when it could be read) with `rcode`. */
export function errorResponse(message: Buffer, rcode: number, forwarding = false): Buffer {
  const end =
    message.length >= 12 && message.readUInt16BE(4) === 1 ? questionEnd(message) : undefined;
  const question = end === undefined ? undefined : message.subarray(12, end);
  return encodeWithQuestion(
    {
      type: 'response',
      id: message.readUInt16BE(0),
      flags: echoedFlags(message) | (forwarding ? RECURSION_AVAILABLE : 0) | rcode,
    },
    question,
  );
}

interface Query {
  message: Buffer;
  /** The question section's bytes. */
  question: Buffer;
  /** The name as asked, without the trailing dot (`.` for the root). */
  name: string;
  /** The same, lower case. */
  lowerName: string;
  type: string;
  class: string;
  edns: OptAnswer | undefined;
  limit: number;
}

interface Reply {
  rcode: number;
  authoritative: boolean;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

function responseOpt(query: Query, extendedRcode = 0): OptAnswer {
  return {
    name: '.',
    type: 'OPT',
    udpPayloadSize: advertisedPayloadSize,
    extendedRcode,
    ednsVersion: 0,
    // RFC 3225: the DO bit is copied into the response.
    flags: (query.edns?.flags ?? 0) & 0x8000,
    flag_do: query.edns?.flag_do ?? false,
    options: [],
  };
}

/** The response to `query`: the reply's sections, cut to the query's size limit. */
function encodeReply(query: Query, reply: Reply, forwarding: boolean): Buffer {
  const opt = query.edns ? [responseOpt(query)] : [];
  const flags =
    echoedFlags(query.message) |
    (reply.authoritative ? AUTHORITATIVE_ANSWER : 0) |
    (forwarding ? RECURSION_AVAILABLE : 0) |
    reply.rcode;
  const packet: Packet = {
    type: 'response',
    id: query.message.readUInt16BE(0),
    flags,
    answers: reply.answers,
    authorities: reply.authorities,
    additionals: [...reply.additionals, ...opt],
  };
  const full = encodeWithQuestion(packet, query.question);
  if (full.length <= query.limit) return full;
  // RFC 2181 section 9: additional records may go without TC.
  packet.additionals = opt;
  const lean = encodeWithQuestion(packet, query.question);
  if (lean.length <= query.limit) return lean;
  packet.flags = flags | TRUNCATED_RESPONSE;
  packet.answers = [];
  packet.authorities = [];
  return encodeWithQuestion(packet, query.question);
}

/** The SOA of `apex`: the cluster domain, or `in-addr.arpa`/`ip6.arpa` for reverse names. */
function soa(zone: DnsZone, apex = zone.records.domain): Answer {
  const domain = zone.records.domain;
  return {
    name: apex,
    type: 'SOA',
    ttl: zone.ttl,
    class: 'IN',
    data: {
      mname: `ns.dns.${domain}`,
      rname: `hostmaster.${domain}`,
      serial: zone.serial,
      // CoreDNS's values; nothing transfers this zone.
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: zone.ttl,
    },
  };
}

/** The records of `records` of type `type` (ANY: all of them), owned by `owner`. */
function recordsOfType(owner: string, records: NameRecords, type: string, ttl: number): Answer[] {
  const any = type === 'ANY';
  const out: Answer[] = [];
  const add = (answer: Answer): void => {
    out.push(answer);
  };
  if (records.cname !== undefined && (any || type === 'CNAME')) {
    add({ name: owner, type: 'CNAME', ttl, class: 'IN', data: records.cname });
  }
  if (any || type === 'A') {
    for (const data of records.a) add({ name: owner, type: 'A', ttl, class: 'IN', data });
  }
  if (any || type === 'AAAA') {
    for (const data of records.aaaa) add({ name: owner, type: 'AAAA', ttl, class: 'IN', data });
  }
  if (any || type === 'SRV') {
    for (const data of records.srv) add({ name: owner, type: 'SRV', ttl, class: 'IN', data });
  }
  if (any || type === 'PTR') {
    for (const data of records.ptr) add({ name: owner, type: 'PTR', ttl, class: 'IN', data });
  }
  return out;
}

/** A and AAAA records of every SRV target, for the additional section. */
function targetAddresses(zone: DnsZone, answers: readonly Answer[]): Answer[] {
  const targets = new Set<string>();
  for (const answer of answers) {
    if (answer.type === 'SRV') targets.add(answer.data.target);
  }
  const out: Answer[] = [];
  for (const target of targets) {
    const records = zone.records.get(target);
    if (records) {
      out.push(...recordsOfType(target, records, 'A', zone.ttl));
      out.push(...recordsOfType(target, records, 'AAAA', zone.ttl));
    }
  }
  return out;
}

function answered(
  zone: DnsZone,
  answers: Answer[],
  additionals: Answer[] = [],
  apex?: string,
): Reply {
  if (answers.length === 0) return negative(zone, rcodes.noError, apex);
  return { rcode: rcodes.noError, authoritative: true, answers, authorities: [], additionals };
}

/** NXDOMAIN or NODATA (NOERROR, no answers), with the SOA for negative caching (RFC 2308). */
function negative(zone: DnsZone, rcode: number, apex?: string): Reply {
  return {
    rcode,
    authoritative: true,
    answers: [],
    authorities: [soa(zone, apex)],
    additionals: [],
  };
}

/** `<a-b-c-d>.<ns>.pod.<zone>` and the names above it. */
function podName(zone: DnsZone, query: Query, relative: string): Reply {
  const labels = relative === '' ? [] : relative.split('.');
  if (labels.length < 2) return negative(zone, rcodes.noError);
  const ip = labels.length === 2 ? addressFromLabel(labels[0] ?? '') : undefined;
  if (!ip) return negative(zone, rcodes.nxDomain);
  const wanted = ip.family === 4 ? 'A' : 'AAAA';
  if (query.type !== wanted && query.type !== 'ANY') return negative(zone, rcodes.noError);
  return answered(zone, [
    { name: query.name, type: wanted, ttl: zone.ttl, class: 'IN', data: formatIp(ip) },
  ]);
}

/** The answer from the zone's own records, or undefined when the name is not the zone's. */
function fromZone(zone: DnsZone, query: Query): Reply | undefined {
  const domain = zone.records.domain;
  const name = query.lowerName;
  const records = zone.records.get(name);
  if (query.class !== 'IN' && query.class !== 'ANY') return undefined;
  const inZone = name === domain || name.endsWith(`.${domain}`);
  if (!inZone) {
    // Reverse names of the cluster's addresses are ours; the rest of in-addr.arpa is not.
    if (!records) return undefined;
    const apex = name.endsWith('.ip6.arpa') ? 'ip6.arpa' : 'in-addr.arpa';
    return answered(zone, recordsOfType(query.name, records, query.type, zone.ttl), [], apex);
  }
  if (zone.synced === false) {
    return {
      rcode: rcodes.servFail,
      authoritative: false,
      answers: [],
      authorities: [],
      additionals: [],
    };
  }
  if (name === domain) {
    const answers: Answer[] = [];
    if (query.type === 'SOA' || query.type === 'ANY') {
      answers.push({ ...soa(zone), name: query.name });
    }
    if (query.type === 'NS' || query.type === 'ANY') {
      answers.push({
        name: query.name,
        type: 'NS',
        ttl: zone.ttl,
        class: 'IN',
        data: `ns.dns.${domain}`,
      });
    }
    return answered(zone, answers);
  }
  const podSuffix = `pod.${domain}`;
  if (name === podSuffix || name.endsWith(`.${podSuffix}`)) {
    return podName(zone, query, name.slice(0, Math.max(0, name.length - podSuffix.length - 1)));
  }
  if (!records) {
    return negative(zone, zone.records.exists(name) ? rcodes.noError : rcodes.nxDomain);
  }
  const answers = recordsOfType(query.name, records, query.type, zone.ttl);
  if (records.cname !== undefined && query.type !== 'CNAME' && query.type !== 'ANY') {
    // A CNAME answers every type (RFC 1034 section 3.6.2); follow it while it stays in the zone.
    answers.push(...recordsOfType(query.name, records, 'CNAME', zone.ttl));
    let target = records.cname;
    for (let hops = 0; hops < 8; hops++) {
      const next = zone.records.get(target);
      if (!next) break;
      answers.push(
        ...recordsOfType(target, next, next.cname === undefined ? query.type : 'CNAME', zone.ttl),
      );
      if (next.cname === undefined) break;
      target = next.cname;
    }
  }
  return answered(
    zone,
    answers,
    query.type === 'SRV' || query.type === 'ANY' ? targetAddresses(zone, answers) : [],
  );
}

/** Decides what to do with `message`, a query received over `options.transport`. */
export function resolveQuery(message: Buffer, zone: DnsZone, options: ResolveOptions): Resolution {
  if (message.length < 12) return { action: 'drop' };
  const flags = message.readUInt16BE(2);
  // Never answer a response: two servers must not bounce errors at each other.
  if (flags & 0x8000) return { action: 'drop' };
  const reply = (response: Buffer): Resolution => ({ action: 'reply', response });
  if (((flags >> 11) & 0xf) !== 0)
    return reply(errorResponse(message, rcodes.notImp, options.forwarding));
  let packet: DecodedPacket;
  try {
    packet = decode(message);
  } catch {
    return reply(errorResponse(message, rcodes.formErr, options.forwarding));
  }
  const end = questionEnd(message);
  const [question] = packet.questions ?? [];
  const opts = (packet.additionals ?? []).filter((r): r is OptAnswer => r.type === 'OPT');
  if (packet.questions?.length !== 1 || !question || end === undefined || opts.length > 1) {
    return reply(errorResponse(message, rcodes.formErr, options.forwarding));
  }
  const edns = opts[0];
  const name = question.name === '.' ? '.' : question.name.replace(/\.$/, '');
  const query: Query = {
    message,
    question: message.subarray(12, end),
    name,
    lowerName: name.toLowerCase(),
    type: question.type,
    class: question.class ?? 'IN',
    edns,
    limit:
      options.transport === 'tcp'
        ? tcpLimit
        : edns
          ? Math.max(classicUdpLimit, edns.udpPayloadSize)
          : classicUdpLimit,
  };
  if (edns && edns.ednsVersion !== 0) {
    // RFC 6891 section 6.1.3: BADVERS, with the version strata speaks (0).
    const packetOut: Packet = {
      type: 'response',
      id: message.readUInt16BE(0),
      flags: echoedFlags(message) | (options.forwarding ? RECURSION_AVAILABLE : 0),
      additionals: [responseOpt(query, badVersExtendedRcode)],
    };
    return reply(encodeWithQuestion(packetOut, query.question));
  }
  const answer = fromZone(zone, query);
  if (answer) return reply(encodeReply(query, answer, options.forwarding));
  if (options.forwarding) return { action: 'forward' };
  return reply(
    encodeReply(
      query,
      {
        rcode: rcodes.refused,
        authoritative: false,
        answers: [],
        authorities: [],
        additionals: [],
      },
      false,
    ),
  );
}
