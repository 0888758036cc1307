/**
 * The certificate authority's directory, laid out as istiod's: either an
 * operator's plug-in CA (the four files of Istio's `cacerts` secret,
 * security/pkg/pki/util/keycertbundle.go checks them the same way: the key
 * matches ca-cert.pem, which chains to root-cert.pem through cert-chain.pem),
 * or a self-signed root that strata makes once and reuses (istiod's
 * `istio-ca-secret`: security/pkg/pki/ca/ca.go, a 10-year root whose
 * organization is the trust domain).
 *
 *   ca-cert.pem     the certificate whose key signs workload certificates
 *   ca-key.pem      its private key (mode 0600, the directory 0700)
 *   root-cert.pem   the root(s) every peer trusts
 *   cert-chain.pem  ca-cert.pem's chain up to the root (may include both ends)
 *
 * A self-signed CA has only ca-key.pem and root-cert.pem. Files are published
 * with link(2) from a synced temporary file, so a reader never sees half a
 * file and two processes starting at once end up with one root: whoever
 * links first wins, the other reads what it wrote. The key is published
 * before the root, and a key left without a root (a process killed between
 * the two) gets its root on the next open.
 */
import {
  createPrivateKey,
  createPublicKey,
  randomBytes,
  type KeyObject,
  type X509Certificate,
} from 'node:crypto';
import { chmod, link, mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildPath,
  describeCertificate,
  firstInvalidAt,
  parsePemCertificates,
  signedBy,
} from './chain.js';
import { IdentityError } from './errors.js';
import { ecdsaP256, subtle, toPem, x509, type CryptoKey } from './x509.js';

export const caFileNames = {
  caCert: 'ca-cert.pem',
  caKey: 'ca-key.pem',
  rootCert: 'root-cert.pem',
  certChain: 'cert-chain.pem',
} as const;

type CaFile = keyof typeof caFileNames;

/** Ten years, istiod's self-signed root lifetime (CITADEL_SELF_SIGNED_CA_CERT_TTL). */
export const selfSignedRootTtlSeconds = 10 * 365 * 24 * 3600;

/** Certificates are backdated this much so a peer whose clock is a little behind accepts them. */
export const clockSkewSeconds = 60;

/** The CA's signing key as WebCrypto holds it: not extractable, usable only to sign. */
export interface CaSigner {
  key: CryptoKey;
  /** The signature algorithm for certificates this key signs. */
  algorithm: { name: string; hash: string };
  /** "ECDSA P-256", "RSA 4096": for messages. */
  description: string;
}

/** What the CA needs from its directory. */
export interface CaMaterial {
  source: 'plug-in' | 'self-signed';
  signer: CaSigner;
  /** The certificate whose key is `signer`: ca-cert.pem, or the self-signed root. */
  issuer: X509Certificate;
  /** PEM of `issuer` and the intermediates above it, not the root; empty when the issuer is a root. */
  chainPem: string[];
  /** PEM of every root in root-cert.pem. */
  trustBundlePem: string;
}

function filesError(file: string, message: string, cause?: unknown): IdentityError {
  return new IdentityError('STRATA_ERR_CA_FILES', message, {
    file,
    ...(cause === undefined ? {} : { cause }),
  });
}

function errorCode(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw filesError(
      path,
      `Cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`,
      error,
    );
  }
}

async function readCaFiles(dir: string): Promise<Partial<Record<CaFile, string>>> {
  const files: Partial<Record<CaFile, string>> = {};
  for (const [file, name] of Object.entries(caFileNames) as [CaFile, string][]) {
    const text = await readIfPresent(join(dir, name));
    if (text !== undefined) files[file] = text;
  }
  return files;
}

/**
 * The CA's key from PEM (PKCS#8, SEC1 or PKCS#1), imported into WebCrypto
 * without export rights. ECDSA P-256 or P-384, or RSA of 2048 bits or more,
 * the keys istiod accepts for a plug-in CA.
 */
