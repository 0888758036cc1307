/**
 * The HBONE client: the outbound side of the node's L4 proxy. `connect` opens
 * a CONNECT stream to a destination workload through the proxy of its node,
 * over a pooled HTTP/2 session.
 *
 * Pooling follows Istio's HBONE: streams of the same source identity to the
 * same expected destination identity through the same peer proxy share one
 * mTLS session ("one tunnel per source/destination identity pair"); a session
 * takes at most `maxStreamsPerSession` streams (ztunnel's 100) before another
 * is opened beside it, and is released after `idleTimeoutMs` without streams
 * (ztunnel's 5 minutes). A session that got GOAWAY or closed takes no new
 * streams; the next connect opens a fresh one.
 *
 * Certificate rotation never drops a connection: a newer certificate for an
 * identity (through `updateCertificate`, or a newer one passed to `connect`)
 * retires that identity's sessions: they take no new streams and close
 * gracefully (GOAWAY) once their last stream ends, while new streams go over
 * new sessions made with the new certificate.
 */
import {
  connect as connectHttp2,
  constants as h2,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type OutgoingHttpHeaders,
  type Settings,
} from 'node:http2';
import { X509Certificate } from 'node:crypto';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { PeerIdentityError } from '../identity/errors.js';
import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import type { WorkloadCertificate } from '../identity/workload.js';
import { formatAuthority, forwardedFor, type SocketAddress } from './connect-request.js';
import { HboneConnectError, refusalMeaning, type HboneConnectTarget } from './errors.js';
import {
  defaultTunnelSettings,
  hbonePort,
  http2Settings,
  type TunnelSettings,
} from './settings.js';
import { clientTlsOptions, hboneAlpn } from './tls.js';

export interface HboneClientOptions {
  /** PEM roots a server's chain must lead to. */
  trustBundlePem: string;
  settings?: Partial<TunnelSettings>;
  /** Streams per session before another session is opened beside it; default 100 (ztunnel). */
  maxStreamsPerSession?: number;
  /** A session without streams for this long is closed; default 5 minutes (ztunnel). */
  idleTimeoutMs?: number;
  /** Deadline for the whole connect: TCP, TLS, and the CONNECT's answer; default 10 s. */
  connectTimeoutMs?: number;
}

export interface HboneConnectOptions {
  /** The source workload's certificate, presented to the peer proxy. */
  source: WorkloadCertificate;
  /** The destination workload (the CONNECT authority). */
  destination: SocketAddress;
  /** The proxy that terminates the tunnel: the destination node's, on 15008 by default. */
  peer: { address: string; port?: number };
  /**
   * The identity the peer must prove: the destination workload's, or a list
   * of acceptable ones (a waypoint's, the service's extra SANs).
   */
  expectedIdentity: SpiffeId | readonly SpiffeId[];
  /** The source workload's address, sent as `forwarded: for=<ip>` as ztunnel does. */
  sourceAddress?: string;
  /** More request headers (`baggage`, `traceparent`, ...). */
  headers?: OutgoingHttpHeaders;
  /** Abandons the connect (the stream is cancelled). */
  signal?: AbortSignal;
}

/** A pooled session, for tests and the proxy's admin view. */
export interface HboneSessionInfo {
  source: string;
  expected: string;
  peer: string;
  streams: number;
  retired: boolean;
  /** Serial number (upper-case hex) of the certificate the session presented. */
  certificateSerial: string;
}

interface PooledSession {
  key: string;
  sourceId: string;
  expected: string;
  peer: string;
  session: ClientHttp2Session;
  certificate: WorkloadCertificate;
  ready: Promise<void>;
  /** Streams open or being opened on it. */
  streams: number;
  /** The most streams the peer allows at once (SETTINGS_MAX_CONCURRENT_STREAMS) and we use. */
  capacity: number;
  retired: boolean;
  idleTimer: NodeJS.Timeout | undefined;
  /** Whether the peer answered any CONNECT on it: a session closed before that was likely refused. */
  answered: boolean;
  /** The error code of the GOAWAY the peer sent, if it sent one. */
  goawayCode: number | undefined;
}

export class HboneClient {
  private readonly settings: TunnelSettings;
  private readonly maxStreamsPerSession: number;
  private readonly idleTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private trustBundlePem: string;
  /** Sessions by pool key (source identity, expected identities, peer). */
  private readonly pools = new Map<string, PooledSession[]>();
  /** Sessions that take no new streams but still carry some. */
  private readonly retired = new Set<PooledSession>();
  /** The newest certificate seen for each source identity. */
  private readonly certificates = new Map<string, WorkloadCertificate>();
  private closed = false;

