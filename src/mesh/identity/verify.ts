/**
 * Peer verification for mutual TLS: a peer's chain checked up to a root of
 * the trust bundle, and the identity it proves read from its leaf, as an
 * X509-SVID verifier does (spiffe/spiffe standards/X509-SVID.md section 5,
 * and ztunnel's src/tls verifiers): signatures and issuer names on every link
 * (Node's X509Certificate, OpenSSL underneath), dates, CA flags on every
 * issuer, a leaf that is not a CA, exactly one URI SAN holding a SPIFFE ID,
 * the trust domain, and, when the caller knows it, the exact identity.
 *
 * The transport may also let Node's TLS verify the chain (`ca`,
 * `rejectUnauthorized`) and use spiffeIdOfCertificate on what it verified.
 */
import { X509Certificate } from 'node:crypto';
import { buildPath, describeCertificate, firstInvalidAt, parsePemCertificates } from './chain.js';
import { PeerIdentityError } from './errors.js';
import { formatSpiffeId, parseSpiffeId, sameSpiffeId, type SpiffeId } from './spiffe.js';

export { PeerIdentityError, type PeerIdentityReason } from './errors.js';

/** More certificates than any mesh chain has: a peer sending more is refused before any is checked. */
const maxPeerChainLength = 10;

/** A certificate as PEM text, DER bytes, or already parsed by node:crypto. */
export type CertificateInput = string | Buffer | Uint8Array | X509Certificate;

function toCertificate(input: CertificateInput): X509Certificate {
  if (input instanceof X509Certificate) return input;
  if (typeof input === 'string') {
    const [first] = parsePemCertificates(input);
    if (first === undefined) throw new Error('no PEM certificate in the text');
    return first;
  }
  return new X509Certificate(input);
}

/**
 * The subject alternative names of a certificate, from Node's rendering:
 * `TYPE:value` joined by ", ", where a value holding a comma, quote or
 * backslash is a JSON string (Node quotes them so the list splits without
 * ambiguity, since 17.3.1).
 */
export function subjectAltNames(cert: X509Certificate): { type: string; value: string }[] {
  const text = cert.subjectAltName;
  if (text === undefined || text === '') return [];
  const names: { type: string; value: string }[] = [];
  let at = 0;
  while (at < text.length) {
    const colon = text.indexOf(':', at);
    if (colon < 0) throw new Error(`unexpected subjectAltName text at ${at}`);
    const type = text.slice(at, colon);
    at = colon + 1;
    let value: string;
    if (text[at] === '"') {
      let end = at + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      value = JSON.parse(text.slice(at, end + 1)) as string;
      at = end + 1;
    } else {
      const comma = text.indexOf(', ', at);
      const end = comma < 0 ? text.length : comma;
      value = text.slice(at, end);
      at = end;
    }
    names.push({ type, value });
    if (at < text.length) {
      if (!text.startsWith(', ', at)) throw new Error(`unexpected subjectAltName text at ${at}`);
      at += 2;
    }
  }
  return names;
}

type SpiffeIdReading =
  { ok: true; id: SpiffeId } | { ok: false; reason: 'no-spiffe-id' | 'malformed'; message: string };

/** The SPIFFE ID of a certificate, or why it has none (X509-SVID.md 2: exactly one URI SAN). */
function readSpiffeId(cert: X509Certificate): SpiffeIdReading {
  let uris: string[];
  try {
    uris = subjectAltNames(cert)
      .filter((name) => name.type === 'URI')
      .map((name) => name.value);
  } catch (error) {
    return {
      ok: false,
      reason: 'malformed',
      message: `its subjectAltName does not parse: ${String(error)}`,
    };
  }
  if (!uris.some((uri) => uri.toLowerCase().startsWith('spiffe:'))) {
    return { ok: false, reason: 'no-spiffe-id', message: 'it carries no spiffe:// URI SAN' };
  }
  if (uris.length > 1) {
    return {
      ok: false,
      reason: 'malformed',
      message: `it carries ${uris.length} URI SANs (${uris.join(', ')}); an X509-SVID has exactly one`,
    };
  }
  const uri = uris[0] as string;
  const id = parseSpiffeId(uri);
  if (id === undefined) {
    return {
      ok: false,
      reason: 'malformed',
      message: `its URI SAN ${JSON.stringify(uri)} is not spiffe://<trust domain>/ns/<namespace>/sa/<service account>`,
    };
  }
  return { ok: true, id };
}

