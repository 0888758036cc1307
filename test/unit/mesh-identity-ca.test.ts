// The mesh's certificate authority (src/mesh/identity/ca.ts, ca-files.ts):
// the self-signed root it makes and keeps, an operator's plug-in CA in the
// four files of Istio's cacerts and the mistakes in them it refuses, and the
// workload certificates sign() issues, as istiod issues them.
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CertificateAuthority } from '../../src/mesh/identity/ca.js';
import { IdentityError } from '../../src/mesh/identity/errors.js';
import { type SpiffeId } from '../../src/mesh/identity/spiffe.js';
import { subtle, toPem, x509, type CryptoKeyPair } from '../../src/mesh/identity/x509.js';
import { generateWorkloadKey } from '../../src/mesh/identity/workload.js';

const web: SpiffeId = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' };

let scratch = '';
let dirs = 0;
/** A directory of its own under this run's scratch directory (not created). */
const freshDir = (): string => join(scratch, `ca-${++dirs}`);

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'strata-mesh-identity-ca-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

// --- an operator's PKI, made with the same X.509 library -------------------

interface TestCert {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
  pem: string;
}

const hour = 3600_000;
const day = 24 * hour;

async function makeCert(options: {
  name: string;
  issuer?: TestCert;
  ca: boolean;
  notBefore?: Date;
  notAfter?: Date;
}): Promise<TestCert> {
  const keys = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const cert = await x509.X509CertificateGenerator.create({
    subject: options.name,
    issuer: options.issuer?.cert.subjectName ?? options.name,
    notBefore: options.notBefore ?? new Date(Date.now() - hour),
    notAfter: options.notAfter ?? new Date(Date.now() + 365 * day),
    publicKey: keys.publicKey,
    signingKey: options.issuer?.keys.privateKey ?? keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(options.ca, undefined, true),
      options.ca
        ? new x509.KeyUsagesExtension(
            x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
            true,
          )
        : new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys, pem: `${cert.toString('pem')}\n` };
}

/** The key as openssl writes an EC key: SEC1 "EC PRIVATE KEY", as in many cacerts secrets. */
async function sec1Pem(keys: CryptoKeyPair): Promise<string> {
  const pkcs8 = Buffer.from(await subtle.exportKey('pkcs8', keys.privateKey));
  return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
    .export({ format: 'pem', type: 'sec1' })
    .toString();
}

/** Istio's plug-in layout: ca-cert is the intermediate, cert-chain is intermediate + root. */
async function writePlugIn(
  dir: string,
  files: { caCert: string; caKey: string; rootCert: string; certChain: string },
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'ca-cert.pem'), files.caCert);
  await writeFile(join(dir, 'ca-key.pem'), files.caKey, { mode: 0o600 });
  await writeFile(join(dir, 'root-cert.pem'), files.rootCert);
  await writeFile(join(dir, 'cert-chain.pem'), files.certChain);
}

function refusedFiles(file: string, message: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof IdentityError, String(error));
    assert.equal(error.code, 'STRATA_ERR_CA_FILES');
    assert.equal(error.file, file);
    assert.match(error.message, message);
    return true;
  };
}

async function csrFor(identity: SpiffeId = web): Promise<string> {
  return (await generateWorkloadKey()).createCsr(identity);
}

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

// --- the self-signed root ---------------------------------------------------