  constructor(options: HboneClientOptions) {
    this.trustBundlePem = options.trustBundlePem;
    this.settings = { ...defaultTunnelSettings, ...options.settings };
    this.maxStreamsPerSession = options.maxStreamsPerSession ?? 100;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 5 * 60_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  }

  /**
   * Opens a tunnel to `destination` through `peer`: resolves with the CONNECT
   * stream once the peer answered 200, or rejects with HboneConnectError
   * naming why. Relay it to the downstream socket with `relay()`. The stream
   * ignores 'error' events of its own: a reset shows as 'close' with a
   * non-zero `rstCode`.
   */
  async connect(options: HboneConnectOptions): Promise<ClientHttp2Stream> {
    const peer = { address: options.peer.address, port: options.peer.port ?? hbonePort };
    const target: HboneConnectTarget = {
      destination: formatAuthority(options.destination),
      peer: formatAuthority(peer),
    };
    const expected: readonly SpiffeId[] = isIdentityList(options.expectedIdentity)
      ? options.expectedIdentity
      : [options.expectedIdentity];
    if (expected.length === 0) {
      throw new TypeError('HboneClient.connect: expectedIdentity must name at least one identity');
    }
    const deadline = Date.now() + this.connectTimeoutMs;
    // A stream refused because the session was going away is retried once on a new session.
    for (let attempt = 1; ; attempt++) {
      if (this.closed) {
        throw new HboneConnectError('closed', target, 'The HBONE client is closed');
      }
      const pooled = this.acquire(options.source, expected, peer, target);
      // The reservation acquire made passes to the stream once there is one.
      let handedOver = false;
      try {
        // The session has its own deadline (it may be shared), so giving up waiting cancels nothing.
        await withDeadline(pooled.ready, deadline, options.signal, target, () => undefined);
        return await this.openStream(pooled, options, target, deadline, () => {
          handedOver = true;
        });
      } catch (error) {
        if (!handedOver) this.release(pooled);
        if (attempt === 1 && error instanceof HboneConnectError && isRetryable(error)) continue;
        throw error;
      }
    }
  }

  /**
   * Makes new sessions of `identity` use `certificate`. Its sessions made with
   * an older certificate take no new streams and close once idle; their
   * streams carry on untouched.
   */
  updateCertificate(identity: SpiffeId, certificate: WorkloadCertificate): void {
    const sourceId = formatSpiffeId(identity);
    this.certificates.set(sourceId, certificate);
    for (const list of this.pools.values()) {
      for (const pooled of [...list]) {
        if (pooled.sourceId === sourceId && pooled.certificate !== certificate) this.retire(pooled);
      }
    }
  }

  /** New sessions verify servers against this bundle; established sessions are left alone. */
  updateTrustBundle(trustBundlePem: string): void {
    this.trustBundlePem = trustBundlePem;
    for (const list of this.pools.values()) for (const pooled of [...list]) this.retire(pooled);
  }

  /** The sessions the client holds, pooled and retired. */
  sessions(): HboneSessionInfo[] {
    const all = [...[...this.pools.values()].flat(), ...this.retired];
    return all.map((pooled) => ({
      source: pooled.sourceId,
      expected: pooled.expected,
      peer: pooled.peer,
      streams: pooled.streams,
      retired: pooled.retired,
      certificateSerial: new X509Certificate(pooled.certificate.certChainPem[0] ?? '').serialNumber,
    }));
  }

  /**
   * Closes every session. Graceful: no new streams, open ones run to their
   * end (GOAWAY). Otherwise open streams are reset.
   */
  async close(options: { graceful?: boolean } = {}): Promise<void> {
    this.closed = true;
    const all = [...[...this.pools.values()].flat(), ...this.retired];
    this.pools.clear();
    await Promise.all(
      all.map(
        (pooled) =>
          new Promise<void>((resolve) => {
            clearTimeout(pooled.idleTimer);
            if (pooled.session.destroyed) {
              resolve();
              return;
            }
            pooled.session.once('close', resolve);
            if (options.graceful === true) pooled.session.close();
            else pooled.session.destroy();
          }),
      ),
    );
  }

