/**
 * A node's workload certificates, as ztunnel's SecretManager keeps them
 * (ztunnel src/identity/manager.rs): one certificate per identity the node's
 * pods run as, obtained on first use (a fresh ECDSA P-256 key, a CSR, the
 * controller's CA service), shared by concurrent callers, and replaced at
 * half its life with a new key while the old one stays in use until the new
 * one has arrived. A refusal (403) is final and typed; any other failure is
 * retried with exponential backoff, as ztunnel retries its CA client.
 */
import { createPublicKey, KeyObject, X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { PeerIdentityError, verifyPeerChain } from '../identity/verify.js';
import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import {
  generateWorkloadKey,
  rotationAt,
  type WorkloadCertificate,
  type WorkloadKey,
} from '../identity/workload.js';
import { CaClient, type CertificateAnswer } from './ca-client.js';
import { CertificateClientError, CertificateRefusedError } from './errors.js';

export interface CertificateManagerOptions {
  /** The controller's CA service socket (`<state dir>/ca.sock`). */
  caSocket: string;
  /** This node's token (`<state dir>/nodes/<node>/ca-token`). */
  tokenFile: string;
  /** The trust domain of the node's workloads; certificates from the CA must be in it. */
  trustDomain: string;
  log: (line: string) => void;
  /** The clock validity is judged by; tests move it. */
  now?: () => Date;
  /** The lifetime asked of the CA; the CA's default (24 h) when unset. */
  ttlSeconds?: number;
  /** The first retry's delay after a failed request (500 ms), doubling up to maxRetryDelayMs (30 s). */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /** A number in [0, 1) for jitter; Math.random unless a test fixes it. */
  random?: () => number;
  /** How long one request to the CA may take; 10 s by default. */
  requestTimeoutMs?: number;
}

/** The events a manager emits. */
export interface CertificateManagerEvents {
  /** A certificate was replaced (at half life); the previous one stays valid until its notAfter. */
  rotated: [identity: SpiffeId, certificate: WorkloadCertificate];
  /** The CA refused to renew a certificate: the node no longer runs a pod with the identity. */
  refused: [identity: SpiffeId, error: CertificateRefusedError];
}

/** Rotation comes up to this share of a certificate's life before its half life, spreading renewals. */
export const rotationJitterRatio = 0.05;
/** Never renew sooner than this after a certificate arrived, however short its life. */
const minRotationDelayMs = 1000;
/** setTimeout's longest delay (2^31 - 1 ms, about 24.8 days); longer waits are chained. */
const maxTimerMs = 2 ** 31 - 1;

interface Entry {
  readonly identity: SpiffeId;
  readonly id: string;
  /** The certificate in use. */
  current: WorkloadCertificate | undefined;
  /** The request under way (the first, or a rotation); callers share it. */
  pending: Promise<WorkloadCertificate> | undefined;
  /** The rotation timer. */
  timer: NodeJS.Timeout | undefined;
  /** Aborted by release() and close(): stops retries. */
  readonly abort: AbortController;
}

function messageChain(error: unknown): string {
  const parts: string[] = [];
  let at: unknown = error;
  while (at instanceof Error && parts.length < 5) {
    parts.push(at.message);
    at = at.cause;
  }
  return parts.length > 0 ? parts.join(': ') : String(error);
}

/** The DER SubjectPublicKeyInfo of a public key, or of a private key's public half (PEM). */
function spkiOf(key: KeyObject | string): Buffer {
  const publicKey = key instanceof KeyObject && key.type === 'public' ? key : createPublicKey(key);
  return publicKey.export({ type: 'spki', format: 'der' });
}

export class CertificateManager extends EventEmitter<CertificateManagerEvents> {
  readonly trustDomain: string;
  readonly #client: CaClient;
  readonly #log: (line: string) => void;
  readonly #now: () => Date;
  readonly #random: () => number;
  readonly #ttlSeconds: number | undefined;
  readonly #retryDelayMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #entries = new Map<string, Entry>();
  #trustBundle: string | undefined;
  #trustBundlePending: Promise<string> | undefined;
  #closed = false;

  constructor(options: CertificateManagerOptions) {
    super();
    this.trustDomain = options.trustDomain;
    this.#client = new CaClient({
      socketPath: options.caSocket,
      tokenFile: options.tokenFile,
      ...(options.requestTimeoutMs === undefined ? {} : { timeoutMs: options.requestTimeoutMs }),
    });
    this.#log = options.log;
    this.#now = options.now ?? (() => new Date());
    this.#random = options.random ?? Math.random;
    this.#ttlSeconds = options.ttlSeconds;
    this.#retryDelayMs = options.retryDelayMs ?? 500;
    this.#maxRetryDelayMs = options.maxRetryDelayMs ?? 30_000;
  }

  /**
   * The certificate for `identity`: the one held while it is valid, else the
   * request under way, else a new request. Rejects with
   * CertificateRefusedError when the CA refuses this node the identity.
   */
  certificateFor(identity: SpiffeId): Promise<WorkloadCertificate> {
    if (this.#closed) return Promise.reject(this.#cancelled(formatSpiffeId(identity), 'closed'));
    const id = formatSpiffeId(identity);
    let entry = this.#entries.get(id);
    if (entry === undefined) {
      entry = {
        identity: { ...identity },
        id,
        current: undefined,
        pending: undefined,
        timer: undefined,
        abort: new AbortController(),
      };
      this.#entries.set(id, entry);
    }
    const current = entry.current;
    if (current !== undefined && this.#now().getTime() < current.notAfter.getTime()) {
      return Promise.resolve(current);
    }
    return entry.pending ?? this.#refresh(entry);
  }

  /** The identities with a certificate held or on its way. */
  identities(): SpiffeId[] {
    return [...this.#entries.values()].map((entry) => ({ ...entry.identity }));
  }

  /**
   * The node no longer runs a pod with `identity`: its certificate is
   * forgotten and no longer rotated; a retry in progress stops (its callers
   * get a CertificateClientError), a request in flight still answers them.
   */
  release(identity: SpiffeId): void {
    const id = formatSpiffeId(identity);
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    this.#entries.delete(id);
    clearTimeout(entry.timer);
    entry.abort.abort();
  }

  /** The CA's roots: from the latest certificate answer, or asked of the CA. */
  trustBundle(): Promise<string> {
    if (this.#trustBundle !== undefined) return Promise.resolve(this.#trustBundle);
    this.#trustBundlePending ??= this.#client.trustBundle().then(
      (bundle) => {
        this.#trustBundlePending = undefined;
        this.#trustBundle ??= bundle;
        return this.#trustBundle;
      },
      (error: unknown) => {
        this.#trustBundlePending = undefined;
        throw error;
      },
    );
    return this.#trustBundlePending;
  }

  /** Stops every rotation and retry, and cuts requests in flight short. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const entry of this.#entries.values()) {
      clearTimeout(entry.timer);
      entry.abort.abort();
    }
    this.#entries.clear();
    this.#client.close();
  }

  #cancelled(id: string, why: 'released' | 'closed'): CertificateClientError {
    return new CertificateClientError(
      'STRATA_ERR_CERTIFICATE_CANCELLED',
      why === 'closed'
        ? `Cannot obtain ${id}: the certificate manager is closed`
        : `Stopped obtaining ${id}: it was released (no pod on this node runs as it)`,
    );
  }

  #held(entry: Entry): boolean {
    return !this.#closed && this.#entries.get(entry.id) === entry;
  }

  /** Starts a request for `entry` that callers share; its result replaces the current certificate. */
  #refresh(entry: Entry): Promise<WorkloadCertificate> {
    const previous = entry.current;
    const promise = this.#obtain(entry).then(
      (certificate) => {
        entry.pending = undefined;
        if (!this.#held(entry)) return certificate;
        entry.current = certificate;
        const rotation = this.#schedule(entry, certificate);
        const verb = previous === undefined ? 'obtained' : 'rotated';
        this.#log(
          `certificates: ${verb} ${entry.id} (notAfter ${certificate.notAfter.toISOString()}, next rotation ${rotation.toISOString()})`,
        );
        if (previous !== undefined) this.#emit('rotated', entry.identity, certificate);
        return certificate;
      },
      (error: unknown) => {
        entry.pending = undefined;
        if (!this.#held(entry)) throw error;
        // Without a valid certificate nothing is kept: the next call asks afresh.
        const current = entry.current;
        if (current === undefined || this.#now().getTime() >= current.notAfter.getTime()) {
          this.#entries.delete(entry.id);
        }
        if (previous !== undefined) {
          if (error instanceof CertificateRefusedError) {
            this.#log(`certificates: the CA refused to renew ${entry.id}: ${error.message}`);
            this.#emit('refused', entry.identity, error);
          } else {
            this.#log(`certificates: cannot renew ${entry.id}: ${messageChain(error)}`);
          }
        }
        throw error;
      },
    );
    entry.pending = promise;
    // A rotation has no caller waiting: its failure is logged, not unhandled.
    promise.catch(() => undefined);
    return promise;
  }

  #emit<E extends keyof CertificateManagerEvents>(
    event: E,
    ...args: CertificateManagerEvents[E]
  ): void {
    try {
      (this.emit as (event: E, ...args: CertificateManagerEvents[E]) => boolean)(event, ...args);
    } catch (error) {
      this.#log(`certificates: a "${event}" listener failed: ${messageChain(error)}`);
    }
  }

  /**
   * One certificate, retried with backoff until it arrives, the CA refuses,
   * or the entry goes. Only the CA's failures (CertificateClientError) are
   * retried: anything else is a fault here that a retry would only repeat.
   */
  async #obtain(entry: Entry): Promise<WorkloadCertificate> {
    const signal = entry.abort.signal;
    for (let attempt = 1; ; attempt++) {
      if (signal.aborted) throw this.#cancelled(entry.id, this.#closed ? 'closed' : 'released');
      try {
        return await this.#requestOnce(entry.identity);
      } catch (error) {
        if (!(error instanceof CertificateClientError)) throw error;
        if (signal.aborted) throw this.#cancelled(entry.id, this.#closed ? 'closed' : 'released');
        const delay = this.#retryDelay(attempt);
        this.#log(
          `certificates: cannot obtain ${entry.id} (attempt ${attempt}): ${messageChain(error)}; retrying in ${delay} ms`,
        );
        try {
          await sleep(delay, undefined, { signal });
        } catch {
          throw this.#cancelled(entry.id, this.#closed ? 'closed' : 'released');
        }
      }
    }
  }

  #retryDelay(attempt: number): number {
    const base = Math.min(this.#maxRetryDelayMs, this.#retryDelayMs * 2 ** (attempt - 1));
    return Math.round(base * (0.8 + 0.2 * this.#random()));
  }

  async #requestOnce(identity: SpiffeId): Promise<WorkloadCertificate> {
    const key = await generateWorkloadKey();
    const csr = await key.createCsr(identity);
    const answer = await this.#client.requestCertificate(csr, identity, this.#ttlSeconds);
    this.#check(answer, key, identity);
    this.#trustBundle = answer.rootCert;
    return {
      certChainPem: answer.certChain,
      rootPem: answer.rootCert,
      notBefore: answer.notBefore,
      notAfter: answer.notAfter,
      identity: { ...identity },
      privateKeyPem: key.privateKeyPem,
    };
  }

  /** The answer must prove `identity` up to its own roots, over the key this node made. */
  #check(answer: CertificateAnswer, key: WorkloadKey, identity: SpiffeId): void {
    const id = formatSpiffeId(identity);
    try {
      verifyPeerChain(answer.certChain, answer.rootCert, {
        trustDomain: this.trustDomain,
        expected: identity,
        now: this.#now(),
      });
    } catch (error) {
      if (!(error instanceof PeerIdentityError)) throw error;
      throw new CertificateClientError(
        'STRATA_ERR_CA_REQUEST',
        `The CA's certificate for ${id} does not verify: ${error.message}`,
        { cause: error },
      );
    }
    const leaf = new X509Certificate(answer.certChain[0] ?? '');
    if (!spkiOf(leaf.publicKey).equals(spkiOf(key.privateKeyPem))) {
      throw new CertificateClientError(
        'STRATA_ERR_CA_REQUEST',
        `The CA's certificate for ${id} is not over the key this node sent it`,
      );
    }
  }

  /**
   * Arms the rotation timer at half the certificate's life (rotationAt),
   * less a jitter of up to 5 % of its life; returns when it fires. The CA
   * backdates notBefore for clock skew (60 s, ca-files.ts), so the life is
   * counted from when the certificate arrived when that is later: otherwise a
   * short-lived certificate would be due for rotation the moment it came.
   */
  #schedule(entry: Entry, certificate: WorkloadCertificate): Date {
    clearTimeout(entry.timer);
    const now = this.#now().getTime();
    const from = Math.max(certificate.notBefore.getTime(), now);
    const notAfter = certificate.notAfter.getTime();
    const due = rotationAt({ notBefore: new Date(from), notAfter: certificate.notAfter }).getTime();
    const jitter = this.#random() * rotationJitterRatio * Math.max(0, notAfter - from);
    const delay = Math.max(minRotationDelayMs, Math.round(due - jitter - now));
    this.#arm(entry, delay);
    return new Date(now + delay);
  }

  #arm(entry: Entry, delay: number): void {
    const step = Math.min(delay, maxTimerMs);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (step < delay) this.#arm(entry, delay - step);
      else this.#rotate(entry);
    }, step);
    // Rotation alone does not keep a process alive.
    entry.timer.unref();
  }

  #rotate(entry: Entry): void {
    if (!this.#held(entry) || entry.pending !== undefined) return;
    void this.#refresh(entry);
  }
}
