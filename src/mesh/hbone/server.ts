/**
 * The HBONE server: the inbound side of the node's L4 proxy (ztunnel's
 * listener on 15008). It terminates mutual TLS, reads the client's SPIFFE ID
 * from its verified certificate, and for each HTTP/2 CONNECT stream asks the
 * proxy's handler what to do: refuse with a status, or hand back the upstream
 * connection, which it then relays to the stream.
 *
 * Certificates are per destination, as in ztunnel: the server presents the
 * certificate of the workload the connection was addressed to, which the
 * proxy names through `certificateFor` when the TCP connection arrives
 * (HBONE clients send no SNI). Each certificate gets its own TLS context (one
 * HTTP/2 secure server that never listens); the one listener hands each
 * accepted socket to the right one, as Node lets a program inject connections
 * into a TLS server.
 */
import {
  constants as h2,
  createSecureServer,
  type Http2SecureServer,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import { createServer, type Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import type { WorkloadCertificate } from '../identity/workload.js';
import { parseAuthority, type SocketAddress } from './connect-request.js';
import { HboneListenError } from './errors.js';
import { relay, type RelayResult } from './relay.js';
import {
  defaultTunnelSettings,
  hbonePort,
  http2Settings,
  type TunnelSettings,
} from './settings.js';
import { clientIdentity, serverTlsOptions, type PeerCertificateSummary } from './tls.js';

/** A TCP connection to the HBONE port, before TLS. */
export interface InboundConnection {
  /** The socket's local address: the listener's, or the node's when nftables redirected it. */
  local: SocketAddress;
  /** The peer proxy. */
  remote: SocketAddress;
  /** The accepted socket, for the proxy to recover its original destination (SO_ORIGINAL_DST). */
  socket: Socket;
}

/** What the server presents on an inbound connection. */
export interface InboundCertificate {
  /** The destination workload's certificate. */
  certificate: WorkloadCertificate;
  /** Where the connection was addressed to, when the proxy recovered it; else the socket's local address. */
  originalDestination?: SocketAddress;
}

/** One CONNECT stream, for the proxy to authorize and connect. */
export interface HboneConnectRequest {
  /** The identity the client proved with its certificate (verified, of our trust domain). */
  source: SpiffeId;
  sourceCertificate: PeerCertificateSummary;
  /** The destination workload: the CONNECT `:authority`. */
  destination: SocketAddress;
  /** The peer proxy at the far end of the tunnel. */
  peer: SocketAddress;
  /** Where the tunnel connection arrived (its original destination), and the identity we presented there. */
  local: SocketAddress;
  localIdentity: SpiffeId;
  streamId: number;
  /** The request headers (`forwarded`, `baggage`, `traceparent`, ...). */
  headers: IncomingHttpHeaders;
}

/** The proxy's answer that refuses a stream: the `:status` to send and why (for the log, not the wire). */
export interface HboneRefusal {
  refuse: number;
  reason: string;
}

/**
 * The proxy's decision on a CONNECT: the upstream connection to relay to (the
 * server answers 200 and owns it from then on), or a refusal. A connection
 * to relay should be made with `allowHalfOpen: true`, so each direction closes
 * on its own.
 */
export type HboneHandler = (request: HboneConnectRequest) => Promise<Duplex | HboneRefusal>;

/** What the server reports, for access logs and metrics. */
export type HboneServerEvent =
  | {
      type: 'connection-refused';
      remote: SocketAddress;
      /** `no-certificate`: certificateFor had none; `tls`: the handshake failed; `peer-identity`: the client's identity is not acceptable. */
      reason: 'no-certificate' | 'tls' | 'peer-identity';
      error?: unknown;
    }
  | { type: 'session-opened'; remote: SocketAddress; source: SpiffeId; localIdentity: SpiffeId }
  | { type: 'session-closed'; remote: SocketAddress; source: SpiffeId }
  | {
      type: 'stream-refused';
      remote: SocketAddress;
      status: number;
      reason: string;
      /** Absent when the request was malformed. */
      request?: HboneConnectRequest;
      error?: unknown;
    }
  | {
      type: 'stream-closed';
      request: HboneConnectRequest;
      result: RelayResult;
      durationMs: number;
    };

export interface HboneServerOptions {
  /** Default `::` (every address, both families), as ztunnel's `[::]:15008`. */
  address?: string;
  /** Default 15008; 0 picks a free port. */
  port?: number;
  /** Clients must prove an identity of this trust domain. */
  trustDomain: string;
  /** PEM roots client chains must lead to. */
  trustBundlePem: string;
  /** The certificate for a connection, by where it was addressed; undefined refuses it. */
  certificateFor: (
    connection: InboundConnection,
  ) => InboundCertificate | undefined | Promise<InboundCertificate | undefined>;
  handler: HboneHandler;
  onEvent?: (event: HboneServerEvent) => void;
  settings?: Partial<TunnelSettings>;
  /** How long a TLS handshake may take; default 10 s. */
  handshakeTimeoutMs?: number;
}

/** A TLS context: one certificate, and the sessions made with it. */
interface TlsServer {
  server: Http2SecureServer;
  identity: SpiffeId;
  sessions: number;
  /** False once a newer certificate replaced it (or the trust bundle changed): no new connections. */
  current: boolean;
}

interface SessionContext {
  source: SpiffeId;
  sourceCertificate: PeerCertificateSummary;
  peer: SocketAddress;
  local: SocketAddress;
  localIdentity: SpiffeId;
}

interface PendingConnection {
  local: SocketAddress;
  identity: SpiffeId;
}

export class HboneServer {
  private readonly options: HboneServerOptions;
  private readonly settings: TunnelSettings;
  private readonly listener: Server;
  /** By trust bundle generation and leaf certificate. */
  private readonly tlsServers = new Map<string, TlsServer>();
  /** Accepted sockets handed to TLS, by their remote end, until their session starts. */
  private readonly pending = new Map<string, PendingConnection>();
  private readonly sessions = new Map<ServerHttp2Session, SessionContext>();
  private trustBundlePem: string;
  private generation = 0;
  private closing = false;

  constructor(options: HboneServerOptions) {
    this.options = options;
    this.settings = { ...defaultTunnelSettings, ...options.settings };
    this.trustBundlePem = options.trustBundlePem;
    this.listener = createServer({ pauseOnConnect: true, noDelay: true }, (socket) => {
      void this.accept(socket);
    });
  }

  /** Starts listening; resolves with the bound address. */
  async listen(): Promise<SocketAddress> {
    const address = this.options.address ?? '::';
    const port = this.options.port ?? hbonePort;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => {
        reject(
          new HboneListenError(
            `Cannot listen for HBONE on ${address} port ${port}: ${error.message}`,
            {
              cause: error,
            },
          ),
        );
      };
      this.listener.once('error', onError);
      this.listener.listen({ host: address, port }, () => {
        this.listener.off('error', onError);
        resolve();
      });
    });
    return this.address();
  }

  /** The address the server listens on. */
  address(): SocketAddress {
    const bound = this.listener.address();
    if (bound === null || typeof bound === 'string') {
      throw new HboneListenError('The HBONE server is not listening');
    }
    return { address: bound.address, port: bound.port };
  }

  /** New connections verify clients against this bundle; established sessions are left alone. */
  updateTrustBundle(trustBundlePem: string): void {
    this.trustBundlePem = trustBundlePem;
    this.generation += 1;
    for (const [key, tls] of this.tlsServers) {
      tls.current = false;
      if (tls.sessions === 0) this.tlsServers.delete(key);
    }
  }

  /** How many sessions (tunnel connections) are open: the number of peer identity pairs served. */
  sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Stops listening. Graceful: GOAWAY to every session, whose streams run to
   * their end; resolves when the last session closed. Otherwise every stream
   * is reset at once.
   */
  async close(options: { graceful?: boolean } = {}): Promise<void> {
    this.closing = true;
    const listenerClosed = new Promise<void>((resolve) => {
      this.listener.close(() => {
        resolve();
      });
    });
    const sessionsClosed = [...this.sessions.keys()].map(
      (session) =>
        new Promise<void>((resolve) => {
          if (session.destroyed) {
            resolve();
            return;
          }
          session.once('close', resolve);
          if (options.graceful === true) session.close();
          else session.destroy();
        }),
    );
    await Promise.all([listenerClosed, ...sessionsClosed]);
  }

  private emit(event: HboneServerEvent): void {
    this.options.onEvent?.(event);
  }

  private async accept(socket: Socket): Promise<void> {
    // Until TLS owns the socket, an error (a reset) only closes it.
    const onEarlyError = () => socket.destroy();
    socket.on('error', onEarlyError);
    // The node proxy hands in sockets its transparent listener accepted, with
    // Node's default (Nagle on): answers of streams sharing the session would
    // wait for the client's ACK of the one before.
    socket.setNoDelay(true);
    const remote = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    const local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
    let inbound: InboundCertificate | undefined;
    let failure: unknown;
    try {
      inbound = await this.options.certificateFor({ local, remote, socket });
    } catch (error) {
      failure = error;
    }
    if (inbound === undefined) {
      this.emit({
        type: 'connection-refused',
        remote,
        reason: 'no-certificate',
        ...(failure === undefined ? {} : { error: failure }),
      });
    }
    if (inbound === undefined || socket.destroyed || this.closing) {
      socket.destroy();
      return;
    }
    const tls = this.tlsServerFor(inbound.certificate);
    const key = remoteKey(remote);
    const pending: PendingConnection = {
      local: inbound.originalDestination ?? local,
      identity: inbound.certificate.identity,
    };
    this.pending.set(key, pending);
    // TLS destroys the raw socket with its own, so the entry goes even when no session starts.
    socket.once('close', () => {
      if (this.pending.get(key) === pending) this.pending.delete(key);
    });
    socket.off('error', onEarlyError);
    tls.server.emit('connection', socket);
  }

  private tlsServerFor(certificate: WorkloadCertificate): TlsServer {
    const leaf = certificate.certChainPem[0] ?? '';
    const key = `${this.generation}\n${leaf}`;
    const existing = this.tlsServers.get(key);
    if (existing !== undefined) return existing;

    // A new certificate for an identity replaces the old one for new connections.
    const identity = formatSpiffeId(certificate.identity);
    for (const [oldKey, old] of this.tlsServers) {
      if (formatSpiffeId(old.identity) !== identity) continue;
      old.current = false;
      if (old.sessions === 0) this.tlsServers.delete(oldKey);
    }

    const server = createSecureServer({
      ...serverTlsOptions(certificate, this.trustBundlePem),
      settings: http2Settings(this.settings),
      maxSessionMemory: this.settings.maxSessionMemoryMiB,
      handshakeTimeout: this.options.handshakeTimeoutMs ?? 10_000,
      allowHTTP1: false,
    });
    const tls: TlsServer = { server, identity: certificate.identity, sessions: 0, current: true };
    server.on('session', (session) => {
      this.openSession(session, tls, key);
    });
    server.on('stream', (stream, headers) => {
      void this.serveStream(stream, headers);
    });
    server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
      const remote = remoteOfFailedTls(socket);
      // A chain that failed verification shows as a hang-up; the socket knows why.
      const why = socket.authorizationError;
      const reported =
        why === null || why === undefined
          ? error
          : new Error(`The client certificate did not verify: ${String(why)}`, { cause: error });
      this.emit({ type: 'connection-refused', remote, reason: 'tls', error: reported });
    });
    // A client that negotiated no ALPN, or HTTP/1.1: not HBONE.
    server.on('unknownProtocol', (socket) => {
      socket.destroy();
    });
    this.tlsServers.set(key, tls);
    return tls;
  }

  private openSession(session: ServerHttp2Session, tls: TlsServer, key: string): void {
    const socket = session.socket as TLSSocket;
    const remote = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    session.on('error', () => undefined);
    const pending = this.pending.get(remoteKey(remote));
    this.pending.delete(remoteKey(remote));
    let proved: ReturnType<typeof clientIdentity>;
    try {
      proved = clientIdentity(socket, this.options.trustDomain);
    } catch (error) {
      this.emit({ type: 'connection-refused', remote, reason: 'peer-identity', error });
      // RFC 9113 section 7: INADEQUATE_SECURITY, "the underlying transport has
      // properties that do not meet minimum security requirements".
      session.destroy(undefined, h2.NGHTTP2_INADEQUATE_SECURITY);
      return;
    }
    const context: SessionContext = {
      source: proved.identity,
      sourceCertificate: proved.certificate,
      peer: remote,
      local: pending?.local ?? { address: socket.localAddress ?? '', port: socket.localPort ?? 0 },
      localIdentity: pending?.identity ?? tls.identity,
    };
    this.sessions.set(session, context);
    tls.sessions += 1;
    session.setLocalWindowSize(this.settings.sessionWindowBytes);
    session.once('close', () => {
      this.sessions.delete(session);
      tls.sessions -= 1;
      if (!tls.current && tls.sessions === 0 && this.tlsServers.get(key) === tls) {
        this.tlsServers.delete(key);
      }
      this.emit({ type: 'session-closed', remote, source: context.source });
    });
    this.emit({
      type: 'session-opened',
      remote,
      source: context.source,
      localIdentity: context.localIdentity,
    });
    if (this.closing) session.close();
  }

  private async serveStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders) {
    stream.on('error', () => undefined);
    const context = this.sessions.get(stream.session as ServerHttp2Session);
    if (context === undefined) {
      // The session was refused; its streams never reach a handler.
      stream.close(h2.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const remote = context.peer;
    const method = headers[':method'];
    if (method !== 'CONNECT' || headers[':protocol'] !== undefined) {
      this.refuse(stream, 405, `HBONE accepts only CONNECT: got ${String(method)}`, remote);
      return;
    }
    const authority = headers[':authority'] ?? '';
    const destination = parseAuthority(authority);
    if (destination === undefined) {
      const reason = `The CONNECT authority must be <ip>:<port> of the destination workload: got ${JSON.stringify(authority)}`;
      this.refuse(stream, 400, reason, remote);
      return;
    }
    const request: HboneConnectRequest = {
      source: context.source,
      sourceCertificate: context.sourceCertificate,
      destination,
      peer: context.peer,
      local: context.local,
      localIdentity: context.localIdentity,
      streamId: stream.id ?? 0,
      headers,
    };
    const started = performance.now();
    let decision: Duplex | HboneRefusal;
    try {
      decision = await this.options.handler(request);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.refuse(stream, 500, `The HBONE handler failed: ${reason}`, remote, request, error);
      return;
    }
    if (isRefusal(decision)) {
      this.refuse(stream, decision.refuse, decision.reason, remote, request);
      return;
    }
    const upstream = decision;
    if (stream.closed || stream.destroyed) {
      // The client gave up while the proxy connected.
      upstream.destroy();
      return;
    }
    stream.respond({ ':status': 200 });
    const result = await relay(stream, upstream);
    this.emit({ type: 'stream-closed', request, result, durationMs: performance.now() - started });
  }

  private refuse(
    stream: ServerHttp2Stream,
    status: number,
    reason: string,
    remote: SocketAddress,
    request?: HboneConnectRequest,
    error?: unknown,
  ): void {
    if (!stream.closed && !stream.destroyed && !stream.headersSent) {
      stream.respond({ ':status': status }, { endStream: true });
    }
    this.emit({
      type: 'stream-refused',
      remote,
      status,
      reason,
      ...(request === undefined ? {} : { request }),
      ...(error === undefined ? {} : { error }),
    });
  }
}

function isRefusal(decision: Duplex | HboneRefusal): decision is HboneRefusal {
  return typeof (decision as Partial<HboneRefusal>).refuse === 'number';
}

function remoteKey(remote: SocketAddress): string {
  return `${remote.address} ${remote.port}`;
}

/**
 * The client's address on a TLS socket whose handshake failed. A refused
 * certificate tears the TLS socket down before 'tlsClientError', and its own
 * address goes with it; the TCP socket it wrapped (Node's `_parent`, which
 * the server was handed and asked for its address) still knows it.
 */
function remoteOfFailedTls(socket: TLSSocket): SocketAddress {
  if (socket.remoteAddress !== undefined) {
    return { address: socket.remoteAddress, port: socket.remotePort ?? 0 };
  }
  const parent = (socket as TLSSocket & { _parent?: unknown })._parent;
  if (parent instanceof Socket) {
    return { address: parent.remoteAddress ?? '', port: parent.remotePort ?? 0 };
  }
  return { address: '', port: 0 };
}