  /** A session with room for one more stream, reserving it; opens one when none has room. */
  private acquire(
    offered: WorkloadCertificate,
    expected: readonly SpiffeId[],
    peer: SocketAddress,
    target: HboneConnectTarget,
  ): PooledSession {
    const sourceId = formatSpiffeId(offered.identity);
    const certificate = this.newestCertificate(sourceId, offered);
    const expectedText = expected.map(formatSpiffeId).sort().join(' ');
    const key = `${sourceId}\n${expectedText}\n${target.peer}`;
    for (const pooled of [...(this.pools.get(key) ?? [])]) {
      if (pooled.certificate !== certificate) {
        this.retire(pooled);
        continue;
      }
      if (pooled.streams < pooled.capacity) {
        this.reserve(pooled);
        return pooled;
      }
    }
    // Retiring may have removed the key's list: look it up again.
    let list = this.pools.get(key);
    if (list === undefined) {
      list = [];
      this.pools.set(key, list);
    }
    const pooled = this.openSession(
      key,
      sourceId,
      expectedText,
      certificate,
      expected,
      peer,
      target,
    );
    list.push(pooled);
    this.reserve(pooled);
    return pooled;
  }

  private newestCertificate(sourceId: string, offered: WorkloadCertificate): WorkloadCertificate {
    const known = this.certificates.get(sourceId);
    if (known !== undefined && known.notAfter.getTime() >= offered.notAfter.getTime()) return known;
    this.certificates.set(sourceId, offered);
    return offered;
  }

