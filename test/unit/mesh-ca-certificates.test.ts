// A node's certificate manager (src/mesh/certificates/manager.ts) against a
// real CA service on a unix socket: one request per identity however many
// ask at once, rotation at half life with the old certificate in use until
// the new one arrives, retries while the CA cannot answer, and a refusal
// surfaced as CertificateRefusedError.
import assert from 'node:assert/strict';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import {
  CertificateClientError,
  CertificateRefusedError,
} from '../../src/mesh/certificates/errors.js';
import {
  CertificateManager,
  type CertificateManagerOptions,
} from '../../src/mesh/certificates/manager.js';
import type { SpiffeId } from '../../src/mesh/identity/spiffe.js';
import { verifyPeerChain } from '../../src/mesh/identity/verify.js';
import type { WorkloadCertificate } from '../../src/mesh/identity/workload.js';
import { type CaFixture, pod, startCaFixture } from './mesh-ca-fixtures.test.js';

const id = (serviceAccount: string): SpiffeId => ({
  trustDomain: 'cluster.local',
  namespace: 'shop',
  serviceAccount,
});

let fx: CaFixture;
const managers: CertificateManager[] = [];

before(async () => {
  fx = await startCaFixture();
  fx.pods = ['web', 'api', 'db', 'cache', 'queue'].map((sa) =>
    pod(`${sa}-1`, { serviceAccount: sa, node: 'node-1' }),
  );
});
after(async () => {
  await fx.close();
});
afterEach(() => {
  for (const manager of managers.splice(0)) manager.close();
});

function manager(options: Partial<CertificateManagerOptions> = {}): {
  manager: CertificateManager;
  logs: string[];
} {
  const logs: string[] = [];
  const made = new CertificateManager({
    caSocket: fx.socketPath,
    tokenFile: fx.tokenFile('node-1'),
    trustDomain: 'cluster.local',
    log: (line) => logs.push(line),
    random: () => 0,
    ...options,
  });
  managers.push(made);
  return { manager: made, logs };
}

/** How many certificates the CA has issued for `identity` since the fixture started. */
function issued(identity: SpiffeId): number {
  const spiffeId = `spiffe://${identity.trustDomain}/ns/${identity.namespace}/sa/${identity.serviceAccount} `;
  return fx.logs.filter((line) => line.startsWith(`ca: issued ${spiffeId}`)).length;
}

function serial(cert: WorkloadCertificate): string {
  return new X509Certificate(cert.certChainPem[0] ?? '').serialNumber;
}