async function importSigningKey(
  text: string,
  path: string,
): Promise<{ signer: CaSigner; keyObject: KeyObject }> {
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) {
    throw filesError(
      path,
      `${path} holds an encrypted private key: the CA needs it unencrypted, as in Istio's cacerts`,
    );
  }
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(text);
  } catch (error) {
    throw filesError(
      path,
      `${path} does not hold a PEM private key (PKCS#8, SEC1 or PKCS#1)`,
      error,
    );
  }
  const curve = keyObject.asymmetricKeyDetails?.namedCurve;
  const bits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0;
  let importParams: { name: string; namedCurve?: string; hash?: string };
  let signer: Omit<CaSigner, 'key'>;
  if (keyObject.asymmetricKeyType === 'ec' && curve === 'prime256v1') {
    importParams = { name: 'ECDSA', namedCurve: 'P-256' };
    signer = { algorithm: { name: 'ECDSA', hash: 'SHA-256' }, description: 'ECDSA P-256' };
  } else if (keyObject.asymmetricKeyType === 'ec' && curve === 'secp384r1') {
    importParams = { name: 'ECDSA', namedCurve: 'P-384' };
    signer = { algorithm: { name: 'ECDSA', hash: 'SHA-384' }, description: 'ECDSA P-384' };
  } else if (keyObject.asymmetricKeyType === 'rsa' && bits >= 2048) {
    importParams = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    signer = {
      algorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      description: `RSA ${bits}`,
    };
  } else {
    const what =
      keyObject.asymmetricKeyType === 'rsa'
        ? `an RSA ${bits} key`
        : `a ${keyObject.asymmetricKeyType ?? 'unknown'}${curve === undefined ? '' : ` ${curve}`} key`;
    throw filesError(
      path,
      `${path} holds ${what}: a CA key must be ECDSA P-256 or P-384, or RSA of 2048 bits or more`,
    );
  }
  const der = keyObject.export({ format: 'der', type: 'pkcs8' });
  const key = await subtle.importKey('pkcs8', der, importParams, false, ['sign']);
  return { signer: { ...signer, key }, keyObject };
}

function certificatesOf(text: string, path: string): X509Certificate[] {
  let certs: X509Certificate[];
  try {
    certs = parsePemCertificates(text);
  } catch (error) {
    throw filesError(
      path,
      `Cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`,
      error,
    );
  }
  return certs;
}

/** Whether a certificate's key usage (when it has one) allows signing certificates. */
function mayCertify(cert: X509Certificate): boolean {
  const usage = new x509.X509Certificate(cert.raw).getExtension(x509.KeyUsagesExtension);
  return usage === null || (usage.usages & x509.KeyUsageFlags.keyCertSign) !== 0;
}

function checkIsCa(cert: X509Certificate, path: string): void {
  if (!cert.ca) {
    throw filesError(
      path,
      `${path}: ${describeCertificate(cert)} is not a CA certificate (basicConstraints has no CA:TRUE)`,
    );
  }
  if (!mayCertify(cert)) {
    throw filesError(
      path,
      `${path}: ${describeCertificate(cert)} has a key usage without keyCertSign, so it cannot sign certificates`,
    );
  }
}

