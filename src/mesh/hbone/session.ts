/**
 * One pooled HBONE session: an mTLS HTTP/2 connection from this node's proxy
 * to a peer proxy, made with one source certificate and expecting one set of
 * identities. The pool that shares sessions between streams is HboneClient
 * (client.ts); this file brings one session up and reports why it failed.
 */
import {
  connect as connectHttp2,
  constants as h2,
  type ClientHttp2Session,
  type Settings,
} from 'node:http2';
import type { Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { PeerIdentityError } from '../identity/errors.js';
import type { SpiffeId } from '../identity/spiffe.js';
import type { WorkloadCertificate } from '../identity/workload.js';
import type { SocketAddress } from './connect-request.js';
import { HboneConnectError, type HboneConnectTarget } from './errors.js';
import { http2Settings, type TunnelSettings } from './settings.js';
import { clientTlsOptions, hboneAlpn } from './tls.js';

/** A session of the pool: its key, its certificate, and how many streams it carries. */
export interface PooledSession {
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

/** What a new session needs from the pool that opens it. */
export interface SessionContext {
  readonly settings: TunnelSettings;
  /** PEM roots the peer's chain must lead to. */
  readonly trustBundlePem: string;
  readonly maxStreamsPerSession: number;
  readonly connectTimeoutMs: number;
  /** Opens the TCP connection (still connecting) when the pool was given a dialer. */
  readonly dial?: (peer: SocketAddress) => Socket | undefined;
  /** The peer sent GOAWAY: the session takes no new streams. */
  retire(pooled: PooledSession): void;
  /** The session closed: it leaves the pool. */
  forget(pooled: PooledSession): void;
}

/** Opens a session to `peer`; its `ready` settles once it is up (ALPN checked) or failed. */
export function openSession(
  context: SessionContext,
  key: string,
  sourceId: string,
  expectedText: string,
  certificate: WorkloadCertificate,
  expected: readonly SpiffeId[],
  peer: SocketAddress,
  target: HboneConnectTarget,
): PooledSession {
  const tlsOptions = clientTlsOptions(certificate, context.trustBundlePem, expected);
  const session = connectHttp2(`https://${target.peer}`, {
    settings: http2Settings(context.settings),
    maxSessionMemory: context.settings.maxSessionMemoryMiB,
    createConnection: () => {
      const tcp = context.dial?.(peer);
      tcp?.setNoDelay(true);
      // An IP address as host: Node sends no SNI, as HBONE wants.
      const socket = connectTls({
        ...tlsOptions,
        host: peer.address,
        port: peer.port,
        ...(tcp === undefined ? {} : { socket: tcp }),
      });
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
    capacity: context.maxStreamsPerSession,
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
          `The tunnel to the proxy at ${target.peer} was not up within ${context.connectTimeoutMs} ms`,
        ),
      );
      session.destroy();
    }, context.connectTimeoutMs);
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
      session.setLocalWindowSize(context.settings.sessionWindowBytes);
      resolve();
    });
  });
  // Readiness is awaited by the connect that opened it; others find out through it too.
  pooled.ready.catch(() => undefined);

  session.on('error', () => undefined);
  session.on('remoteSettings', (settings: Settings) => {
    const peerLimit = settings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER;
    pooled.capacity = Math.min(context.maxStreamsPerSession, peerLimit);
  });
  // The peer is going away (draining, restarting): no new streams here.
  session.on('goaway', (errorCode: number) => {
    pooled.goawayCode = errorCode;
    context.retire(pooled);
  });
  session.once('close', () => {
    clearTimeout(pooled.idleTimer);
    context.forget(pooled);
  });
  return pooled;
}

/** Why a session failed to come up, from the error Node reports. */
export function sessionError(error: Error, target: HboneConnectTarget): HboneConnectError {
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
