/**
 * The mesh's certificate authority, as istiod's CA issues workload
 * certificates (security/pkg/pki/ca/ca.go Sign, and the template of
 * security/pkg/pki/util/generate_cert.go): the caller proves possession of a
 * key with a PKCS#10 request, and gets an X.509-SVID (spiffe/spiffe
 * standards/X509-SVID.md) whose only name is the SPIFFE ID the CA decided on,
 * whatever names the request asked for: istiod ignores them too once it has
 * authenticated the caller itself. Who may ask for which identity is decided
 * before sign() (authorize.ts), as istiod's node authorizer does for ztunnel.
 *
 * Where the CA's key and certificates come from is ca-files.ts. The key is
 * held as a non-extractable WebCrypto key in a private field: nothing reads
 * it back out.
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import { openCaDirectory, clockSkewSeconds, type CaSigner } from './ca-files.js';
import { validityOf } from './chain.js';
import { IdentityError } from './errors.js';
import { formatSpiffeId, spiffeIdProblem, trustDomainProblem, type SpiffeId } from './spiffe.js';
import { x509 } from './x509.js';

export interface CaOptions {
  /** The CA's directory: a plug-in CA's four files, or where the self-signed root is kept. */
  dir: string;
  /** The trust domain of every identity this CA signs; `cluster.local` by default, as Istio. */
  trustDomain?: string;
  /** Lifetime of a workload certificate when the request names none: 86400 (24 h), Istio's DEFAULT_WORKLOAD_CERT_TTL. */
  workloadTtlSeconds?: number;
  /** The longest lifetime a request may ask for: 90 days, Istio's MAX_WORKLOAD_CERT_TTL. */
  maxWorkloadTtlSeconds?: number;
  /** The clock; tests move it. */
  now?: () => Date;
}

/** A signed workload certificate and what a peer needs to verify it. */
export interface IssuedCertificate {
  /** PEM certificates: the workload's first, then the intermediates above it; never the root. */
  certChainPem: string[];
  /** PEM of the root(s) the chain leads to: the CA's trust bundle. */
  rootPem: string;
  notBefore: Date;
  notAfter: Date;
  identity: SpiffeId;
}

export const defaultTrustDomain = 'cluster.local';
export const defaultWorkloadTtlSeconds = 24 * 3600;
export const defaultMaxWorkloadTtlSeconds = 90 * 24 * 3600;

function optionError(message: string): IdentityError {
  return new IdentityError('STRATA_ERR_CA_OPTION', message);
}

function refused(message: string, cause?: unknown): IdentityError {
  return new IdentityError(
    'STRATA_ERR_CSR_REFUSED',
    message,
    cause === undefined ? undefined : { cause },
  );
}

function checkSeconds(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw optionError(
      `Cannot open the CA: ${name} must be a whole number of seconds above 0: got ${value}`,
    );
  }
}

/** How a public key is described in a refusal: "RSA 2048", "ECDSA secp384r1", "ed25519". */
function describePublicKey(spki: Buffer): string {
  let key;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    return 'a key Node cannot read';
  }
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') {
    return `ECDSA ${details?.namedCurve ?? 'on an unnamed curve'}`;
  }
  if (key.asymmetricKeyType === 'rsa') return `RSA ${details?.modulusLength ?? '?'}`;
  return key.asymmetricKeyType ?? 'an unknown key type';
}