/** The operator's four files of Istio's plug-in CA. */
async function loadPlugIn(
  dir: string,
  files: Partial<Record<CaFile, string>>,
  now: Date,
): Promise<CaMaterial> {
  const path = (file: CaFile): string => join(dir, caFileNames[file]);
  const missing = (Object.keys(caFileNames) as CaFile[]).filter(
    (file) => files[file] === undefined,
  );
  if (missing.length > 0) {
    const names = missing.map((file) => caFileNames[file]).join(', ');
    throw filesError(
      path(missing[0] as CaFile),
      `The plug-in CA in ${dir} is incomplete: ${names} ${missing.length === 1 ? 'is' : 'are'} missing ` +
        "(a plug-in CA needs ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem, as Istio's cacerts)",
    );
  }
  const { caCert: caCertText = '', caKey = '', rootCert = '', certChain = '' } = files;

  const { signer, keyObject } = await importSigningKey(caKey, path('caKey'));
  const [caCert] = certificatesOf(caCertText, path('caCert'));
  if (caCert === undefined) {
    throw filesError(path('caCert'), `${path('caCert')} holds no PEM certificate`);
  }
  if (!caCert.checkPrivateKey(keyObject)) {
    throw filesError(
      path('caKey'),
      `${path('caKey')} does not match ${path('caCert')}: the certificate's public key is not this key's`,
    );
  }
  checkIsCa(caCert, path('caCert'));

  const roots = certificatesOf(rootCert, path('rootCert'));
  if (roots.length === 0) {
    throw filesError(path('rootCert'), `${path('rootCert')} holds no PEM certificate`);
  }
  const chain = certificatesOf(certChain, path('certChain'));
  const built = buildPath(caCert, chain, roots);
  if (!built.ok) {
    throw filesError(
      path('rootCert'),
      `${path('caCert')} does not chain to a root in ${path('rootCert')} through ${path('certChain')}: ${built.problem}`,
    );
  }
  const invalid = firstInvalidAt(built.path, now);
  if (invalid !== undefined) {
    const isRoot = invalid.index === built.path.length - 1 && built.path.length > 1;
    const file =
      invalid.index === 0 ? path('caCert') : isRoot ? path('rootCert') : path('certChain');
    const state = invalid.state === 'expired' ? 'expired on' : 'is not valid before';
    throw filesError(
      file,
      `${file}: ${describeCertificate(invalid.cert)} ${state} ${invalid.date.toISOString()}`,
    );
  }
  return {
    source: 'plug-in',
    signer,
    issuer: caCert,
    chainPem: built.path.length === 1 ? [] : built.path.slice(0, -1).map((cert) => cert.toString()),
    trustBundlePem: roots.map((root) => root.toString()).join(''),
  };
}

/** A self-signed root made earlier (by strata, or an operator's root used directly). */
async function loadSelfSigned(
  dir: string,
  files: Partial<Record<CaFile, string>>,
  now: Date,
): Promise<CaMaterial> {
  const keyPath = join(dir, caFileNames.caKey);
  const rootPath = join(dir, caFileNames.rootCert);
  if (files.caKey === undefined) {
    throw filesError(
      keyPath,
      `${rootPath} is there but ${keyPath} is not: a self-signed CA needs both ` +
        '(and a plug-in CA needs ca-cert.pem and cert-chain.pem too)',
    );
  }
  const { signer, keyObject } = await importSigningKey(files.caKey, keyPath);
  const roots = certificatesOf(files.rootCert ?? '', rootPath);
  if (roots.length === 0) throw filesError(rootPath, `${rootPath} holds no PEM certificate`);
  const root = roots.find((cert) => cert.checkPrivateKey(keyObject));
  if (root === undefined) {
    throw filesError(keyPath, `${keyPath} does not match any certificate in ${rootPath}`);
  }
  if (!signedBy(root, root)) {
    throw filesError(
      rootPath,
      `${rootPath}: ${describeCertificate(root)} is not self-signed; a CA signed by another CA is a plug-in CA ` +
        'and needs ca-cert.pem and cert-chain.pem',
    );
  }
  checkIsCa(root, rootPath);
  const invalid = firstInvalidAt([root], now);
  if (invalid !== undefined) {
    const state = invalid.state === 'expired' ? 'expired on' : 'is not valid before';
    throw filesError(
      rootPath,
      `${rootPath}: ${describeCertificate(root)} ${state} ${invalid.date.toISOString()}`,
    );
  }
  return {
    source: 'self-signed',
    signer,
    issuer: root,
    chainPem: [],
    trustBundlePem: roots.map((cert) => cert.toString()).join(''),
  };
}

/**
 * Writes `text` to `dir/name` unless that file exists: a synced temporary file
 * linked into place, then the directory synced. False when another process
 * published the file first.
 */
