// The controller's CA service (src/mesh/ca-service/service.ts) over its unix
// socket: a node gets certificates only for identities of its own live pods
// (issue 6: "a node cannot obtain a certificate for a pod on another node"),
// only with its own token, and every malformed request gets a typed answer.
import assert from 'node:assert/strict';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { verifyPeerChain } from '../../src/mesh/identity/verify.js';
import { generateWorkloadKey, type WorkloadKey } from '../../src/mesh/identity/workload.js';
import type { SpiffeId } from '../../src/mesh/identity/spiffe.js';
import { type CaFixture, call, pod, startCaFixture } from './mesh-ca-fixtures.test.js';

const web: SpiffeId = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' };

let fx: CaFixture;
let key: WorkloadKey;
let csr = '';

before(async () => {
  fx = await startCaFixture();
  key = await generateWorkloadKey();
  csr = await key.createCsr(web);
});
after(async () => {
  await fx.close();
});

function ask(
  node: string | undefined,
  body: unknown,
  extra: Partial<Parameters<typeof call>[1]> = {},
): ReturnType<typeof call> {
  return call(fx.socketPath, {
    ...(node === undefined ? {} : { token: fx.tokens[node] }),
    body,
    ...extra,
  });
}

const request = (identity: Partial<SpiffeId> = {}, more: Record<string, unknown> = {}) => ({
  csr,
  identity: { namespace: 'shop', serviceAccount: 'web', ...identity },
  ...more,
});

describe('CA service: issuing', { timeout: 10_000 }, () => {
  it("issues a node the identity of a pod bound to it: a chain that verifies, over the node's key", async () => {
    fx.pods = [pod('web-1', { node: 'node-1' })];
    fx.logs.length = 0;
    const answer = await ask('node-1', request());
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const { certChain, rootCert, notBefore, notAfter, spiffeId } = answer.body as {
      certChain: string[];
      rootCert: string;
      notBefore: string;
      notAfter: string;
      spiffeId: string;
    };
    assert.equal(spiffeId, 'spiffe://cluster.local/ns/shop/sa/web');
    assert.equal(rootCert, fx.ca.trustBundlePem());
    assert.deepEqual(verifyPeerChain(certChain, rootCert, { trustDomain: 'cluster.local' }), web);
    const leaf = new X509Certificate(certChain[0] ?? '');
    assert.ok(leaf.publicKey.equals(createPublicKey(key.privateKeyPem)));
    // 24 h by default, Istio's workload lifetime.
    const lifetime = Date.parse(notAfter) - Date.now();
    assert.ok(Math.abs(lifetime - 24 * 3600_000) < 60_000, `lifetime ${lifetime} ms`);
    assert.ok(Date.parse(notBefore) < Date.now());

    // One line per issuance: node, SPIFFE ID, serial, expiry; never a key or a token.
    assert.equal(fx.logs.length, 1);
    const line = fx.logs[0] ?? '';
    assert.match(line, /issued spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web to node "node-1"/);
    assert.ok(line.includes(leaf.serialNumber.toLowerCase()), line);
    assert.ok(line.includes(notAfter), line);
    assert.ok(!line.includes(fx.tokens['node-1'] ?? '?'));
    assert.ok(!/PRIVATE KEY|BEGIN/.test(line));
  });

  it('honours ttlSeconds, and refuses one beyond the CA maximum as a bad request', async () => {
    fx.pods = [pod('web-1', { node: 'node-1' })];
    const short = await ask('node-1', request({}, { ttlSeconds: 60 }));
    assert.equal(short.status, 200);
    const lifetime = Date.parse(short.body.notAfter as string) - Date.now();
    assert.ok(lifetime > 55_000 && lifetime <= 60_000, `lifetime ${lifetime} ms`);
    const long = await ask('node-1', request({}, { ttlSeconds: 100 * 24 * 3600 }));
    assert.equal(long.status, 400);
    assert.equal(long.body.code, 'STRATA_ERR_CSR_REFUSED');
    assert.match(long.body.message as string, /ttlSeconds must be a whole number of seconds/);
  });

  it('serves the trust bundle to an authenticated node only', async () => {
    const bundle = await call(fx.socketPath, {
      method: 'GET',
      path: '/v1/trust-bundle',
      token: fx.tokens['node-2'],
    });
    assert.equal(bundle.status, 200);
    assert.deepEqual(bundle.body, {
      rootCert: fx.ca.trustBundlePem(),
      trustDomain: 'cluster.local',
    });
    const anonymous = await call(fx.socketPath, { method: 'GET', path: '/v1/trust-bundle' });
    assert.equal(anonymous.status, 401);
  });

  it('confirms a refusal against the API server when its cache has not seen the binding yet', async () => {
    fx.pods = [pod('web-1', { node: undefined, phase: 'Pending' })];
    fx.apiPods = [pod('web-1', { node: 'node-1', phase: 'Pending' })];
    try {
      const answer = await ask('node-1', request());
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    } finally {
      fx.apiPods = undefined;
    }
  });

  it('listens with mode 0600', async () => {
    const info = await stat(fx.socketPath);
    assert.ok(info.isSocket());
    assert.equal(info.mode & 0o777, 0o600);
  });
});