  private openSession(
    key: string,
    sourceId: string,
    expectedText: string,
    certificate: WorkloadCertificate,
    expected: readonly SpiffeId[],
    peer: SocketAddress,
    target: HboneConnectTarget,
  ): PooledSession {
    const tlsOptions = clientTlsOptions(certificate, this.trustBundlePem, expected);
    const session = connectHttp2(`https://${target.peer}`, {
      settings: http2Settings(this.settings),
      maxSessionMemory: this.settings.maxSessionMemoryMiB,
      createConnection: () => {
        // An IP address as host: Node sends no SNI, as HBONE wants.
        const socket = connectTls({ ...tlsOptions, host: peer.address, port: peer.port });
        socket.setNoDelay(true);
        return socket;
      },
    });
    const pooled: PooledSession = {
      key,
      sourceId,
      expected: expectedText,
      peer: target.peer,
      session,
      certificate,
      ready: Promise.resolve(),
      streams: 0,
      capacity: this.maxStreamsPerSession,
      retired: false,
      idleTimer: undefined,
      answered: false,
      goawayCode: undefined,
    };
    pooled.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new HboneConnectError(
            'timeout',
            target,
            `The tunnel to the proxy at ${target.peer} was not up within ${this.connectTimeoutMs} ms`,
          ),
        );
        session.destroy();
      }, this.connectTimeoutMs);
      const onError = (error: Error) => {
        clearTimeout(timer);
        reject(sessionError(error, target));
      };
      const onClose = () => {
        clearTimeout(timer);
        // Retired while it was coming up (a rotation): worth a retry on a fresh session.
        const http2Code = pooled.retired ? h2.NGHTTP2_REFUSED_STREAM : undefined;
        const message = `The tunnel to ${target.peer} closed before it was up`;
        reject(new HboneConnectError('reset', target, message, { http2Code }));
      };
      session.once('error', onError);
      session.once('close', onClose);
      session.once('connect', (_session, socket) => {
        clearTimeout(timer);
        session.off('error', onError);
        session.off('close', onClose);
        const alpn = (socket as TLSSocket).alpnProtocol;
        if (alpn !== hboneAlpn) {
          const error = new HboneConnectError(
            'tls',
            target,
            `The proxy at ${target.peer} negotiated ALPN ${String(alpn)}, not ${hboneAlpn}`,
          );
          session.destroy();
          reject(error);
          return;
        }
        session.setLocalWindowSize(this.settings.sessionWindowBytes);
        resolve();
      });
    });
    // Readiness is awaited by the connect that opened it; others find out through it too.
    pooled.ready.catch(() => undefined);

    session.on('error', () => undefined);
    session.on('remoteSettings', (settings: Settings) => {
      const peerLimit = settings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER;
      pooled.capacity = Math.min(this.maxStreamsPerSession, peerLimit);
    });
    // The peer is going away (draining, restarting): no new streams here.
    session.on('goaway', (errorCode: number) => {
      pooled.goawayCode = errorCode;
      this.retire(pooled);
    });
    session.once('close', () => {
      clearTimeout(pooled.idleTimer);
      this.forget(pooled);
    });
    return pooled;
  }

  private async openStream(
    pooled: PooledSession,
    options: HboneConnectOptions,
    target: HboneConnectTarget,
    deadline: number,
    handOver: () => void,
  ): Promise<ClientHttp2Stream> {
    const headers: OutgoingHttpHeaders = {
      ...options.headers,
      ':method': 'CONNECT',
      ':authority': target.destination,
    };
    if (options.sourceAddress !== undefined)
      headers.forwarded = forwardedFor(options.sourceAddress);
    let stream: ClientHttp2Stream;
    try {
      stream = pooled.session.request(headers, { endStream: false });
    } catch (error) {
      // The session closed or got GOAWAY between acquire and request.
      throw new HboneConnectError('reset', target, `The tunnel to ${target.peer} is going away`, {
        cause: error,
        http2Code: h2.NGHTTP2_REFUSED_STREAM,
      });
    }
    handOver();
    stream.once('close', () => {
      this.release(pooled);
    });
    const answered = new Promise<ClientHttp2Stream>((resolve, reject) => {
      const onError = (error: Error) => {
        reject(refusedCertificate(pooled, target) ?? streamError(error, stream, target));
      };
      const onClose = () => {
        reject(
          refusedCertificate(pooled, target) ??
            new HboneConnectError(
              'reset',
              target,
              `The proxy at ${target.peer} reset the CONNECT to ${target.destination} (HTTP/2 error ${stream.rstCode})`,
              { http2Code: stream.rstCode },
            ),
        );
      };
      stream.once('error', onError);
      stream.once('close', onClose);
      stream.once('response', (responseHeaders) => {
        stream.off('error', onError);
        stream.off('close', onClose);
        pooled.answered = true;
        const status = Number(responseHeaders[':status']);
        if (status === 200) {
          // A later reset shows as 'close' and rstCode (relay() reads them); an
          // 'error' nobody listened for would take the whole proxy down.
          stream.on('error', () => undefined);
          resolve(stream);
          return;
        }
        stream.close(h2.NGHTTP2_CANCEL);
        reject(
          new HboneConnectError(
            'refused',
            target,
            `The proxy at ${target.peer} refused the CONNECT to ${target.destination} with status ${status}: ${refusalMeaning(status)}`,
            { status },
          ),
        );
      });
    });
    answered.catch(() => undefined);
    try {
      return await withDeadline(answered, deadline, options.signal, target, () => {
        stream.close(h2.NGHTTP2_CANCEL);
      });
    } catch (error) {
      if (!stream.closed) stream.close(h2.NGHTTP2_CANCEL);
      throw error;
    }
  }

  private reserve(pooled: PooledSession): void {
    pooled.streams += 1;
    clearTimeout(pooled.idleTimer);
    pooled.idleTimer = undefined;
  }

  private release(pooled: PooledSession): void {
    pooled.streams -= 1;
    if (pooled.streams > 0) return;
    if (pooled.retired) {
      // Already GOAWAY'd: Node destroys the session with its last stream.
      return;
    }
    clearTimeout(pooled.idleTimer);
    pooled.idleTimer = setTimeout(() => {
      this.retire(pooled);
    }, this.idleTimeoutMs);
    pooled.idleTimer.unref();
  }

  /** No new streams; GOAWAY now, and the session closes when its last stream does. */
  private retire(pooled: PooledSession): void {
    if (pooled.retired) return;
    pooled.retired = true;
    clearTimeout(pooled.idleTimer);
    const list = this.pools.get(pooled.key);
    if (list !== undefined) {
      const index = list.indexOf(pooled);
      if (index >= 0) list.splice(index, 1);
      if (list.length === 0) this.pools.delete(pooled.key);
    }
    if (pooled.session.destroyed) return;
    this.retired.add(pooled);
    pooled.session.close();
  }

  private forget(pooled: PooledSession): void {
    pooled.retired = true;
    this.retired.delete(pooled);
    const list = this.pools.get(pooled.key);
    if (list === undefined) return;
    const index = list.indexOf(pooled);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this.pools.delete(pooled.key);
  }
}

function isIdentityList(value: SpiffeId | readonly SpiffeId[]): value is readonly SpiffeId[] {
  return Array.isArray(value);
}