/** The SPIFFE ID a certificate carries as its single URI SAN; undefined when it has none, or not exactly one. */
export function spiffeIdOfCertificate(cert: CertificateInput): SpiffeId | undefined {
  try {
    const reading = readSpiffeId(toCertificate(cert));
    return reading.ok ? reading.id : undefined;
  } catch {
    return undefined;
  }
}

/** Like spiffeIdOfCertificate, but throws PeerIdentityError ('no-spiffe-id' or 'malformed') saying why there is none. */
export function requireSpiffeId(cert: CertificateInput): SpiffeId {
  let parsed: X509Certificate;
  try {
    parsed = toCertificate(cert);
  } catch (error) {
    throw new PeerIdentityError('malformed', "The peer's certificate does not parse", {
      cause: error,
    });
  }
  const reading = readSpiffeId(parsed);
  if (!reading.ok) {
    throw new PeerIdentityError(
      reading.reason,
      `The peer's certificate has no identity: ${reading.message}`,
    );
  }
  return reading.id;
}

function parseChain(chain: readonly (Buffer | string)[]): X509Certificate[] {
  const certs: X509Certificate[] = [];
  for (const [index, entry] of chain.entries()) {
    try {
      if (typeof entry === 'string') certs.push(...parsePemCertificates(entry));
      else certs.push(new X509Certificate(entry));
    } catch (error) {
      throw new PeerIdentityError(
        'malformed',
        `Certificate ${index + 1} of the peer's chain does not parse`,
        {
          cause: error,
        },
      );
    }
  }
  return certs;
}

/**
 * The identity a peer proves with `chainDer` (its certificate first, then
 * intermediates; DER bytes or PEM text), verified up to a root in
 * `trustBundlePem`. Throws PeerIdentityError with the reason otherwise.
 */
export function verifyPeerChain(
  chainDer: Buffer[] | string[],
  trustBundlePem: string,
  options: { trustDomain: string; expected?: SpiffeId; now?: Date },
): SpiffeId {
  const certs = parseChain(chainDer);
  if (certs.length > maxPeerChainLength) {
    throw new PeerIdentityError(
      'malformed',
      `The peer presented ${certs.length} certificates; at most ${maxPeerChainLength} are accepted`,
    );
  }
  const leaf = certs[0];
  if (leaf === undefined) {
    throw new PeerIdentityError('malformed', 'The peer presented no certificate');
  }
  let roots: X509Certificate[];
  try {
    roots = parsePemCertificates(trustBundlePem);
  } catch (error) {
    throw new PeerIdentityError(
      'untrusted',
      'The trust bundle does not parse, so no peer can be trusted',
      { cause: error },
    );
  }
  if (roots.length === 0) {
    throw new PeerIdentityError(
      'untrusted',
      'The trust bundle is empty, so no peer can be trusted',
    );
  }
  // X509-SVID.md 4.1: a leaf SVID must not be a CA; a CA certificate is no workload's identity.
  if (leaf.ca) {
    throw new PeerIdentityError(
      'malformed',
      `The peer's certificate ${describeCertificate(leaf)} is a CA certificate, not a workload's`,
    );
  }

  const built = buildPath(leaf, certs.slice(1), roots);
  if (!built.ok) {
    throw new PeerIdentityError(
      'untrusted',
      `The peer's certificate does not chain to the trust bundle: ${built.problem}`,
    );
  }
  const invalid = firstInvalidAt(built.path, options.now ?? new Date());
  if (invalid !== undefined) {
    const which =
      invalid.index === 0
        ? "The peer's certificate"
        : invalid.index === built.path.length - 1
          ? `The root ${describeCertificate(invalid.cert)}`
          : `The intermediate ${describeCertificate(invalid.cert)}`;
    const when = invalid.state === 'expired' ? 'expired on' : 'is not valid before';
    throw new PeerIdentityError(invalid.state, `${which} ${when} ${invalid.date.toISOString()}`);
  }

  const reading = readSpiffeId(leaf);
  if (!reading.ok) {
    throw new PeerIdentityError(
      reading.reason,
      `The peer's certificate proves no identity: ${reading.message}`,
    );
  }
  const id = reading.id;
  if (id.trustDomain !== options.trustDomain) {
    throw new PeerIdentityError(
      'wrong-trust-domain',
      `The peer proved ${formatSpiffeId(id)}, outside trust domain "${options.trustDomain}"`,
    );
  }
  if (options.expected !== undefined && !sameSpiffeId(id, options.expected)) {
    throw new PeerIdentityError(
      'wrong-identity',
      `The peer proved ${formatSpiffeId(id)}, expected ${formatSpiffeId(options.expected)}`,
    );
  }
  return id;
}
