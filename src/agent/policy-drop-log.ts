/**
 * NetworkPolicy drop logging: the packets a pod's policy drops reach the
 * agent through nfnetlink_log. The node's ruleset logs them with
 * `log group <G> prefix "<direction> <namespace>/<pod>"` (dropLogPrefix)
 * before the drop; DropLog binds a NETLINK_NETFILTER socket to group G and
 * turns each logged packet into a DropRecord.
 *
 * No thread and no blocking call: the kernel queues the log messages on the
 * socket, and a timer drains it every `pollIntervalMs` with non-blocking
 * reads (a few microseconds when nothing is waiting). A Worker blocked in
 * recv(2) could not be woken to stop (close(2) does not interrupt it, and
 * netlink has no shutdown), and would hold the process open at exit.
 */
import { NetlinkError, NETLINK_NETFILTER, NetlinkSocket } from '../kernel/netlink/socket.js';
import { decodeMessages } from '../kernel/netlink/message.js';
import {
  DEFAULT_COPY_RANGE,
  decodeNflogPacket,
  nflogBindRequest,
  parseIpPacket,
  type NflogPacket,
} from '../kernel/netlink/nflog.js';
import { type DropRecord, parseDropLogPrefix } from '../policy/drop-log.js';

export interface DropLogOptions {
  /** The network namespace to listen in (a path such as /var/run/netns/x); default the current one. */
  netns?: string;
  /** How often the socket is drained; default 100 ms. */
  pollIntervalMs?: number;
  /** Bytes of each packet the kernel copies; default 128 (IP and transport headers). */
  copyRange?: number;
  /** Longest time the kernel batches log messages, in 1/100 s; default 10 (0.1 s). */
  flushTimeout?: number;
  /** Errors after start: a failing socket (the log stops) or a throwing onDrop. Default: stderr. */
  onError?: (error: Error) => void;
}

/** What the log has seen since it started. */
export interface DropLogStats {
  /** Records handed to onDrop. */
  delivered: number;
  /** Logged packets that were not a drop log prefix over an IPv4 or IPv6 packet. */
  unrecognized: number;
  /** Times the kernel dropped log messages because the socket's buffer was full. */
  overruns: number;
}

/** Datagrams read in one timer tick at most, so a flood cannot hold the event loop. */
const maxDatagramsPerTick = 256;

/** The record of a logged packet; undefined when it is not a drop log entry. */
export function dropRecord(packet: NflogPacket, receivedAt: Date): DropRecord | undefined {
  const owner = parseDropLogPrefix(packet.prefix);
  const headers = packet.payload && parseIpPacket(packet.payload);
  if (!owner || !headers) return undefined;
  const record: DropRecord = {
    time: (packet.time ?? receivedAt).toISOString(),
    prefix: packet.prefix,
    direction: owner.direction,
    pod: owner.pod,
    family: headers.family,
    src: headers.src,
    dst: headers.dst,
    protocol: headers.protocol,
  };
  if (headers.srcPort !== undefined) record.srcPort = headers.srcPort;
  if (headers.dstPort !== undefined) record.dstPort = headers.dstPort;
  if (headers.icmpType !== undefined) record.icmpType = headers.icmpType;
  if (headers.icmpCode !== undefined) record.icmpCode = headers.icmpCode;
  return record;
}

/** Drop records from one nflog group, in one network namespace. */
export class DropLog {
  readonly #options: DropLogOptions;
  #socket: NetlinkSocket | undefined;
  #timer: NodeJS.Timeout | undefined;
  #starting = false;
  /** Changes at every stop, so a stop during start wins. */
  #generation = 0;
  #stats: DropLogStats = { delivered: 0, unrecognized: 0, overruns: 0 };

  constructor(options: DropLogOptions = {}) {
    this.#options = options;
  }

  get running(): boolean {
    return this.#socket !== undefined;
  }

  get stats(): Readonly<DropLogStats> {
    return { ...this.#stats };
  }

  /**
   * Binds a socket to nflog `group` and calls onDrop for every drop record
   * until stop(). Rejects when the group cannot be bound (another socket in
   * the namespace holds it: EPERM). While running, the timer keeps the
   * process alive, as a listening server does.
   */
  async start(group: number, onDrop: (record: DropRecord) => void): Promise<void> {
    if (this.#socket || this.#starting) throw new Error('The drop log is already running');
    const generation = this.#generation;
    const request = nflogBindRequest(group, {
      copyRange: this.#options.copyRange ?? DEFAULT_COPY_RANGE,
      flushTimeout: this.#options.flushTimeout ?? 10,
    });
    this.#starting = true;
    let socket: NetlinkSocket;
    try {
      socket = await NetlinkSocket.open(NETLINK_NETFILTER, this.#options.netns);
    } finally {
      this.#starting = false;
    }
    if (generation !== this.#generation) {
      socket.close(); // stop() came first
      return;
    }
    try {
      socket.request(
        `binding nflog group ${group}`,
        request.type,
        0,
        request.body,
        request.attributes,
      );
    } catch (error) {
      socket.close();
      const held = error instanceof NetlinkError && error.code === 'EPERM';
      throw new Error(
        `Cannot start the drop log on nflog group ${group}${held ? ': another socket holds the group' : ''}`,
        { cause: error },
      );
    }
    this.#socket = socket;
    this.#stats = { delivered: 0, unrecognized: 0, overruns: 0 };
    this.#timer = setInterval(() => {
      this.#drain(group, onDrop);
    }, this.#options.pollIntervalMs ?? 100);
  }

  /** Stops the timer and closes the socket (the kernel then releases the group); idempotent. */
  stop(): void {
    this.#generation++;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#socket?.close();
    this.#socket = undefined;
  }

  #drain(group: number, onDrop: (record: DropRecord) => void): void {
    for (let i = 0; i < maxDatagramsPerTick && this.#socket; i++) {
      let datagram: Buffer | undefined;
      try {
        datagram = this.#socket.receiveWaiting();
      } catch (error) {
        if (error instanceof NetlinkError && error.code === 'ENOBUFS') {
          this.#stats.overruns++;
          continue;
        }
        this.stop();
        this.#report(new Error(`The drop log on nflog group ${group} stopped`, { cause: error }));
        return;
      }
      if (!datagram) return;
      const receivedAt = new Date();
      for (const message of decodeMessages(datagram)) {
        const packet = decodeNflogPacket(message);
        if (!packet || packet.group !== group) continue;
        const record = dropRecord(packet, receivedAt);
        if (!record) {
          this.#stats.unrecognized++;
          continue;
        }
        this.#stats.delivered++;
        try {
          onDrop(record);
        } catch (error) {
          this.#report(error instanceof Error ? error : new Error(String(error)));
        }
        if (!this.#socket) return; // onDrop stopped the log
      }
    }
  }

  #report(error: Error): void {
    if (this.#options.onError) {
      this.#options.onError(error);
      return;
    }
    const causes: string[] = [];
    for (let e: unknown = error; e instanceof Error; e = e.cause) causes.push(e.message);
    process.stderr.write(`${new Date().toISOString()} ${causes.join(': ')}\n`);
  }
}
