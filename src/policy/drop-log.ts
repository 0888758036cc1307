/**
 * NetworkPolicy drop logging, the pure half: the `log prefix` a pod's drop
 * rule carries (the ruleset writes it with dropLogPrefix, the agent's
 * DropLog reads it back with parseDropLogPrefix), and the record of one
 * dropped packet with its one-line JSON form. The kernel side lives in
 * src/agent/policy-drop-log.ts.
 */
import { createHash } from 'node:crypto';

export type DropDirection = 'ingress' | 'egress';

/** The longest prefix nftables accepts: NF_LOG_PREFIXLEN (128) less the NUL. */
export const DROP_LOG_PREFIX_MAX = 127;

const podKeyPattern = /^[^\s"\\/]+\/[^\s"\\/]+$/;

/**
 * The pod key as a drop log prefix carries it: `podKey` itself, or, when the
 * prefix would pass DROP_LOG_PREFIX_MAX bytes, its head and `~` with 8 hex
 * digits of its SHA-256, so different pods keep different prefixes. A caller
 * that maps logged keys back to pods keys its map with this.
 */
export function dropLogPodKey(direction: DropDirection, podKey: string): string {
  if (!podKeyPattern.test(podKey)) {
    throw new RangeError(`A drop log pod key must be "<namespace>/<pod>": got "${podKey}"`);
  }
  const room = DROP_LOG_PREFIX_MAX - direction.length - 1;
  if (Buffer.byteLength(podKey) <= room) return podKey;
  const hash = createHash('sha256').update(podKey).digest('hex').slice(0, 8);
  // Names are ASCII (DNS labels and subdomains), so characters are bytes.
  return `${podKey.slice(0, room - 9)}~${hash}`;
}

/**
 * The `log prefix` of the rule logging `podKey`'s dropped packets in
 * `direction`: `"<direction> <namespace>/<pod>"`, e.g. `ingress x/a`, at
 * most DROP_LOG_PREFIX_MAX bytes (see dropLogPodKey).
 */
export function dropLogPrefix(direction: DropDirection, podKey: string): string {
  return `${direction} ${dropLogPodKey(direction, podKey)}`;
}

/** The direction and pod key of a prefix dropLogPrefix made; undefined for any other text. */
export function parseDropLogPrefix(
  prefix: string,
): { direction: DropDirection; pod: string } | undefined {
  const space = prefix.indexOf(' ');
  if (space < 0) return undefined;
  const direction = prefix.slice(0, space);
  const pod = prefix.slice(space + 1);
  if (direction !== 'ingress' && direction !== 'egress') return undefined;
  if (!podKeyPattern.test(pod)) return undefined;
  return { direction, pod };
}

/** One packet a pod's NetworkPolicy dropped, as the node's log rule reported it. */
export interface DropRecord {
  /** When the kernel stamped the packet, or when it was read; ISO 8601. */
  time: string;
  /** The rule's log prefix, as logged. */
  prefix: string;
  direction: DropDirection;
  /** The pod whose policy dropped the packet, `<namespace>/<pod>` (dropLogPodKey's form). */
  pod: string;
  family: 4 | 6;
  src: string;
  dst: string;
  /** tcp, udp, sctp, icmp, icmpv6, ...; the protocol number as text when it has no name. */
  protocol: string;
  srcPort?: number;
  dstPort?: number;
  icmpType?: number;
  icmpCode?: number;
}

/** A record as one line of JSON (no newline), its fields in a fixed order. */
export function formatDropRecord(record: DropRecord): string {
  return JSON.stringify({
    time: record.time,
    direction: record.direction,
    pod: record.pod,
    family: record.family,
    protocol: record.protocol,
    src: record.src,
    srcPort: record.srcPort,
    dst: record.dst,
    dstPort: record.dstPort,
    icmpType: record.icmpType,
    icmpCode: record.icmpCode,
    prefix: record.prefix,
  });
}
