/**
 * Forwarding names outside the cluster zone to the upstream servers given
 * on the command line, as CoreDNS's forward plugin with `policy sequential`:
 * the query goes unchanged (the client's id, flags and EDNS) to the first
 * upstream, over UDP or over TCP as the client asked; on a timeout or an
 * error the next upstream is tried. Each UDP attempt uses a socket of its
 * own, so the reply is told apart by its source port as well as by the
 * upstream's address, port and the query id. undefined means every
 * upstream failed (the server answers SERVFAIL).
 */
import { type Socket as UdpSocket, createSocket } from 'node:dgram';
import { Socket } from 'node:net';
import type { DnsEndpoint } from './endpoints.js';
import type { Transport } from './resolve.js';

/** How long one upstream has to answer before the next is asked (CoreDNS: 2 s). */
export const defaultForwardTimeoutMs = 2_000;

export class Forwarder {
  constructor(
    readonly upstreams: readonly DnsEndpoint[],
    private readonly timeoutMs = defaultForwardTimeoutMs,
  ) {}

  /** The upstream's response to `query` (with the query's id), or undefined when none answered. */
  async forward(query: Buffer, transport: Transport): Promise<Buffer | undefined> {
    for (const upstream of this.upstreams) {
      const response =
        transport === 'udp'
          ? await this.#overUdp(query, upstream)
          : await this.#overTcp(query, upstream);
      if (response) return response;
    }
    return undefined;
  }

  #overUdp(query: Buffer, upstream: DnsEndpoint): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const socket: UdpSocket = createSocket(upstream.family === 4 ? 'udp4' : 'udp6');
      let done = false;
      const finish = (response: Buffer | undefined): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.close();
        resolve(response);
      };
      const timer = setTimeout(() => {
        finish(undefined);
      }, this.timeoutMs);
      socket.on('error', () => {
        finish(undefined);
      });
      socket.on('message', (message, from) => {
        const fromUpstream = from.address === upstream.host && from.port === upstream.port;
        // A response (QR set) to this query id from the upstream; anything else is ignored.
        if (
          fromUpstream &&
          message.length >= 12 &&
          message[0] === query[0] &&
          message[1] === query[1] &&
          ((message[2] ?? 0) & 0x80) !== 0
        ) {
          finish(message);
        }
      });
      socket.send(query, upstream.port, upstream.host);
    });
  }

  #overTcp(query: Buffer, upstream: DnsEndpoint): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const socket = new Socket();
      let received = Buffer.alloc(0);
      let done = false;
      const finish = (response: Buffer | undefined): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(response);
      };
      const timer = setTimeout(() => {
        finish(undefined);
      }, this.timeoutMs);
      socket.on('error', () => {
        finish(undefined);
      });
      socket.on('close', () => {
        finish(undefined);
      });
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length < 2) return;
        const length = received.readUInt16BE(0);
        if (received.length >= 2 + length) finish(received.subarray(2, 2 + length));
      });
      socket.connect(upstream.port, upstream.host, () => {
        const framed = Buffer.allocUnsafe(2 + query.length);
        framed.writeUInt16BE(query.length, 0);
        query.copy(framed, 2);
        socket.write(framed);
      });
    });
  }
}
