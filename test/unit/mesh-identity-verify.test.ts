// Peer verification (src/mesh/identity/verify.ts): the chains verifyPeerChain
// accepts and the ones it refuses, each with its reason; and a loopback mTLS
// handshake in which Node's own TLS accepts the CA's workload certificates
// through an intermediate, and refuses a peer whose CA it does not trust.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { CertificateAuthority } from '../../src/mesh/identity/ca.js';
import { sameSpiffeId, type SpiffeId } from '../../src/mesh/identity/spiffe.js';
import {
  PeerIdentityError,
  requireSpiffeId,
  spiffeIdOfCertificate,
  subjectAltNames,
  verifyPeerChain,
  type PeerIdentityReason,
} from '../../src/mesh/identity/verify.js';
import { generateWorkloadKey, type WorkloadCertificate } from '../../src/mesh/identity/workload.js';
import { subtle, x509, type CryptoKeyPair } from '../../src/mesh/identity/x509.js';

const trustDomain = 'cluster.local';
const web: SpiffeId = { trustDomain, namespace: 'shop', serviceAccount: 'web' };
const db: SpiffeId = { trustDomain, namespace: 'shop', serviceAccount: 'db' };
const hour = 3600_000;
const day = 24 * hour;

let scratch = '';
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'strata-mesh-identity-verify-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

interface TestCert {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
  pem: string;
}

/** A certificate made by hand, for the shapes the CA never issues. */
async function makeCert(options: {
  name: string;
  issuer?: TestCert;
  ca: boolean;
  uris?: string[];
}): Promise<TestCert> {
  const keys = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const cert = await x509.X509CertificateGenerator.create({
    subject: options.name,
    issuer: options.issuer?.cert.subjectName ?? options.name,
    notBefore: new Date(Date.now() - hour),
    notAfter: new Date(Date.now() + 30 * day),
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
      ...(options.uris === undefined
        ? []
        : [
            new x509.SubjectAlternativeNameExtension(
              options.uris.map((value) => ({ type: 'url', value })),
            ),
          ]),
    ],
  });
  return { cert, keys, pem: `${cert.toString('pem')}\n` };
}

/** A plug-in CA (root, then an intermediate that signs) in its own directory. */
async function plugInCa(name: string, options: { now?: () => Date } = {}) {
  const root = await makeCert({ name: `CN=${name} Root`, ca: true });
  const intermediate = await makeCert({ name: `CN=${name} Intermediate`, issuer: root, ca: true });
  const dir = join(scratch, name);
  await mkdir(dir);
  const pkcs8 = Buffer.from(await subtle.exportKey('pkcs8', intermediate.keys.privateKey));
  await writeFile(join(dir, 'ca-cert.pem'), intermediate.pem);
  await writeFile(join(dir, 'ca-key.pem'), pkcs8ToPem(pkcs8), { mode: 0o600 });
  await writeFile(join(dir, 'root-cert.pem'), root.pem);
  await writeFile(join(dir, 'cert-chain.pem'), intermediate.pem + root.pem);
  const ca = await CertificateAuthority.open({ dir, ...options });
  return { ca, root, intermediate };
}

function pkcs8ToPem(der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

async function workloadCertificate(
  ca: CertificateAuthority,
  identity: SpiffeId,
  ttlSeconds?: number,
): Promise<WorkloadCertificate> {
  const key = await generateWorkloadKey();
  const issued = await ca.sign(
    await key.createCsr(identity),
    identity,
    ttlSeconds === undefined ? {} : { ttlSeconds },
  );
  return { ...issued, privateKeyPem: key.privateKeyPem };
}

const derOf = (chainPem: readonly string[]): Buffer[] =>
  chainPem.map((pem) => new X509Certificate(pem).raw);

function refusedWith(reason: PeerIdentityReason, message: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof PeerIdentityError, String(error));
    assert.equal(error.reason, reason);
    assert.equal(error.code, 'STRATA_ERR_PEER_IDENTITY');
    assert.match(error.message, message);
    return true;
  };
}

