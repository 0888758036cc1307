/**
 * Mutual TLS for HBONE: the TLS options of either end for one workload
 * identity, and the SPIFFE checks on top of the chain verification Node does.
 *
 * Both ends present a workload certificate and verify the other's chain
 * against the trust bundle (TLS 1.3 only, ALPN `h2`, as ztunnel). Host names
 * mean nothing here: the client checks that the server proved exactly the
 * identity it expects of the destination, and the server reads the client's
 * identity from its verified certificate and refuses a foreign trust domain.
 */
import type { PeerCertificate, SecureContextOptions, TLSSocket } from 'node:tls';
import { PeerIdentityError } from '../identity/errors.js';
import { formatSpiffeId, sameSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import { requireSpiffeId } from '../identity/verify.js';
import type { WorkloadCertificate } from '../identity/workload.js';

/** ALPN: the tunnel is HTTP/2 and nothing else. */
export const hboneAlpn = 'h2';

// AES-128-GCM first: the cheapest suite with AES-NI, and every TLS 1.3 stack has it.
const tls13Suites = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

function commonOptions(certificate: WorkloadCertificate, trustBundlePem: string) {
  return {
    key: certificate.privateKeyPem,
    // The leaf first, then any intermediates, so the peer can build the path to its root.
    cert: certificate.certChainPem.join('\n'),
    ca: trustBundlePem,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: tls13Suites,
    ALPNProtocols: [hboneAlpn],
  } satisfies SecureContextOptions & { ALPNProtocols: string[] };
}

/** Options for `tls.connect` as `source`, accepting only a server that proves one of `expected`. */
export function clientTlsOptions(
  source: WorkloadCertificate,
  trustBundlePem: string,
  expected: readonly SpiffeId[],
) {
  return {
    ...commonOptions(source, trustBundlePem),
    rejectUnauthorized: true,
    // Node calls this only after the chain verified against `ca`; an error it
    // returns fails the handshake (tls.connect's checkServerIdentity).
    checkServerIdentity: (_host: string, peer: PeerCertificate): Error | undefined =>
      checkServerIdentity(peer, expected),
  };
}

/** Options for an HTTP/2 secure server presenting `local`, asking every client for a certificate. */
export function serverTlsOptions(local: WorkloadCertificate, trustBundlePem: string) {
  return {
    ...commonOptions(local, trustBundlePem),
    requestCert: true,
    rejectUnauthorized: true,
  };
}

/** Undefined when the server's certificate carries one of the `expected` identities, else the error. */
export function checkServerIdentity(
  peer: PeerCertificate,
  expected: readonly SpiffeId[],
): PeerIdentityError | undefined {
  let presented: SpiffeId;
  try {
    presented = requireSpiffeId(peer.raw);
  } catch (error) {
    if (error instanceof PeerIdentityError) return error;
    throw error;
  }
  if (expected.some((id) => sameSpiffeId(id, presented))) return undefined;
  const wanted = expected.map(formatSpiffeId).join(' or ');
  return new PeerIdentityError(
    'wrong-identity',
    `The server proved ${formatSpiffeId(presented)}, expected ${wanted}`,
  );
}

/** A client's verified certificate, as the server keeps it for the session. */
export interface PeerCertificateSummary {
  /** Upper-case hex, as Node prints it. */
  serialNumber: string;
  notAfter: Date;
}

/**
 * The identity a client proved on `socket`, after Node verified its chain;
 * throws PeerIdentityError when it did not, or is of another trust domain.
 */
export function clientIdentity(
  socket: TLSSocket,
  trustDomain: string,
): { identity: SpiffeId; certificate: PeerCertificateSummary } {
  if (!socket.authorized) {
    const why = socket.authorizationError;
    throw new PeerIdentityError(
      'untrusted',
      `The client certificate did not verify: ${typeof why === 'string' ? why : String(why)}`,
    );
  }
  const peer = socket.getPeerCertificate();
  if (Object.keys(peer).length === 0) {
    throw new PeerIdentityError('no-spiffe-id', 'The client presented no certificate');
  }
  const identity = requireSpiffeId(peer.raw);
  if (identity.trustDomain !== trustDomain) {
    throw new PeerIdentityError(
      'wrong-trust-domain',
      `The client proved ${formatSpiffeId(identity)}, outside trust domain "${trustDomain}"`,
    );
  }
  return {
    identity,
    certificate: { serialNumber: peer.serialNumber, notAfter: new Date(peer.valid_to) },
  };
}