/** The extensions every workload certificate of one CA shares (istiod's template). */
function sharedLeafExtensions(issuerKeyId: string): x509.Extension[] {
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
      true,
    ),
    new x509.ExtendedKeyUsageExtension([
      x509.ExtendedKeyUsage.serverAuth,
      x509.ExtendedKeyUsage.clientAuth,
    ]),
    new x509.AuthorityKeyIdentifierExtension(issuerKeyId),
  ];
}

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly workloadTtlSeconds: number;
  readonly maxWorkloadTtlSeconds: number;
  /** Whether the operator plugged in this CA or strata made its root. */
  readonly source: 'plug-in' | 'self-signed';
  readonly #signer: CaSigner;
  readonly #issuerName: x509.Name;
  readonly #leafExtensions: readonly x509.Extension[];
  readonly #issuerNotAfter: Date;
  readonly #chainPem: readonly string[];
  readonly #trustBundlePem: string;
  readonly #now: () => Date;

  private constructor(
    settings: {
      trustDomain: string;
      workloadTtlSeconds: number;
      maxWorkloadTtlSeconds: number;
      now: () => Date;
    },
    material: {
      source: 'plug-in' | 'self-signed';
      signer: CaSigner;
      issuerName: x509.Name;
      issuerKeyId: string;
      issuerNotAfter: Date;
      chainPem: readonly string[];
      trustBundlePem: string;
    },
  ) {
    this.trustDomain = settings.trustDomain;
    this.workloadTtlSeconds = settings.workloadTtlSeconds;
    this.maxWorkloadTtlSeconds = settings.maxWorkloadTtlSeconds;
    this.#now = settings.now;
    this.source = material.source;
    this.#signer = material.signer;
    this.#issuerName = material.issuerName;
    this.#leafExtensions = sharedLeafExtensions(material.issuerKeyId);
    this.#issuerNotAfter = material.issuerNotAfter;
    this.#chainPem = material.chainPem;
    this.#trustBundlePem = material.trustBundlePem;
  }

  /** The CA kept in `options.dir`: the plug-in CA there, the self-signed root made earlier, or a new root. */
  static async open(options: CaOptions): Promise<CertificateAuthority> {
    const trustDomain = options.trustDomain ?? defaultTrustDomain;
    const problem = trustDomainProblem(trustDomain);
    if (problem !== undefined) throw optionError(`Cannot open the CA: ${problem}`);
    const workloadTtlSeconds = options.workloadTtlSeconds ?? defaultWorkloadTtlSeconds;
    const maxWorkloadTtlSeconds = options.maxWorkloadTtlSeconds ?? defaultMaxWorkloadTtlSeconds;
    checkSeconds('workloadTtlSeconds', workloadTtlSeconds);
    checkSeconds('maxWorkloadTtlSeconds', maxWorkloadTtlSeconds);
    if (workloadTtlSeconds > maxWorkloadTtlSeconds) {
      throw optionError(
        `Cannot open the CA: workloadTtlSeconds (${workloadTtlSeconds}) is above maxWorkloadTtlSeconds (${maxWorkloadTtlSeconds})`,
      );
    }
    const now = options.now ?? (() => new Date());

    const material = await openCaDirectory(options.dir, trustDomain, now());
    const issuer = new x509.X509Certificate(material.issuer.raw);
    // The workloads' authority key identifier is the CA's subject key identifier when it
    // has one (RFC 5280 4.2.1.1), else the same SHA-1 of its key a SKI would hold.
    const ski = issuer.getExtension(x509.SubjectKeyIdentifierExtension);
    const issuerKeyId =
      ski?.keyId ?? (await x509.SubjectKeyIdentifierExtension.create(issuer.publicKey)).keyId;
    return new CertificateAuthority(
      { trustDomain, workloadTtlSeconds, maxWorkloadTtlSeconds, now },
      {
        source: material.source,
        signer: material.signer,
        issuerName: issuer.subjectName,
        issuerKeyId,
        issuerNotAfter: validityOf(material.issuer).notAfter,
        chainPem: material.chainPem,
        trustBundlePem: material.trustBundlePem,
      },
    );
  }

  /** PEM of the root(s) peers must trust to accept this CA's certificates. */
  trustBundlePem(): string {
    return this.#trustBundlePem;
  }

  /**
   * Signs a workload certificate for `identity` over the key of `csrPem`.
   * Refuses (STRATA_ERR_CSR_REFUSED) a request whose signature does not
   * verify, a key other than ECDSA P-256, an identity outside this CA's trust
   * domain, and a lifetime outside 1 s to maxWorkloadTtlSeconds.
   */
  async sign(
    csrPem: string,
    identity: SpiffeId,
    options?: { ttlSeconds?: number },
  ): Promise<IssuedCertificate> {
    const ttlSeconds = options?.ttlSeconds ?? this.workloadTtlSeconds;
    if (
      !Number.isSafeInteger(ttlSeconds) ||
      ttlSeconds <= 0 ||
      ttlSeconds > this.maxWorkloadTtlSeconds
    ) {
      throw refused(
        `Cannot sign: ttlSeconds must be a whole number of seconds from 1 to ${this.maxWorkloadTtlSeconds}: got ${ttlSeconds}`,
      );
    }
    const identityProblem = spiffeIdProblem(identity);
    if (identityProblem !== undefined) {
      throw refused(`Cannot sign: the identity is not valid: ${identityProblem}`);
    }
    if (identity.trustDomain !== this.trustDomain) {
      throw refused(
        `Cannot sign ${formatSpiffeId(identity)}: its trust domain is "${identity.trustDomain}", ` +
          `and this CA signs only for "${this.trustDomain}"`,
      );
    }
    const spiffeId = formatSpiffeId(identity);

    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch (error) {
      throw refused(
        `Cannot sign ${spiffeId}: the certificate signing request does not parse as PKCS#10`,
        error,
      );
    }
    let publicKey: x509.PublicKey;
    let algorithm: { name?: string; namedCurve?: string };
    try {
      publicKey = csr.publicKey;
      algorithm = publicKey.algorithm as typeof algorithm;
    } catch (error) {
      throw refused(`Cannot sign ${spiffeId}: the request's public key does not parse`, error);
    }
    if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256') {
      const description = describePublicKey(Buffer.from(publicKey.rawData));
      throw refused(
        `Cannot sign ${spiffeId}: the request's key is ${description}; workload keys must be ECDSA P-256, ` +
          'the keys ztunnel generates',
      );
    }
    const signatureValid = await csr.verify().catch(() => false);
    if (!signatureValid) {
      throw refused(
        `Cannot sign ${spiffeId}: the request's signature does not verify with its own public key ` +
          '(the request was altered, or not signed by the key it carries)',
      );
    }

    const now = this.#now();
    if (now.getTime() >= this.#issuerNotAfter.getTime()) {
      throw refused(
        `Cannot sign ${spiffeId}: the CA's certificate expired on ${this.#issuerNotAfter.toISOString()}`,
      );
    }
    // A workload certificate never outlives the CA certificate that signed it.
    const notAfter = new Date(
      Math.min(now.getTime() + ttlSeconds * 1000, this.#issuerNotAfter.getTime()),
    );
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(16).toString('hex'),
      issuer: this.#issuerName,
      // No subject: the SPIFFE ID is the identity, so the SAN is critical (RFC 5280 4.2.1.6).
      notBefore: new Date(now.getTime() - clockSkewSeconds * 1000),
      notAfter,
      publicKey,
      signingKey: this.#signer.key,
      signingAlgorithm: this.#signer.algorithm,
      extensions: [
        ...this.#leafExtensions,
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
      ],
    });
    return {
      certChainPem: [`${leaf.toString('pem')}\n`, ...this.#chainPem],
      rootPem: this.#trustBundlePem,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      identity: {
        trustDomain: identity.trustDomain,
        namespace: identity.namespace,
        serviceAccount: identity.serviceAccount,
      },
    };
  }
}