async function publish(dir: string, name: string, text: string, mode: number): Promise<boolean> {
  const temporary = join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const file = await open(temporary, 'wx', mode);
  try {
    await file.chmod(mode);
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await link(temporary, join(dir, name));
    return true;
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(temporary);
    const directory = await open(dir, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }
}

/** Removes temporary files left by a process that died while publishing (it may have held a key). */
async function removeAbandonedTemporaries(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const match = /^\.(?:ca-key|root-cert)\.pem\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name);
    if (match === null) continue;
    const pid = Number(match[1]);
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 0);
      continue; // its writer is alive and may still link it
    } catch (error) {
      if (errorCode(error) !== 'ESRCH') continue;
    }
    await unlink(join(dir, name)).catch(() => undefined);
  }
}

/** A self-signed root certificate for `publicKeySpki`, signed by `signer`. */
async function makeRoot(
  signer: CaSigner,
  publicKeySpki: Buffer,
  trustDomain: string,
  now: Date,
): Promise<string> {
  const name = new x509.Name([{ O: [trustDomain] }]);
  const publicKey = new x509.PublicKey(publicKeySpki);
  const keyId = await x509.SubjectKeyIdentifierExtension.create(publicKey);
  const root = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(16).toString('hex'),
    subject: name,
    issuer: name,
    notBefore: new Date(now.getTime() - clockSkewSeconds * 1000),
    notAfter: new Date(now.getTime() + selfSignedRootTtlSeconds * 1000),
    publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      keyId,
      new x509.AuthorityKeyIdentifierExtension(keyId.keyId),
    ],
  });
  return root.toString('pem') + '\n';
}

/**
 * Makes what is missing of a self-signed CA: the key (unless `keyText` is a
 * key already published), then the root. False when another process
 * published either first; the caller reads the directory again.
 */
async function createSelfSigned(
  dir: string,
  keyText: string | undefined,
  trustDomain: string,
  now: Date,
): Promise<boolean> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  await removeAbandonedTemporaries(dir);
  const keyPath = join(dir, caFileNames.caKey);
  let text = keyText;
  if (text === undefined) {
    const pair = await subtle.generateKey(
      { name: ecdsaP256.name, namedCurve: ecdsaP256.namedCurve },
      true,
      ['sign', 'verify'],
    );
    text = toPem(await subtle.exportKey('pkcs8', pair.privateKey), 'PRIVATE KEY');
    if (!(await publish(dir, caFileNames.caKey, text, 0o600))) return false;
  }
  // Sign with the key as loaded from its text (not extractable), the same way every later open will.
  const { signer, keyObject } = await importSigningKey(text, keyPath);
  const spki = createPublicKey(keyObject).export({ format: 'der', type: 'spki' });
  const rootPem = await makeRoot(signer, spki, trustDomain, now);
  return publish(dir, caFileNames.rootCert, rootPem, 0o644);
}

/**
 * The CA in `dir`: the operator's plug-in CA when ca-cert.pem or
 * cert-chain.pem is there, else the self-signed root made earlier, else a new
 * self-signed ECDSA P-256 root for `trustDomain`, made now.
 */
export async function openCaDirectory(
  dir: string,
  trustDomain: string,
  now: Date,
): Promise<CaMaterial> {
  // Each pass either returns or publishes something; losing a race to another process costs one more pass.
  for (let pass = 0; pass < 4; pass++) {
    const files = await readCaFiles(dir);
    if (files.caCert !== undefined || files.certChain !== undefined) {
      return loadPlugIn(dir, files, now);
    }
    if (files.rootCert !== undefined) return loadSelfSigned(dir, files, now);
    try {
      await createSelfSigned(dir, files.caKey, trustDomain, now);
    } catch (error) {
      if (error instanceof IdentityError) throw error;
      const why = error instanceof Error ? error.message : String(error);
      throw filesError(dir, `Cannot create a self-signed CA in ${dir}: ${why}`, error);
    }
  }
  throw filesError(
    dir,
    `Cannot set up the CA in ${dir}: its files kept changing while they were read`,
  );
}