describe('a self-signed CA', () => {
  it('makes an ECDSA P-256 root for the trust domain, the key 0600 in a 0700 directory', async () => {
    const dir = freshDir();
    const ca = await CertificateAuthority.open({ dir });
    assert.equal(ca.trustDomain, 'cluster.local');
    assert.equal(ca.source, 'self-signed');
    assert.equal(await modeOf(dir), 0o700);
    assert.equal(await modeOf(join(dir, 'ca-key.pem')), 0o600);
    assert.match(await readFile(join(dir, 'ca-key.pem'), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
    await assert.rejects(stat(join(dir, 'ca-cert.pem')), { code: 'ENOENT' });

    const rootPem = await readFile(join(dir, 'root-cert.pem'), 'utf8');
    assert.equal(ca.trustBundlePem(), rootPem);
    const root = new X509Certificate(rootPem);
    assert.equal(root.subject, 'O=cluster.local');
    assert.equal(root.issuer, 'O=cluster.local');
    assert.equal(root.ca, true);
    assert.equal(root.verify(root.publicKey), true);
    assert.equal(root.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const years = (Date.parse(root.validTo) - Date.parse(root.validFrom)) / (365 * day);
    assert.ok(years > 9.99 && years < 10.01, `lifetime ${years} years`);
    const usage = new x509.X509Certificate(root.raw).getExtension(x509.KeyUsagesExtension);
    assert.equal(usage?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    // Nothing left behind by the atomic writes.
    assert.deepEqual((await import('node:fs/promises').then((fs) => fs.readdir(dir))).sort(), [
      'ca-key.pem',
      'root-cert.pem',
    ]);
  });

  it('is the same CA when opened again from the same directory', async () => {
    const dir = freshDir();
    const first = await CertificateAuthority.open({ dir, trustDomain: 'prod.example' });
    const again = await CertificateAuthority.open({ dir, trustDomain: 'prod.example' });
    assert.equal(again.trustBundlePem(), first.trustBundlePem());
    // What the first issued verifies against the second's bundle, and the other way round.
    const issued = await again.sign(await csrFor({ ...web, trustDomain: 'prod.example' }), {
      ...web,
      trustDomain: 'prod.example',
    });
    const leaf = new X509Certificate(issued.certChainPem[0] ?? '');
    assert.equal(leaf.verify(new X509Certificate(first.trustBundlePem()).publicKey), true);
  });

  it('ends with one root when two open an empty directory at once', async () => {
    const dir = freshDir();
    const [a, b] = await Promise.all([
      CertificateAuthority.open({ dir }),
      CertificateAuthority.open({ dir }),
    ]);
    assert.equal(a.trustBundlePem(), b.trustBundlePem());
  });

  it('finishes a root for a key left without one (a start killed half way)', async () => {
    const dir = freshDir();
    const first = await CertificateAuthority.open({ dir });
    await unlink(join(dir, 'root-cert.pem'));
    const again = await CertificateAuthority.open({ dir });
    const before = new X509Certificate(first.trustBundlePem());
    const now = new X509Certificate(again.trustBundlePem());
    assert.notEqual(now.serialNumber, before.serialNumber);
    assert.equal(
      now.publicKey.export({ format: 'der', type: 'spki' }).toString('hex'),
      before.publicKey.export({ format: 'der', type: 'spki' }).toString('hex'),
    );
  });

  it('refuses a root without its key, naming the missing file', async () => {
    const dir = freshDir();
    await CertificateAuthority.open({ dir });
    await unlink(join(dir, 'ca-key.pem'));
    await assert.rejects(
      CertificateAuthority.open({ dir }),
      refusedFiles(join(dir, 'ca-key.pem'), /root-cert\.pem is there but .*ca-key\.pem is not/),
    );
  });

  it('refuses a trust domain that is not one', async () => {
    await assert.rejects(
      CertificateAuthority.open({ dir: freshDir(), trustDomain: 'Cluster.Local' }),
      {
        code: 'STRATA_ERR_CA_OPTION',
        message: /trustDomain must be lowercase/,
      },
    );
  });

  it('keeps its key to itself', async () => {
    const ca = await CertificateAuthority.open({ dir: freshDir() });
    const visible = JSON.stringify(ca) + Object.values(ca).map(String).join();
    assert.doesNotMatch(visible, /PRIVATE KEY/);
    for (const value of Object.values(ca)) {
      assert.notEqual(Object.prototype.toString.call(value), '[object CryptoKey]');
    }
  });
});

// --- the plug-in CA ---------------------------------------------------------

describe('a plug-in CA', () => {
  let root: TestCert;
  let intermediate: TestCert;
  let good: { caCert: string; caKey: string; rootCert: string; certChain: string };

  before(async () => {
    root = await makeCert({ name: 'O=Example Corp, CN=Example Root CA', ca: true });
    intermediate = await makeCert({
      name: 'O=Example Corp, CN=Cluster One Intermediate CA, L=cluster1',
      issuer: root,
      ca: true,
    });
    good = {
      caCert: intermediate.pem,
      caKey: await sec1Pem(intermediate.keys),
      rootCert: root.pem,
      certChain: intermediate.pem + root.pem,
    };
  });

  it('signs with the intermediate, and its certificates chain through it to root-cert.pem', async () => {
    const dir = freshDir();
    await writePlugIn(dir, good);
    const ca = await CertificateAuthority.open({ dir });
    assert.equal(ca.source, 'plug-in');
    assert.equal(ca.trustBundlePem(), root.pem);

    const issued = await ca.sign(await csrFor(), web);
    assert.equal(issued.certChainPem.length, 2, 'the leaf, then the intermediate; not the root');
    const [leaf, middle] = issued.certChainPem.map((pem) => new X509Certificate(pem));
    const rootCert = new X509Certificate(root.pem);
    assert.ok(leaf && middle);
    assert.equal(middle.fingerprint256, new X509Certificate(intermediate.pem).fingerprint256);
    assert.equal(leaf.checkIssued(middle), true);
    assert.equal(leaf.verify(middle.publicKey), true);
    assert.equal(middle.verify(rootCert.publicKey), true);
    assert.equal(issued.rootPem, root.pem);
    // The leaf's authority key identifier is the intermediate's subject key identifier.
    const aki = new x509.X509Certificate(leaf.raw).getExtension(
      x509.AuthorityKeyIdentifierExtension,
    );
    const ski = intermediate.cert.getExtension(x509.SubjectKeyIdentifierExtension);
    assert.equal(aki?.keyId, ski?.keyId);
  });

  it('refuses a key that does not match ca-cert.pem, naming ca-key.pem', async () => {
    const dir = freshDir();
    const other = await makeCert({ name: 'CN=Other', ca: true });
    await writePlugIn(dir, { ...good, caKey: await sec1Pem(other.keys) });
    await assert.rejects(
      CertificateAuthority.open({ dir }),
      refusedFiles(join(dir, 'ca-key.pem'), /ca-key\.pem does not match .*ca-cert\.pem/),
    );
  });

  it('refuses a chain that does not lead to root-cert.pem, naming the files', async () => {
    const dir = freshDir();
    const otherRoot = await makeCert({ name: 'O=Example Corp, CN=Example Root CA', ca: true });
    await writePlugIn(dir, { ...good, rootCert: otherRoot.pem, certChain: intermediate.pem });
    await assert.rejects(
      CertificateAuthority.open({ dir }),
      refusedFiles(
        join(dir, 'root-cert.pem'),
        /ca-cert\.pem does not chain to a root in .*root-cert\.pem through .*cert-chain\.pem/,
      ),
    );
  });

  it('refuses an expired intermediate, naming ca-cert.pem and the date', async () => {
    const dir = freshDir();
    const expired = await makeCert({
      name: 'CN=Old Intermediate',
      issuer: root,
      ca: true,
      notBefore: new Date(Date.now() - 30 * day),
      notAfter: new Date(Date.now() - day),
    });
    await writePlugIn(dir, {
      caCert: expired.pem,
      caKey: await sec1Pem(expired.keys),
      rootCert: root.pem,
      certChain: expired.pem + root.pem,
    });
    await assert.rejects(
      CertificateAuthority.open({ dir }),
      refusedFiles(
        join(dir, 'ca-cert.pem'),
        /ca-cert\.pem: "CN=Old Intermediate" expired on \d{4}-/,
      ),
    );
  });

  it('refuses a ca-cert.pem that is not a CA', async () => {
    const dir = freshDir();
    const notCa = await makeCert({ name: 'CN=Just A Server', issuer: root, ca: false });
    await writePlugIn(dir, {
      caCert: notCa.pem,
      caKey: await sec1Pem(notCa.keys),
      rootCert: root.pem,
      certChain: notCa.pem + root.pem,
    });
    await assert.rejects(
      CertificateAuthority.open({ dir }),
      refusedFiles(join(dir, 'ca-cert.pem'), /is not a CA certificate/),
    );
  });

  it('refuses an incomplete set of files, naming what is missing', async () => {
    const dir = freshDir();
    await writePlugIn(dir, good);
    await unlink(join(dir, 'cert-chain.pem'));
    await unlink(join(dir, 'root-cert.pem'));
    await assert.rejects(
      CertificateAuthority.open({ dir }),
      refusedFiles(
        join(dir, 'root-cert.pem'),
        /incomplete: root-cert\.pem, cert-chain\.pem are missing/,
      ),
    );
  });
});

// --- sign() -----------------------------------------------------------------

describe('sign', () => {
  const now = new Date('2026-03-01T12:00:00.000Z');
  let ca: CertificateAuthority;

  before(async () => {
    ca = await CertificateAuthority.open({ dir: freshDir(), now: () => now });
  });

  it('issues a 24 h ECDSA P-256 X509-SVID whose only name is the SPIFFE ID', async () => {
    // The request asks for other names too; the CA issues only the identity it decided on.
    const key = await generateWorkloadKey();
    const pair = createPrivateKey(key.privateKeyPem);
    const issued = await ca.sign(await key.createCsr({ ...web, serviceAccount: 'admin' }), web);
    assert.equal(issued.certChainPem.length, 1, 'a self-signed CA adds no intermediates');
    const leaf = new X509Certificate(issued.certChainPem[0] ?? '');

    assert.equal(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/web');
    assert.equal(leaf.ca, false);
    assert.equal(leaf.checkPrivateKey(pair), true);
    assert.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.equal(leaf.verify(new X509Certificate(ca.trustBundlePem()).publicKey), true);

    const parsed = new x509.X509Certificate(leaf.raw);
    assert.equal(parsed.subject, '', 'an empty subject');
    const usage = parsed.getExtension(x509.KeyUsagesExtension);
    assert.equal(
      usage?.usages,
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    );
    assert.equal(parsed.getExtension(x509.SubjectAlternativeNameExtension)?.critical, true);
    assert.ok(parsed.getExtension(x509.SubjectKeyIdentifierExtension));
    assert.ok(parsed.getExtension(x509.AuthorityKeyIdentifierExtension));

    // Backdated one minute for clock skew; 24 h from now.
    assert.equal(issued.notBefore.toISOString(), '2026-03-01T11:59:00.000Z');
    assert.equal(issued.notAfter.toISOString(), '2026-03-02T12:00:00.000Z');
    assert.equal(new Date(leaf.validFrom).getTime(), issued.notBefore.getTime());
    assert.equal(new Date(leaf.validTo).getTime(), issued.notAfter.getTime());
    assert.deepEqual(issued.identity, web);
    assert.equal(issued.rootPem, ca.trustBundlePem());
  });

  it('gives each certificate a random 128-bit serial and honours ttlSeconds', async () => {
    const csr = await csrFor();
    const a = await ca.sign(csr, web, { ttlSeconds: 3600 });
    const b = await ca.sign(csr, web, { ttlSeconds: 3600 });
    const serials = [a, b].map(
      (issued) => new X509Certificate(issued.certChainPem[0] ?? '').serialNumber,
    );
    assert.notEqual(serials[0], serials[1]);
    for (const serial of serials)
      assert.ok(BigInt(`0x${serial}`) < 2n ** 128n && serial.length >= 24);
    assert.equal(a.notAfter.getTime() - now.getTime(), 3600_000);
  });

  it('refuses a request whose signature does not verify', async () => {
    const der = new x509.Pkcs10CertificateRequest(await csrFor()).rawData;
    const bytes = new Uint8Array(der.slice(0));
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0x01; // the signature's last byte
    const forged = toPem(bytes, 'CERTIFICATE REQUEST');
    await assert.rejects(ca.sign(forged, web), {
      code: 'STRATA_ERR_CSR_REFUSED',
      message: /signature does not verify with its own public key/,
    });
  });

  it('refuses an RSA key, saying what it is and what is expected', async () => {
    const algorithm = {
      name: 'RSASSA-PKCS1-v1_5',
      hash: 'SHA-256',
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
    };
    const keys = await subtle.generateKey(algorithm, true, ['sign', 'verify']);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      keys,
      signingAlgorithm: algorithm,
    });
    await assert.rejects(ca.sign(csr.toString('pem'), web), {
      code: 'STRATA_ERR_CSR_REFUSED',
      message: /key is RSA 2048; workload keys must be ECDSA P-256/,
    });
  });

  it('refuses an identity of another trust domain', async () => {
    const foreign = { ...web, trustDomain: 'evil.example' };
    await assert.rejects(ca.sign(await csrFor(foreign), foreign), {
      code: 'STRATA_ERR_CSR_REFUSED',
      message: /trust domain is "evil\.example", and this CA signs only for "cluster\.local"/,
    });
  });

  it('refuses a lifetime beyond the maximum, and a request that is not one', async () => {
    await assert.rejects(ca.sign(await csrFor(), web, { ttlSeconds: 91 * 24 * 3600 }), {
      code: 'STRATA_ERR_CSR_REFUSED',
      message: /ttlSeconds must be a whole number of seconds from 1 to 7776000/,
    });
    await assert.rejects(ca.sign('not a request', web), {
      code: 'STRATA_ERR_CSR_REFUSED',
      message: /does not parse as PKCS#10/,
    });
  });
});