describe('CA service: authorization (403)', { timeout: 10_000 }, () => {
  it('refuses node-1 the identity of a pod bound to node-2, naming both and the identity', async () => {
    fx.pods = [pod('web-1', { node: 'node-2' })];
    const answer = await ask('node-1', request());
    assert.equal(answer.status, 403);
    assert.deepEqual(answer.body, {
      code: 'STRATA_ERR_CA_FORBIDDEN',
      message:
        'Node "node-1" may not obtain spiffe://cluster.local/ns/shop/sa/web: pods running as ' +
        'service account "web" in namespace "shop" are bound to other nodes ("node-2"), not to it',
    });
    // node-2 itself gets it.
    assert.equal((await ask('node-2', request())).status, 200);
  });

  it('refuses the identity of a pod being deleted, or of one that finished', async () => {
    fx.pods = [pod('web-1', { node: 'node-1', deleted: true })];
    const deleting = await ask('node-1', request());
    assert.equal(deleting.status, 403);
    assert.match(deleting.body.message as string, /are 1 being deleted$/);
    fx.pods = [pod('web-1', { node: 'node-1', phase: 'Succeeded' })];
    const finished = await ask('node-1', request());
    assert.equal(finished.status, 403);
    assert.match(finished.body.message as string, /are 1 finished$/);
  });

  it('refuses a service account no pod on the node runs as, and another trust domain', async () => {
    fx.pods = [pod('web-1', { node: 'node-1' })];
    const unknown = await ask('node-1', request({ serviceAccount: 'admin' }));
    assert.equal(unknown.status, 403);
    assert.match(
      unknown.body.message as string,
      /^Node "node-1" may not obtain spiffe:\/\/cluster\.local\/ns\/shop\/sa\/admin: no pod bound to it runs as service account "admin"/,
    );
    const foreign = await ask('node-1', request({ trustDomain: 'other.example' }));
    assert.equal(foreign.status, 403);
    assert.match(foreign.body.message as string, /outside trust domain "cluster.local"/);
  });
});