// A request that never settles fails the test instead of hanging the run.
describe('CertificateManager', { timeout: 20_000 }, () => {
  it('obtains a certificate that proves the identity over a key of its own, and keeps it', async () => {
    const { manager: certificates } = manager();
    const web = id('web');
    const cert = await certificates.certificateFor(web);
    assert.deepEqual(cert.identity, web);
    assert.deepEqual(
      verifyPeerChain(cert.certChainPem, cert.rootPem, {
        trustDomain: 'cluster.local',
        expected: web,
      }),
      web,
    );
    const leaf = new X509Certificate(cert.certChainPem[0] ?? '');
    assert.ok(leaf.publicKey.equals(createPublicKey(cert.privateKeyPem)));
    assert.equal(await certificates.trustBundle(), fx.ca.trustBundlePem());

    // Cached: the same certificate, no second request.
    assert.equal(await certificates.certificateFor(web), cert);
    assert.equal(issued(web), 1);
    assert.deepEqual(certificates.identities(), [web]);
  });

  it('shares one request among concurrent callers', async () => {
    const { manager: certificates } = manager();
    const api = id('api');
    const before = issued(api);
    const certs = await Promise.all(
      Array.from({ length: 8 }, () => certificates.certificateFor(api)),
    );
    assert.ok(certs.every((cert) => cert === certs[0]));
    assert.equal(issued(api) - before, 1);
  });

  it('surfaces a 403 as CertificateRefusedError, without retrying', async () => {
    const { manager: certificates, logs } = manager({ retryDelayMs: 10 });
    const stranger = id('stranger');
    const error = await certificates.certificateFor(stranger).then(
      () => assert.fail('the CA issued an identity no pod on the node runs as'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof CertificateRefusedError, String(error));
    assert.equal(error.code, 'STRATA_ERR_CERTIFICATE_REFUSED');
    assert.deepEqual(error.identity, stranger);
    assert.match(
      error.message,
      /^Node "node-1" may not obtain spiffe:\/\/cluster\.local\/ns\/shop\/sa\/stranger/,
    );
    assert.ok(!logs.some((line) => line.includes('retrying')));
    // Nothing is kept: once a pod runs as it, the next call obtains it.
    fx.pods.push(pod('stranger-1', { serviceAccount: 'stranger', node: 'node-1' }));
    assert.deepEqual((await certificates.certificateFor(stranger)).identity, stranger);
  });

  it('refuses node-1 what only node-2 runs, while node-2 obtains it', async () => {
    fx.pods.push(pod('remote-1', { serviceAccount: 'remote', node: 'node-2' }));
    const { manager: nodeOne } = manager();
    const { manager: nodeTwo } = manager({ tokenFile: fx.tokenFile('node-2') });
    await assert.rejects(nodeOne.certificateFor(id('remote')), CertificateRefusedError);
    assert.deepEqual((await nodeTwo.certificateFor(id('remote'))).identity, id('remote'));
  });

  it('rotates at half life, keeping the old certificate in use until the new one arrives', async () => {
    const { manager: certificates, logs } = manager({ ttlSeconds: 4 });
    const db = id('db');
    const cache = id('cache');
    const rotated: [SpiffeId, WorkloadCertificate, number][] = [];
    certificates.on('rotated', (identity, cert) => rotated.push([identity, cert, Date.now()]));
    const first = await certificates.certificateFor(db);
    const received = Date.now();
    await certificates.certificateFor(cache);
    // The pod running as `cache` leaves the node: its certificate is no longer rotated.
    certificates.release(cache);
    const cacheIssued = issued(cache);
    // Half its life from when it came (random() = 0: no jitter). X.509 times are whole
    // seconds, so the 4 s asked for are 3-4 s: half is 1.5-2 s.
    const due = received + (first.notAfter.getTime() - received) / 2;
    assert.ok(due - received >= 1400 && due - received <= 2000, `due after ${due - received} ms`);

    await sleep(due - 300 - Date.now());
    assert.equal(await certificates.certificateFor(db), first, 'replaced before half life');
    while (rotated.length === 0 && Date.now() < due + 3000) await sleep(20);
    const [[identity, second, at] = []] = rotated;
    assert.deepEqual(identity, db);
    assert.ok(second !== undefined && at !== undefined, logs.join('\n'));
    // At half life, give or take the request's own time.
    assert.ok(at >= due - 50 && at < due + 1000, `rotated ${at - due} ms from half life`);
    assert.notEqual(serial(second), serial(first));
    assert.notEqual(second.privateKeyPem, first.privateKeyPem);
    assert.equal(await certificates.certificateFor(db), second);
    assert.ok(
      logs.some((line) =>
        line.startsWith('certificates: rotated spiffe://cluster.local/ns/shop/sa/db'),
      ),
    );
    assert.equal(issued(cache), cacheIssued, 'a released identity was rotated');
    assert.deepEqual(certificates.identities(), [db]);
  });

  it('retries with backoff while the CA is unreachable, and obtains once it serves', async () => {
    const restarted = await startCaFixture({ listen: false });
    try {
      restarted.pods = [pod('web-1', { node: 'node-1' })];
      const logs: string[] = [];
      const certificates = new CertificateManager({
        caSocket: restarted.socketPath,
        tokenFile: restarted.tokenFile('node-1'),
        trustDomain: 'cluster.local',
        log: (line) => logs.push(line),
        retryDelayMs: 20,
        random: () => 0,
      });
      managers.push(certificates);
      const pending = certificates.certificateFor(id('web'));
      await sleep(200);
      await restarted.listen();
      const cert = await pending;
      assert.deepEqual(cert.identity, id('web'));
      const retries = logs.filter((line) => line.includes('retrying in'));
      assert.ok(retries.length >= 2, logs.join('\n'));
      assert.match(
        retries[0] ?? '',
        /cannot obtain spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web \(attempt 1\): Cannot reach the CA/,
      );
      // Backoff: the delays grow.
      const delays = retries.map((line) => Number(/retrying in (\d+) ms/.exec(line)?.[1]));
      assert.ok((delays[1] ?? 0) > (delays[0] ?? 0), delays.join(', '));
    } finally {
      await restarted.close();
    }
  });

  it('retries an unknown token (401) until closed, then rejects as cancelled', async () => {
    const { manager: certificates, logs } = manager({
      tokenFile: join(fx.dir, 'nodes', 'node-9', 'ca-token'),
      retryDelayMs: 20,
    });
    const pending = certificates.certificateFor(id('web'));
    await sleep(100);
    certificates.close();
    const error = await pending.then(
      () => assert.fail('obtained a certificate without a token'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof CertificateClientError, String(error));
    assert.equal(error.code, 'STRATA_ERR_CERTIFICATE_CANCELLED');
    assert.ok(
      logs.some((line) => line.includes("Cannot read the node's CA token")),
      logs.join('\n'),
    );
    await assert.rejects(
      certificates.certificateFor(id('web')),
      /the certificate manager is closed/,
    );
  });

  it('retries a wrong token (401), as a token replaced later may fix it', async () => {
    const { writeFile, mkdir } = await import('node:fs/promises');
    const file = join(fx.dir, 'nodes', 'node-1b', 'ca-token');
    await mkdir(join(fx.dir, 'nodes', 'node-1b'), { recursive: true });
    await writeFile(file, 'wrong\n');
    const { manager: certificates, logs } = manager({ tokenFile: file, retryDelayMs: 20 });
    const pending = certificates.certificateFor(id('web'));
    await sleep(80);
    await writeFile(file, `${fx.tokens['node-1'] ?? ''}\n`);
    assert.deepEqual((await pending).identity, id('web'));
    assert.ok(
      logs.some((line) => /\(401 STRATA_ERR_CA_UNAUTHENTICATED\)/.test(line)),
      logs.join('\n'),
    );
  });
});
