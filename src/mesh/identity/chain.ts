/**
 * Certificate paths with Node's own X.509 (OpenSSL underneath): PEM bundles
 * split into certificates, validity dates, and the path from a certificate
 * through untrusted intermediates up to a trusted root, as RFC 5280 6.1 and
 * Go's crypto/x509 Verify (which istiod uses) build it: each link's issuer
 * name matches and its signature verifies with the issuer's key, and every
 * issuer is a CA. The CA checks its plug-in files with it; the transport's
 * peer verification checks every handshake with it.
 */
import { X509Certificate } from 'node:crypto';

/** Certificates deeper than this are not chased: no mesh chain is that long. */
const maxPathLength = 8;

const pemCertificatePattern = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The PEM certificate blocks in `text`, in order (other blocks and text around them are ignored). */
function pemCertificateBlocks(text: string): string[] {
  return (text.match(pemCertificatePattern) ?? []).map((block) => `${block}\n`);
}

/** Every certificate of a PEM bundle; throws a plain Error naming the block that does not parse. */
export function parsePemCertificates(text: string): X509Certificate[] {
  return pemCertificateBlocks(text).map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new Error(`certificate ${index + 1} does not parse`, { cause: error });
    }
  });
}

/** The dates between which a certificate is valid. */
export function validityOf(cert: X509Certificate): { notBefore: Date; notAfter: Date } {
  // Node 20 has only the text forms ("Nov 21 17:56:40 2026 GMT"), which Date parses.
  return { notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

/** A short name for a certificate in messages: its subject, else its SAN, else its serial. */
export function describeCertificate(cert: X509Certificate): string {
  // Node gives undefined, not '', for an empty subject (a workload certificate's).
  const subject = (cert.subject as string | undefined)?.replaceAll('\n', ', ') ?? '';
  if (subject !== '') return `"${subject}"`;
  if (cert.subjectAltName !== undefined) return `"${cert.subjectAltName}"`;
  return `serial ${cert.serialNumber}`;
}

/** Whether `issuer` issued `cert`: names chain and the signature verifies with the issuer's key. */
export function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  if (!cert.checkIssued(issuer)) return false;
  try {
    return cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * How `candidate` stands to `cert`: its issuer, unrelated, or the signer of
 * `cert` without the right to be (not a CA, or a key usage without
 * keyCertSign, which OpenSSL's X509_check_issued refuses).
 */
function issuerVerdict(
  cert: X509Certificate,
  candidate: X509Certificate,
): 'issuer' | 'unrelated' | 'not-ca' | 'may-not-sign' {
  if ((candidate.subject as string | undefined) !== cert.issuer) return 'unrelated';
  let verified: boolean;
  try {
    verified = cert.verify(candidate.publicKey);
  } catch {
    verified = false;
  }
  if (!verified) return 'unrelated';
  if (!candidate.ca) return 'not-ca';
  return cert.checkIssued(candidate) ? 'issuer' : 'may-not-sign';
}

export type PathResult = { ok: true; path: X509Certificate[] } | { ok: false; problem: string };

/**
 * The path from `cert` through some of `intermediates` to one of `roots`:
 * `[cert, ...intermediates used, root]`. When `cert` is itself one of the
 * roots the path is just `[cert]`. Dates are not checked here.
 */
export function buildPath(
  cert: X509Certificate,
  intermediates: readonly X509Certificate[],
  roots: readonly X509Certificate[],
): PathResult {
  const refusedSigners = new Set<string>();
  // A certificate from which no root could be reached is not tried again by
  // another route, so a peer's pile of look-alike certificates costs at most
  // one signature check per pair, not one per path.
  const deadEnds = new Set<string>();
  const isRoot = (c: X509Certificate): boolean =>
    roots.some((root) => root.fingerprint256 === c.fingerprint256);

  const extend = (path: X509Certificate[]): X509Certificate[] | undefined => {
    const last = path[path.length - 1] as X509Certificate;
    if (isRoot(last)) return path;
    const usable = (candidate: X509Certificate): boolean => {
      const verdict = issuerVerdict(last, candidate);
      if (verdict === 'not-ca' || verdict === 'may-not-sign') {
        const why = verdict === 'not-ca' ? 'is not a CA' : 'may not sign certificates (key usage)';
        refusedSigners.add(
          `${describeCertificate(candidate)} signed ${describeCertificate(last)} but ${why}`,
        );
      }
      return verdict === 'issuer';
    };
    const root = roots.find(usable);
    if (root !== undefined) return [...path, root];
    if (path.length >= maxPathLength) return undefined;
    for (const candidate of intermediates) {
      const fingerprint = candidate.fingerprint256;
      if (deadEnds.has(fingerprint) || path.some((c) => c.fingerprint256 === fingerprint)) continue;
      if (!usable(candidate)) continue;
      const found = extend([...path, candidate]);
      if (found !== undefined) return found;
      deadEnds.add(fingerprint);
    }
    return undefined;
  };

  const path = extend([cert]);
  if (path !== undefined) return { ok: true, path };
  if (refusedSigners.size > 0) return { ok: false, problem: [...refusedSigners].join('; ') };
  return {
    ok: false,
    problem: `no trusted root issued ${describeCertificate(cert)}, directly or through the ${intermediates.length} other certificate(s) given`,
  };
}

/** The first certificate on the path that is not valid at `now`, and how. */
export function firstInvalidAt(
  path: readonly X509Certificate[],
  now: Date,
):
  | { cert: X509Certificate; index: number; state: 'expired' | 'not-yet-valid'; date: Date }
  | undefined {
  for (const [index, cert] of path.entries()) {
    const { notBefore, notAfter } = validityOf(cert);
    if (now.getTime() > notAfter.getTime()) {
      return { cert, index, state: 'expired', date: notAfter };
    }
    if (now.getTime() < notBefore.getTime()) {
      return { cert, index, state: 'not-yet-valid', date: notBefore };
    }
  }
  return undefined;
}