describe('CA service: authentication (401)', { timeout: 10_000 }, () => {
  it('refuses a request without a token, with a token that is no node’s, and with another scheme', async () => {
    fx.pods = [pod('web-1', { node: 'node-1' })];
    fx.logs.length = 0;
    for (const authorization of [
      undefined,
      'Bearer not-a-node-token',
      `Bearer ${(fx.tokens['node-1'] ?? '').slice(0, -1)}x`,
      `Basic ${fx.tokens['node-1'] ?? ''}`,
    ]) {
      const answer = await call(fx.socketPath, {
        body: request(),
        ...(authorization === undefined ? {} : { authorization }),
      });
      assert.equal(answer.status, 401, String(authorization));
      assert.equal(answer.body.code, 'STRATA_ERR_CA_UNAUTHENTICATED');
      assert.equal(answer.headers['www-authenticate'], 'Bearer');
    }
    // Nothing was issued, and no token reached the log.
    assert.ok(fx.logs.every((line) => !line.includes('issued')));
    assert.ok(fx.logs.every((line) => !line.includes(fx.tokens['node-1'] ?? '?')));
  });

  it('knows a node added to node-tokens.json after it started', async () => {
    const { hashNodeToken } = await import('../../src/mesh/ca-service/tokens.js');
    const { readFile, writeFile } = await import('node:fs/promises');
    const digests = JSON.parse(await readFile(fx.tokensFile, 'utf8')) as Record<string, string>;
    digests['node-3'] = hashNodeToken('token-of-node-3');
    await writeFile(fx.tokensFile, JSON.stringify(digests));
    fx.pods = [pod('web-1', { node: 'node-3' })];
    const answer = await call(fx.socketPath, { token: 'token-of-node-3', body: request() });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  });
});

describe('CA service: malformed requests', { timeout: 10_000 }, () => {
  it('answers 400 with the CA’s reason for a CSR that is not one', async () => {
    fx.pods = [pod('web-1', { node: 'node-1' })];
    const answer = await ask('node-1', request({}, { csr: 'garbage' }));
    assert.equal(answer.status, 400);
    assert.equal(answer.body.code, 'STRATA_ERR_CSR_REFUSED');
    assert.match(answer.body.message as string, /does not parse as PKCS#10/);
  });

  it('answers 400 naming the field for a body that is not the request', async () => {
    const cases: [unknown, RegExp][] = [
      [Buffer.from('{not json'), /^The request body is not JSON/],
      [[1, 2], /must be a JSON object with "csr" and "identity": got an array/],
      [{ identity: { namespace: 'shop', serviceAccount: 'web' } }, /^csr is required$/],
      [{ csr }, /^identity is required/],
      [{ csr, identity: { namespace: 'shop' } }, /^identity\.serviceAccount is required$/],
      [
        { csr, identity: { namespace: 7, serviceAccount: 'web' } },
        /identity\.namespace must be a non-empty string: got number 7/,
      ],
      [
        request({}, { ttlSeconds: 1.5 }),
        /^ttlSeconds must be a whole number of seconds above 0: got number 1.5/,
      ],
      [request({ namespace: 'Shop/..' }), /^The identity is not valid: namespace must be letters/],
    ];
    for (const [body, message] of cases) {
      const answer = await ask('node-1', body);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.equal(answer.body.code, 'STRATA_ERR_CA_BAD_REQUEST');
      assert.match(answer.body.message as string, message);
    }
  });

  it('answers 413 for a body over 64 KiB, declared or streamed', async () => {
    const big = Buffer.alloc(64 * 1024 + 1, 0x20);
    const declared = await ask('node-1', big);
    assert.equal(declared.status, 413);
    assert.equal(declared.body.code, 'STRATA_ERR_CA_BODY_TOO_LARGE');
    const streamed = await ask('node-1', big, { chunked: true });
    assert.equal(streamed.status, 413);
    // Exactly at the cap is read (and then is not JSON).
    const atCap = await ask('node-1', Buffer.alloc(64 * 1024, 0x20));
    assert.equal(atCap.status, 400);
  });

  it('answers 404 for another path and 405 for another method', async () => {
    const missing = await call(fx.socketPath, {
      method: 'GET',
      path: '/v1/keys',
      token: fx.tokens['node-1'],
    });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 'STRATA_ERR_CA_NOT_FOUND');
    const wrong = await call(fx.socketPath, {
      method: 'GET',
      path: '/v1/certificates',
      token: fx.tokens['node-1'],
    });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.allow, 'POST');
    assert.equal(wrong.body.code, 'STRATA_ERR_CA_METHOD_NOT_ALLOWED');
  });
});
