/**
 * A netlink socket (NETLINK_ROUTE for links, addresses and routes;
 * NETLINK_NETFILTER for nflog), optionally in another network namespace:
 * the thread enters the namespace with setns(2), opens the socket (a socket
 * belongs to the namespace it was made in for its whole life) and returns
 * at once. Requests are synchronous: send, then read until the kernel's
 * acknowledgement or the end of a dump. Messages the kernel sends on its own
 * (nflog's packets) are read with `receiveWaiting()`, which never blocks.
 */
import { closeSync } from 'node:fs';
import { type Libc, inNetns, libc } from '../libc.js';
import {
  type Attribute,
  type DecodedMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  decodeMessages,
  encodeMessage,
  errorCode,
} from './message.js';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
/** nfnetlink: nf_tables, conntrack, nfqueue and nflog (linux/netlink.h). */
export const NETLINK_NETFILTER = 12;
const MSG_DONTWAIT = 0x40;
const EINTR = 4;
const EAGAIN = 11;

/** The kernel refused a request: `code` is the errno's name (EEXIST, ENODEV, ...). */
export class NetlinkError extends Error {
  readonly errno: number;
  readonly code: string;

  constructor(operation: string, errno: number) {
    super(`${operation}: ${describe(errnoName(errno))}`);
    this.name = 'NetlinkError';
    this.errno = errno;
    this.code = errnoName(errno);
  }
}

/**
 * Linux errno numbers (asm-generic/errno-base.h, errno.h) the plugin meets.
 * A table of its own: importing node:os for its constants costs the
 * compiled plugin a measurable part of a millisecond at every start.
 */
const errnoNames: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  3: 'ESRCH',
  4: 'EINTR',
  9: 'EBADF',
  11: 'EAGAIN',
  12: 'ENOMEM',
  13: 'EACCES',
  16: 'EBUSY',
  17: 'EEXIST',
  19: 'ENODEV',
  22: 'EINVAL',
  34: 'ERANGE',
  93: 'EPROTONOSUPPORT',
  95: 'EOPNOTSUPP',
  97: 'EAFNOSUPPORT',
  99: 'EADDRNOTAVAIL',
  101: 'ENETUNREACH',
  105: 'ENOBUFS',
};

/** The name of a (negative) errno: EEXIST, ENODEV, ... */
function errnoName(errno: number): string {
  return errnoNames[-errno] ?? `errno ${-errno}`;
}

const descriptions: Record<string, string> = {
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  ENOENT: 'No such file or directory',
  EINVAL: 'Invalid argument',
  EPERM: 'Operation not permitted',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENETUNREACH: 'Network is unreachable',
  EBUSY: 'Device or resource busy',
  ENOBUFS: 'No buffer space available',
};

function describe(code: string): string {
  return descriptions[code] ? `${descriptions[code]} (${code})` : code;
}

export class NetlinkSocket {
  readonly #libc: Libc;
  readonly #fd: number;
  #closed = false;
  #seq = Math.floor(Math.random() * 0x7fffffff);
  readonly #buffer = Buffer.alloc(64 * 1024);

  private constructor(c: Libc, fd: number) {
    this.#libc = c;
    this.#fd = fd;
  }

  /** A socket of `protocol` in this thread's namespace, or in the one at `netns`. */
  static async open(protocol: number, netns?: string): Promise<NetlinkSocket> {
    const c = await libc();
    if (!netns) return new NetlinkSocket(c, NetlinkSocket.#socket(c, protocol));
    return new NetlinkSocket(
      c,
      inNetns(c, netns, () => NetlinkSocket.#socket(c, protocol)),
    );
  }

  static #socket(c: Libc, protocol: number): number {
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) throw new NetlinkError('opening a netlink socket', -c.errno());
    return fd;
  }

  /** Closes the socket; closing it again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.#fd);
  }

  /**
   * One datagram the kernel has already queued, or undefined when none is
   * waiting: recv(2) with MSG_DONTWAIT, so the event loop never blocks.
   * ENOBUFS (the kernel dropped messages because the socket's receive
   * buffer was full) throws a NetlinkError; the socket stays usable.
   */
  receiveWaiting(): Buffer | undefined {
    for (;;) {
      const n = this.#libc.recv(this.#fd, this.#buffer, this.#buffer.length, MSG_DONTWAIT);
      if (n >= 0) return Buffer.from(this.#buffer.subarray(0, n));
      const errno = this.#libc.errno();
      if (errno === EINTR) continue;
      if (errno === EAGAIN) return undefined;
      throw new NetlinkError('receiving from a netlink socket', -errno);
    }
  }

  /**
   * Sends one request and waits for its answer: the acknowledgement (an
   * error throws NetlinkError), or for a dump every message until the end.
   */
  request(
    operation: string,
    type: number,
    flags: number,
    body: Uint8Array,
    attributes: readonly Attribute[] = [],
  ): DecodedMessage[] {
    const seq = ++this.#seq;
    const dump = (flags & NLM_F_DUMP) === NLM_F_DUMP;
    const message = encodeMessage(
      type,
      flags | NLM_F_REQUEST | (dump ? 0 : NLM_F_ACK),
      seq,
      body,
      attributes,
    );
    if (this.#libc.send(this.#fd, message, message.length, 0) < 0) {
      throw new NetlinkError(operation, -this.#libc.errno());
    }
    const replies: DecodedMessage[] = [];
    for (;;) {
      const n = this.#libc.recv(this.#fd, this.#buffer, this.#buffer.length, 0);
      if (n < 0) {
        const errno = this.#libc.errno();
        if (errno === EINTR) continue;
        throw new NetlinkError(operation, -errno);
      }
      for (const m of decodeMessages(this.#buffer.subarray(0, n))) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_ERROR) {
          const code = errorCode(m.payload);
          if (code !== 0) throw new NetlinkError(operation, code);
          return replies;
        }
        if (m.type === NLMSG_DONE) return replies;
        replies.push({ ...m, payload: Buffer.from(m.payload) });
      }
    }
  }
}

/** A NETLINK_ROUTE socket: links, addresses and routes (route.ts). */
export type RouteSocket = NetlinkSocket;
export const RouteSocket = {
  /** A NETLINK_ROUTE socket in this thread's namespace, or in the one at `netns`. */
  open: (netns?: string): Promise<NetlinkSocket> => NetlinkSocket.open(NETLINK_ROUTE, netns),
};
