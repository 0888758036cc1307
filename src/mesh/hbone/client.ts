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
 *
 * This file is the pool and the client's API; session.ts brings one session
 * up, stream.ts opens one CONNECT stream over it.
 */
import type { ClientHttp2Stream, OutgoingHttpHeaders } from 'node:http2';
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import type { WorkloadCertificate } from '../identity/workload.js';
import { formatAuthority, type SocketAddress } from './connect-request.js';
import { HboneConnectError, type HboneConnectTarget } from './errors.js';
import { defaultTunnelSettings, hbonePort, type TunnelSettings } from './settings.js';
import { openSession, type PooledSession } from './session.js';
import { isRetryable, openStream, withDeadline } from './stream.js';

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
  /**
   * Opens the TCP connection under a new session, still connecting. By
   * default it leaves from this host's own address. The node proxy passes
   * one that leaves from the source workload's address (a transparent
   * socket), as ztunnel's in-pod mode does, so NetworkPolicy at the
   * destination judges the tunnel by the pod that opened it; sessions are
   * then pooled per source address too.
   */
  dial?: TunnelDialer;
}

/** See `HboneClientOptions.dial`. */
export type TunnelDialer = (peer: SocketAddress, sourceAddress: string | undefined) => Socket;

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

export class HboneClient {
  private readonly settings: TunnelSettings;
  private readonly maxStreamsPerSession: number;
  private readonly idleTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly dial: TunnelDialer | undefined;
  private trustBundlePem: string;
  /** Sessions by pool key (source identity, expected identities, peer; with `dial`, source address). */
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
    this.dial = options.dial;
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
      const pooled = this.acquire(options.source, expected, peer, target, options.sourceAddress);
      // The reservation acquire made passes to the stream once there is one.
      let handedOver = false;
      try {
        // The session has its own deadline (it may be shared), so giving up waiting cancels nothing.
        await withDeadline(pooled.ready, deadline, options.signal, target, () => undefined);
        return await openStream(
          pooled,
          options,
          target,
          deadline,
          () => {
            handedOver = true;
          },
          () => {
            this.release(pooled);
          },
        );
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
    sourceAddress: string | undefined,
  ): PooledSession {
    const sourceId = formatSpiffeId(offered.identity);
    const certificate = this.newestCertificate(sourceId, offered);
    const expectedText = expected.map(formatSpiffeId).sort().join(' ');
    // A dialled session leaves from the source's address: only that source may share it.
    const from = this.dial === undefined ? '' : (sourceAddress ?? '');
    const key = `${sourceId}\n${expectedText}\n${target.peer}\n${from}`;
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
    const pooled = openSession(
      {
        settings: this.settings,
        trustBundlePem: this.trustBundlePem,
        maxStreamsPerSession: this.maxStreamsPerSession,
        connectTimeoutMs: this.connectTimeoutMs,
        ...(this.dial === undefined
          ? {}
          : { dial: (to: SocketAddress) => this.dial?.(to, sourceAddress) }),
        retire: (session) => {
          this.retire(session);
        },
        forget: (session) => {
          this.forget(session);
        },
      },
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