describe('verifyPeerChain', () => {
  let mesh: Awaited<ReturnType<typeof plugInCa>>;
  let webCert: WorkloadCertificate;

  before(async () => {
    mesh = await plugInCa('mesh');
    webCert = await workloadCertificate(mesh.ca, web);
  });

  it('accepts a chain through the intermediate, as DER or PEM, and returns the identity', () => {
    const bundle = mesh.ca.trustBundlePem();
    assert.deepEqual(verifyPeerChain(derOf(webCert.certChainPem), bundle, { trustDomain }), web);
    assert.deepEqual(
      verifyPeerChain(webCert.certChainPem, bundle, { trustDomain, expected: web }),
      web,
    );
    // A peer that also sends the root is fine.
    assert.deepEqual(
      verifyPeerChain([...webCert.certChainPem, mesh.root.pem], bundle, { trustDomain }),
      web,
    );
  });

  it("refuses another trust domain's CA as untrusted", async () => {
    const other = await plugInCa('other');
    const stranger = await workloadCertificate(other.ca, web);
    assert.throws(
      () => verifyPeerChain(stranger.certChainPem, mesh.ca.trustBundlePem(), { trustDomain }),
      refusedWith('untrusted', /does not chain to the trust bundle/),
    );
    // Nor does the leaf alone, without the intermediate that would link it.
    assert.throws(
      () =>
        verifyPeerChain(webCert.certChainPem.slice(0, 1), mesh.ca.trustBundlePem(), {
          trustDomain,
        }),
      refusedWith('untrusted', /no trusted root issued/),
    );
  });

  it('refuses an expired certificate, and one not valid yet', async () => {
    let clock = new Date(Date.now() - 3 * day);
    const past = await CertificateAuthority.open({
      dir: join(scratch, 'past'),
      now: () => clock,
    });
    const old = await workloadCertificate(past, web, 24 * 3600);
    clock = new Date();
    assert.throws(
      () => verifyPeerChain(old.certChainPem, past.trustBundlePem(), { trustDomain }),
      refusedWith('expired', /The peer's certificate expired on \d{4}-/),
    );
    assert.throws(
      () =>
        verifyPeerChain(webCert.certChainPem, mesh.ca.trustBundlePem(), {
          trustDomain,
          now: new Date(Date.now() - 2 * hour),
        }),
      refusedWith('not-yet-valid', /is not valid before/),
    );
  });

  it('refuses the wrong identity and the wrong trust domain', () => {
    assert.throws(
      () =>
        verifyPeerChain(webCert.certChainPem, mesh.ca.trustBundlePem(), {
          trustDomain,
          expected: db,
        }),
      refusedWith(
        'wrong-identity',
        /proved spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web, expected spiffe:\/\/cluster\.local\/ns\/shop\/sa\/db/,
      ),
    );
    assert.throws(
      () =>
        verifyPeerChain(webCert.certChainPem, mesh.ca.trustBundlePem(), {
          trustDomain: 'prod.example',
        }),
      refusedWith('wrong-trust-domain', /outside trust domain "prod\.example"/),
    );
  });

  it('refuses a trusted certificate with no SPIFFE ID, or more than one URI', async () => {
    const plain = await makeCert({ name: 'CN=web', issuer: mesh.intermediate, ca: false });
    assert.throws(
      () =>
        verifyPeerChain([plain.pem, mesh.intermediate.pem], mesh.ca.trustBundlePem(), {
          trustDomain,
        }),
      refusedWith('no-spiffe-id', /no spiffe:\/\/ URI SAN/),
    );
    const https = await makeCert({
      name: 'CN=web',
      issuer: mesh.intermediate,
      ca: false,
      uris: ['https://web.shop'],
    });
    assert.equal(spiffeIdOfCertificate(https.pem), undefined);
    // X509-SVID.md 2: exactly one URI SAN, so a second one (even a SPIFFE ID) is refused.
    const two = await makeCert({
      name: 'CN=web',
      issuer: mesh.intermediate,
      ca: false,
      uris: ['spiffe://cluster.local/ns/shop/sa/web', 'spiffe://cluster.local/ns/shop/sa/db'],
    });
    assert.equal(spiffeIdOfCertificate(two.pem), undefined);
    assert.throws(
      () =>
        verifyPeerChain([two.pem, mesh.intermediate.pem], mesh.ca.trustBundlePem(), {
          trustDomain,
        }),
      refusedWith('malformed', /carries 2 URI SANs .*an X509-SVID has exactly one/),
    );
    const odd = await makeCert({
      name: 'CN=web',
      issuer: mesh.intermediate,
      ca: false,
      uris: ['spiffe://cluster.local/ns/shop/sa/web/extra'],
    });
    assert.throws(
      () =>
        verifyPeerChain([odd.pem, mesh.intermediate.pem], mesh.ca.trustBundlePem(), {
          trustDomain,
        }),
      refusedWith('malformed', /is not spiffe:\/\/<trust domain>\/ns\/<namespace>/),
    );
  });

  it('refuses a chain whose intermediate is not a CA', async () => {
    const root = await makeCert({ name: 'CN=Root', ca: true });
    const notCa = await makeCert({ name: 'CN=Not A CA', issuer: root, ca: false });
    const leaf = await makeCert({
      name: 'CN=leaf',
      issuer: notCa,
      ca: false,
      uris: ['spiffe://cluster.local/ns/shop/sa/web'],
    });
    assert.throws(
      () => verifyPeerChain([leaf.pem, notCa.pem], root.pem, { trustDomain }),
      refusedWith('untrusted', /"CN=Not A CA" signed "CN=leaf" but is not a CA/),
    );
  });

  it('refuses nothing at all, garbage and too many certificates as malformed', () => {
    assert.throws(
      () => verifyPeerChain([], mesh.ca.trustBundlePem(), { trustDomain }),
      refusedWith('malformed', /presented no certificate/),
    );
    assert.throws(
      () => verifyPeerChain([Buffer.from('nope')], mesh.ca.trustBundlePem(), { trustDomain }),
      refusedWith('malformed', /Certificate 1 of the peer's chain does not parse/),
    );
    // A pile of certificates is refused before any signature is checked.
    const pile = Array.from({ length: 11 }, () => mesh.intermediate.pem);
    assert.throws(
      () =>
        verifyPeerChain([webCert.certChainPem[0] ?? '', ...pile], mesh.ca.trustBundlePem(), {
          trustDomain,
        }),
      refusedWith('malformed', /presented 12 certificates; at most 10/),
    );
  });
});

describe('spiffeIdOfCertificate', () => {
  it('reads the URI SAN from PEM, DER or a parsed certificate', async () => {
    const { ca } = await plugInCa('read');
    const issued = await workloadCertificate(ca, db);
    const pem = issued.certChainPem[0] ?? '';
    const parsed = new X509Certificate(pem);
    assert.deepEqual(spiffeIdOfCertificate(pem), db);
    assert.deepEqual(spiffeIdOfCertificate(parsed.raw), db);
    assert.deepEqual(spiffeIdOfCertificate(parsed), db);
    assert.deepEqual(requireSpiffeId(parsed.raw), db);
    assert.equal(spiffeIdOfCertificate('not a certificate'), undefined);
    assert.throws(
      () => requireSpiffeId(Buffer.from('x')),
      refusedWith('malformed', /does not parse/),
    );
  });

  it("splits Node's subjectAltName text, quoted values included", async () => {
    const uri = 'spiffe://a/b,c';
    const odd = await makeCert({ name: 'CN=odd', ca: false, uris: [uri] });
    const parsed = new X509Certificate(odd.pem);
    assert.equal(parsed.subjectAltName, 'URI:"spiffe://a/b\\u002cc"');
    assert.deepEqual(subjectAltNames(parsed), [{ type: 'URI', value: uri }]);
  });
});

// --- Node's TLS with these certificates ------------------------------------

interface Side {
  certificate: WorkloadCertificate;
  trustBundlePem: string;
}

interface Outcome {
  server: { identity?: SpiffeId; error?: Error; authorizationError?: string };
  client: { identity?: SpiffeId; error?: Error };
}

/** One mutual-TLS handshake on loopback; each side checks the SPIFFE ID of the other. */
async function handshake(server: Side, client: Side, expected: SpiffeId): Promise<Outcome> {
  const options = (side: Side) => ({
    key: side.certificate.privateKeyPem,
    cert: side.certificate.certChainPem.join(''),
    ca: side.trustBundlePem,
    minVersion: 'TLSv1.3' as const,
  });
  const listener = tls.createServer({
    ...options(server),
    requestCert: true,
    rejectUnauthorized: true,
  });
  const serverSide = new Promise<Outcome['server']>((resolve) => {
    listener.once('secureConnection', (socket) => {
      resolve({ identity: spiffeIdOfCertificate(socket.getPeerCertificate().raw) });
      socket.end('hello');
    });
    // With rejectUnauthorized, Node's server closes without a word; the reason
    // is on the socket (tls.TLSSocket authorizationError).
    listener.once('tlsClientError', (error, socket) => {
      const why = socket.authorizationError as Error | string | undefined;
      resolve({ error, authorizationError: why === undefined ? undefined : String(why) });
    });
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const { port } = listener.address() as AddressInfo;
  try {
    const socket = tls.connect({
      ...options(client),
      host: '127.0.0.1',
      port,
      // Host names mean nothing in the mesh: the server must prove the expected identity.
      checkServerIdentity: (_host, peer) => {
        const id = spiffeIdOfCertificate(peer.raw);
        return id !== undefined && sameSpiffeId(id, expected)
          ? undefined
          : new Error(`the server is not ${JSON.stringify(expected)}`);
      },
    });
    const clientSide = new Promise<Outcome['client']>((resolve) => {
      // Under TLS 1.3 the server judges the client's certificate after the client
      // finished; the client learns the verdict from the data or the alert after it.
      socket.once('data', () => {
        resolve({ identity: spiffeIdOfCertificate(socket.getPeerCertificate().raw) });
      });
      socket.once('error', (error: Error) => {
        resolve({ error });
      });
      socket.once('close', () => {
        resolve({ error: new Error('closed before any data') });
      });
    });
    const [serverOutcome, clientOutcome] = await Promise.all([serverSide, clientSide]);
    socket.destroy();
    return { server: serverOutcome, client: clientOutcome };
  } finally {
    await new Promise((resolve) => listener.close(resolve));
  }
}

describe('node:tls with workload certificates', () => {
  let mesh: Awaited<ReturnType<typeof plugInCa>>;
  let stranger: CertificateAuthority;

  before(async () => {
    mesh = await plugInCa('tls');
    stranger = await CertificateAuthority.open({ dir: join(scratch, 'stranger') });
  });

  it('completes a mutual handshake through the intermediate, each side seeing the other', async () => {
    const bundle = mesh.ca.trustBundlePem();
    const outcome = await handshake(
      { certificate: await workloadCertificate(mesh.ca, db), trustBundlePem: bundle },
      { certificate: await workloadCertificate(mesh.ca, web), trustBundlePem: bundle },
      db,
    );
    assert.deepEqual(outcome, { server: { identity: web }, client: { identity: db } });
  });

  it('refuses a client whose certificate comes from another CA', async () => {
    const outcome = await handshake(
      {
        certificate: await workloadCertificate(mesh.ca, db),
        trustBundlePem: mesh.ca.trustBundlePem(),
      },
      {
        certificate: await workloadCertificate(stranger, web),
        trustBundlePem: mesh.ca.trustBundlePem(),
      },
      db,
    );
    assert.equal(outcome.server.identity, undefined, 'no secure connection on the server');
    assert.equal(outcome.server.authorizationError, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    assert.ok(outcome.client.error, 'the client got no data');
  });

  it('refuses a server whose certificate comes from another CA, or proves another identity', async () => {
    const client = {
      certificate: await workloadCertificate(mesh.ca, web),
      trustBundlePem: mesh.ca.trustBundlePem(),
    };
    const foreign = await handshake(
      {
        certificate: await workloadCertificate(stranger, db),
        trustBundlePem: mesh.ca.trustBundlePem(),
      },
      client,
      db,
    );
    assert.equal(
      (foreign.client.error as NodeJS.ErrnoException).code,
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    );
    const impostor = await handshake(
      {
        certificate: await workloadCertificate(mesh.ca, web),
        trustBundlePem: mesh.ca.trustBundlePem(),
      },
      client,
      db,
    );
    assert.match(String(impostor.client.error), /the server is not/);
    assert.equal(impostor.server.identity, undefined);
  });
});
