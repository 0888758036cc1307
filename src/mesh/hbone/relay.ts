/**
 * Bytes between a tunnel stream and a TCP socket, both ways, with the
 * semantics RFC 9113 section 8.5 gives CONNECT: END_STREAM is the TCP FIN
 * (each direction closes on its own: half-close), and an error on either side
 * resets the other: a TCP RST or socket error resets the stream, and a reset
 * stream (any code) becomes a TCP RST. Backpressure holds both ways: a reader
 * pauses while its writer's buffer is full, so HTTP/2 flow control and the
 * TCP window carry it to the far ends. Chunks pass through as they are.
 *
 * The stream is reset with RST_STREAM(INTERNAL_ERROR), not the CONNECT_ERROR
 * the RFC names: Node's `close(code)` ends the writable side first, and the
 * END_STREAM it sends would reach the far end as a FIN, making a cut-off
 * upload look complete; `destroy(error)` sends the RST alone.
 */
import { constants as h2, type Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** How a relay ended. */
export type RelayOutcome =
  /** Both sides closed in order (FIN and END_STREAM both ways). */
  | 'closed'
  /** The tunnel was reset (RST_STREAM, or its session went away); the socket was reset. */
  | 'tunnel-reset'
  /** The socket failed or was reset; the stream was reset. */
  | 'socket-reset';

export interface RelayResult {
  outcome: RelayOutcome;
  /** Bytes read from the socket and written into the tunnel. */
  socketToTunnel: number;
  /** Bytes read from the tunnel and written to the socket. */
  tunnelToSocket: number;
}

export interface RelayOptions {
  /** Bytes that may wait in each writer before its reader pauses; default 1 MiB. */
  budgetBytes?: number;
}

/** Relays until both sides are closed; never rejects (the outcome says how it ended). */
export function relay(
  tunnel: Http2Stream,
  socket: Duplex,
  options: RelayOptions = {},
): Promise<RelayResult> {
  const budget = options.budgetBytes ?? 1024 * 1024;
  // Nagle would hold a small write while an earlier one is unacknowledged:
  // a request or an answer would wait for the peer's (delayed) ACK.
  (socket as Partial<Socket>).setNoDelay?.(true);
  return new Promise((resolve) => {
    const result: RelayResult = { outcome: 'closed', socketToTunnel: 0, tunnelToSocket: 0 };
    let open = 2;
    const settle = () => {
      open -= 1;
      if (open === 0) resolve(result);
    };

    // Into the tunnel, writes need no gathering: Node's HTTP/2 session sends
    // whatever its streams queued in one write per turn of the event loop.
    forward(socket, tunnel, budget, false, (n) => (result.socketToTunnel += n));
    forward(
      tunnel,
      socket,
      budget,
      true,
      (n) => (result.tunnelToSocket += n),
      () => !wasReset(tunnel),
    );

    // Errors are handled through 'close' below; listening keeps them from being thrown.
    socket.on('error', () => undefined);
    tunnel.on('error', () => undefined);

    socket.once('close', () => {
      if (!closedInOrder(socket) && !tunnel.closed) {
        if (result.outcome === 'closed') result.outcome = 'socket-reset';
        tunnel.destroy(new Error('The TCP connection at the other end of the tunnel failed'));
      }
      settle();
    });
    tunnel.once('close', () => {
      const reset = wasReset(tunnel) || !closedInOrder(tunnel);
      if (reset && !socket.destroyed) {
        if (result.outcome === 'closed') result.outcome = 'tunnel-reset';
        resetSocket(socket);
      }
      settle();
    });
  });
}

/** Chunks at least this large are held for the end of the event loop turn, to leave with the others. */
const coalesceFromBytes = 4096;

/**
 * Copies `from` into `to`, and ends `to` when `from` ends in order (a reset
 * also ends a stream's readable side, but must not become a FIN).
 *
 * Backpressure by our own budget rather than `to`'s highWaterMark: an HTTP/2
 * stream's is 16 KiB (Node gives no way to raise it) and its write completes
 * only once the frame went out on the socket, so pausing at `write() ===
 * false` would keep one socket read in flight at a time and leave the pipe
 * idle between them. Up to `budgetBytes` may wait in `to`; `from` resumes when
 * half of that has gone out.
 */
function forward(
  from: Duplex,
  to: Duplex,
  budgetBytes: number,
  coalesce: boolean,
  count: (bytes: number) => void,
  endedInOrder: () => boolean = () => true,
): void {
  let paused = false;
  const written = () => {
    if (paused && to.writableLength <= budgetBytes / 2) {
      paused = false;
      from.resume();
    }
  };
  // With `coalesce`, bulk chunks are gathered into one write per turn of the
  // event loop. An HTTP/2 stream delivers each DATA frame piece through its
  // own callback from C++ (a 16 KiB frame straddles two TLS records: a ~16 KiB
  // piece and a few bytes), and the nextTick queue is drained after each, so
  // only setImmediate (the check phase, after every read of this poll)
  // gathers them: otherwise each piece is a write(2) of its own whenever the
  // socket has room. Small chunks (a request, an answer) go out at once, so
  // latency pays nothing.
  let corked = false;
  const uncork = () => {
    corked = false;
    to.uncork();
  };
  from.on('data', (chunk: Buffer) => {
    count(chunk.length);
    if (to.destroyed) return;
    if (coalesce && !corked && chunk.length >= coalesceFromBytes) {
      corked = true;
      to.cork();
      setImmediate(uncork);
    }
    to.write(chunk, written);
    if (to.writableLength > budgetBytes) {
      paused = true;
      from.pause();
    }
  });
  from.once('end', () => {
    if (!to.destroyed && endedInOrder()) to.end();
  });
}

/** Whether the stream was closed by RST_STREAM (either end) or lost with its session. */
function wasReset(stream: Http2Stream): boolean {
  return stream.aborted || (stream.rstCode !== undefined && stream.rstCode !== h2.NGHTTP2_NO_ERROR);
}

function closedInOrder(stream: Duplex): boolean {
  return stream.readableEnded && stream.writableFinished;
}

/** A TCP RST where the duplex is a TCP socket (Node 16.17+), else a plain destroy. */
export function resetSocket(socket: Duplex): void {
  const tcp = socket as Partial<Socket>;
  if (typeof tcp.resetAndDestroy === 'function' && !socket.destroyed) {
    try {
      tcp.resetAndDestroy();
      return;
    } catch {
      // Not connected yet, or not a TCP handle: fall through.
    }
  }
  socket.destroy();
}
