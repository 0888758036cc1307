// The node proxy's side of identity (src/mesh/identity/workload.ts): its own
// ECDSA P-256 keys, the requests it sends the CA, rotation at half life as
// Istio rotates; and how long a key and a signature take.
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CertificateAuthority } from '../../src/mesh/identity/ca.js';
import type { SpiffeId } from '../../src/mesh/identity/spiffe.js';
import { generateWorkloadKey, rotationAt, rotationDue } from '../../src/mesh/identity/workload.js';
import { x509 } from '../../src/mesh/identity/x509.js';

const web: SpiffeId = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' };

let scratch = '';
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'strata-mesh-identity-workload-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('generateWorkloadKey', () => {
  it('makes a fresh ECDSA P-256 key each time, as PKCS#8 PEM', async () => {
    const [a, b] = await Promise.all([generateWorkloadKey(), generateWorkloadKey()]);
    assert.match(
      a.privateKeyPem,
      /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/,
    );
    const key = createPrivateKey(a.privateKeyPem);
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.notEqual(a.privateKeyPem, b.privateKeyPem);
  });

  it('signs a verifiable PKCS#10 request over its key, naming the identity', async () => {
    const key = await generateWorkloadKey();
    const csr = new x509.Pkcs10CertificateRequest(await key.createCsr(web));
    assert.equal(await csr.verify(), true);
    const extension = csr.getExtension('2.5.29.17'); // subjectAltName
    assert.ok(extension);
    const san = new x509.SubjectAlternativeNameExtension(extension.rawData);
    assert.deepEqual(san.names.toJSON(), [
      { type: 'url', value: 'spiffe://cluster.local/ns/shop/sa/web' },
    ]);
    const ownPublicKey = createPrivateKey(key.privateKeyPem);
    assert.equal(
      Buffer.from(csr.publicKey.rawData).toString('hex'),
      (await import('node:crypto'))
        .createPublicKey(ownPublicKey)
        .export({ format: 'der', type: 'spki' })
        .toString('hex'),
    );
    await assert.rejects(key.createCsr({ ...web, namespace: '' }), {
      code: 'STRATA_ERR_SPIFFE_ID',
    });
  });
});

describe('rotationDue', () => {
  const notBefore = new Date('2026-03-01T11:59:00Z');
  const notAfter = new Date('2026-03-02T12:00:00Z');
  const cert = { notBefore, notAfter };

  it('is false before half the lifetime and true from then on', () => {
    const half = new Date((notBefore.getTime() + notAfter.getTime()) / 2);
    assert.equal(rotationAt(cert).toISOString(), half.toISOString());
    assert.equal(rotationDue(cert, notBefore), false);
    assert.equal(rotationDue(cert, new Date(half.getTime() - 1)), false);
    assert.equal(rotationDue(cert, half), true);
    assert.equal(rotationDue(cert, new Date(notAfter.getTime() - 1000)), true);
    assert.equal(rotationDue(cert, new Date(notAfter.getTime() + 1000)), true);
  });
});

describe('how long identity takes', () => {
  it('measures generateWorkloadKey and sign', async (t) => {
    const ca = await CertificateAuthority.open({ dir: join(scratch, 'ca') });
    const rounds = 50;
    const keys = [];
    let started = performance.now();
    for (let i = 0; i < rounds; i++) keys.push(await generateWorkloadKey());
    const keyMs = (performance.now() - started) / rounds;
    const csrs = [];
    started = performance.now();
    for (const key of keys) csrs.push(await key.createCsr(web));
    const csrMs = (performance.now() - started) / rounds;
    started = performance.now();
    for (const csr of csrs) {
      const issued = await ca.sign(csr, web);
      assert.ok(
        new X509Certificate(issued.certChainPem[0] ?? '').verify(
          new X509Certificate(ca.trustBundlePem()).publicKey,
        ),
      );
    }
    const signMs = (performance.now() - started) / rounds;
    t.diagnostic(
      `mean of ${rounds}: generateWorkloadKey ${keyMs.toFixed(2)} ms, createCsr ${csrMs.toFixed(2)} ms, ` +
        `sign ${signMs.toFixed(2)} ms (with a verify of the result)`,
    );
    // Far above what this machine needs; only a pathological slowdown fails.
    assert.ok(signMs < 100 && keyMs < 100);
  });
});