/** A refused stream (GOAWAY race, the peer's stream limit) is worth one more try on a new session. */
function isRetryable(error: HboneConnectError): boolean {
  return error.reason === 'reset' && error.http2Code === h2.NGHTTP2_REFUSED_STREAM;
}

/** Waits for `promise` until the deadline or the signal, then calls `cancel` and rejects. */
async function withDeadline<T>(
  promise: Promise<T>,
  deadline: number,
  signal: AbortSignal | undefined,
  target: HboneConnectTarget,
  cancel: () => void,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_resolve, reject) => {
    const fail = (error: HboneConnectError) => {
      cancel();
      reject(error);
    };
    timer = setTimeout(
      () => {
        fail(
          new HboneConnectError(
            'timeout',
            target,
            `No answer from the proxy at ${target.peer} for the CONNECT to ${target.destination} in time`,
          ),
        );
      },
      Math.max(0, deadline - Date.now()),
    );
    if (signal !== undefined) {
      onAbort = () => {
        fail(
          new HboneConnectError('closed', target, 'The CONNECT was abandoned', {
            cause: signal.reason,
          }),
        );
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([promise, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
}

/** Why a session failed to come up, from the error Node reports. */
function sessionError(error: Error, target: HboneConnectTarget): HboneConnectError {
  if (error instanceof PeerIdentityError) {
    return new HboneConnectError(
      'peer-identity',
      target,
      `The proxy at ${target.peer} did not prove the identity expected of ${target.destination}: ${error.message}`,
      { cause: error },
    );
  }
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (
    ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EADDRNOTAVAIL'].includes(code)
  ) {
    return new HboneConnectError(
      'unreachable',
      target,
      `Cannot reach the proxy at ${target.peer}: ${code}`,
      { cause: error },
    );
  }
  if (code === 'ECONNRESET' && /TLS/.test(error.message)) {
    return new HboneConnectError(
      'tls',
      target,
      `The proxy at ${target.peer} closed the connection during the TLS handshake: it has no certificate for this destination, or refused ours`,
      { cause: error },
    );
  }
  if (
    code.startsWith('ERR_SSL_') ||
    code.startsWith('ERR_TLS_') ||
    /certificate|alert/i.test(error.message)
  ) {
    return new HboneConnectError(
      'tls',
      target,
      `The TLS handshake with the proxy at ${target.peer} failed: ${error.message}`,
      { cause: error },
    );
  }
  return new HboneConnectError(
    'reset',
    target,
    `The tunnel to ${target.peer} failed: ${error.message}`,
    { cause: error },
  );
}

/**
 * The error for a session the peer dropped before answering anything: in TLS
 * 1.3 the server checks our certificate after our side of the handshake is
 * done, so its refusal shows as a closed connection (Node sends no alert) or,
 * from a strata server, GOAWAY(INADEQUATE_SECURITY). Undefined otherwise.
 */
function refusedCertificate(
  pooled: PooledSession,
  target: HboneConnectTarget,
): HboneConnectError | undefined {
  const presented = `our certificate for ${pooled.sourceId}`;
  if (pooled.goawayCode === h2.NGHTTP2_INADEQUATE_SECURITY) {
    return new HboneConnectError(
      'tls',
      target,
      `The proxy at ${target.peer} refused ${presented} (GOAWAY INADEQUATE_SECURITY)`,
      { http2Code: pooled.goawayCode },
    );
  }
  if (!pooled.answered && (pooled.session.closed || pooled.session.destroyed)) {
    return new HboneConnectError(
      'tls',
      target,
      `The proxy at ${target.peer} closed the connection right after the TLS handshake, before answering the CONNECT to ${target.destination}: it did not accept ${presented} (expired, untrusted, or of another trust domain)`,
    );
  }
  return undefined;
}

/** Why a CONNECT stream failed before its answer. */
function streamError(
  error: Error,
  stream: ClientHttp2Stream,
  target: HboneConnectTarget,
): HboneConnectError {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (code === 'ERR_HTTP2_STREAM_ERROR' || code === 'ERR_HTTP2_GOAWAY_SESSION') {
    const http2Code =
      code === 'ERR_HTTP2_GOAWAY_SESSION' ? h2.NGHTTP2_REFUSED_STREAM : stream.rstCode;
    return new HboneConnectError(
      'reset',
      target,
      `The proxy at ${target.peer} reset the CONNECT to ${target.destination}: ${error.message}`,
      { cause: error, http2Code },
    );
  }
  return sessionError(error, target);
}
