// Who may use an HBONE tunnel (src/mesh/hbone): each end checks the other's
// SPIFFE ID, as Istio's HBONE requires. A server proving another identity
// than the client expects, a client certificate from another CA or trust
// domain, and an expired one are all refused before any byte reaches a
// destination; and the proxy's own refusals reach the client as statuses.
import assert from 'node:assert/strict';
import { connect as connectHttp2 } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { HboneClient } from '../../src/mesh/hbone/client.js';
import { HboneConnectError } from '../../src/mesh/hbone/errors.js';
import type {
  HboneConnectRequest,
  HboneServerEvent,
  InboundConnection,
} from '../../src/mesh/hbone/server.js';
import { clientTlsOptions } from '../../src/mesh/hbone/tls.js';
import {
  closeServer,
  dialDestination,
  echoServer,
  hboneServer,
  identity,
  testCa,
  waitForEvent,
  type TestCa,
} from './mesh-hbone-fixtures.test.js';

const frontend = identity('shop', 'frontend');
const backend = identity('shop', 'backend');

type Refused = Extract<HboneServerEvent, { type: 'connection-refused' }>;
const isRefused = (e: HboneServerEvent): e is Refused => e.type === 'connection-refused';

async function rejection(promise: Promise<unknown>): Promise<HboneConnectError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(
      error instanceof HboneConnectError,
      `expected HboneConnectError, got ${String(error)}`,
    );
    return error;
  }
  assert.fail('the connect succeeded');
}

describe('HBONE identity checks', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let foreignCa: TestCa;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    [ca, otherCa, foreignCa, echo] = await Promise.all([
      testCa(),
      testCa(),
      testCa('other.example'),
      echoServer(),
    ]);
  });
  after(async () => {
    await Promise.all([
      ca.cleanup(),
      otherCa.cleanup(),
      foreignCa.cleanup(),
      closeServer(echo.server),
    ]);
  });

  it('refuses a server that proves another identity than expected, before any CONNECT', async () => {
    let handled = 0;
    const hbone = await hboneServer(ca, await ca.issue(identity('shop', 'impostor')), {
      handler: () => {
        handled += 1;
        return Promise.resolve({ refuse: 500, reason: 'unreachable' });
      },
    });
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const error = await rejection(
        client.connect({
          source: await ca.issue(frontend),
          destination: echo.address,
          peer: hbone.address,
          expectedIdentity: backend,
        }),
      );
      assert.equal(error.reason, 'peer-identity');
      assert.equal(error.code, 'STRATA_ERR_HBONE_CONNECT');
      assert.match(error.message, /spiffe:\/\/cluster\.local\/ns\/shop\/sa\/impostor/);
      assert.match(error.message, /expected spiffe:\/\/cluster\.local\/ns\/shop\/sa\/backend/);
      assert.equal(handled, 0);
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('accepts any one of several expected identities', async () => {
    const hbone = await hboneServer(ca, await ca.issue(identity('shop', 'waypoint')));
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const tunnel = await client.connect({
        source: await ca.issue(frontend),
        destination: echo.address,
        peer: hbone.address,
        expectedIdentity: [backend, identity('shop', 'waypoint')],
      });
      tunnel.end();
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('refuses a server whose chain does not lead to the trust bundle', async () => {
    const hbone = await hboneServer(otherCa, await otherCa.issue(backend));
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const error = await rejection(
        client.connect({
          source: await ca.issue(frontend),
          destination: echo.address,
          peer: hbone.address,
          expectedIdentity: backend,
        }),
      );
      assert.equal(error.reason, 'tls');
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('refuses a client certificate from another CA', async () => {
    const hbone = await hboneServer(ca, await ca.issue(backend));
    // The client trusts the server; the server does not trust the client's CA.
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const error = await rejection(
        client.connect({
          source: await otherCa.issue(frontend),
          destination: echo.address,
          peer: hbone.address,
          expectedIdentity: backend,
        }),
      );
      assert.equal(error.reason, 'tls', error.message);
      const refused = await waitForEvent(hbone.events, isRefused);
      assert.equal(refused.reason, 'tls');
      assert.equal(hbone.server.sessionCount(), 0);
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('refuses a client of a foreign trust domain even when its root is trusted', async () => {
    // A federated bundle: both roots, so the chain verifies; the trust domain does not.
    const bundle = `${ca.trustBundlePem}\n${foreignCa.trustBundlePem}`;
    const hbone = await hboneServer(ca, await ca.issue(backend), { trustBundlePem: bundle });
    const client = new HboneClient({ trustBundlePem: bundle });
    try {
      const error = await rejection(
        client.connect({
          source: await foreignCa.issue(identity('shop', 'frontend', 'other.example')),
          destination: echo.address,
          peer: hbone.address,
          expectedIdentity: backend,
        }),
      );
      assert.equal(error.reason, 'tls', error.message);
      const refused = await waitForEvent(hbone.events, isRefused);
      assert.equal(refused.reason, 'peer-identity');
      assert.match(String(refused.error), /outside trust domain "cluster\.local"/);
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('refuses an expired client certificate', async () => {
    const hbone = await hboneServer(ca, await ca.issue(backend));
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    const yesterday = new Date(Date.now() - 24 * 3600_000);
    const expired = await ca.issueAt(yesterday, frontend, { ttlSeconds: 3600 });
    assert.ok(expired.notAfter.getTime() < Date.now());
    try {
      const error = await rejection(
        client.connect({
          source: expired,
          destination: echo.address,
          peer: hbone.address,
          expectedIdentity: backend,
        }),
      );
      assert.equal(error.reason, 'tls', error.message);
      const refused = await waitForEvent(hbone.events, isRefused);
      assert.equal(refused.reason, 'tls');
      assert.match(String(refused.error), /CERT_HAS_EXPIRED/);
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('presents the certificate certificateFor picks for where the connection was addressed', async () => {
    // As ztunnel's inbound: the certificate of the workload at the connection's original destination.
    const byDestination = new Map([
      ['10.244.2.8', await ca.issue(identity('shop', 'cart'))],
      ['10.244.2.9', await ca.issue(backend)],
    ]);
    const seen: InboundConnection[] = [];
    const requests: HboneConnectRequest[] = [];
    let nextDestination = '10.244.2.9';
    const hbone = await hboneServer(ca, await ca.issue(identity('shop', 'unused')), {
      certificateFor: (connection) => {
        seen.push(connection);
        const certificate = byDestination.get(nextDestination);
        const originalDestination = { address: nextDestination, port: 15008 };
        return certificate === undefined ? undefined : { certificate, originalDestination };
      },
      handler: (request) => {
        requests.push(request);
        return dialDestination(request);
      },
    });
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const source = await ca.issue(frontend);
      const target = { source, destination: echo.address, peer: hbone.address };
      const tunnel = await client.connect({ ...target, expectedIdentity: backend });
      tunnel.end();
      // A new connection (another client: this one would reuse its session) lands on "cart".
      nextDestination = '10.244.2.8';
      const other = new HboneClient({ trustBundlePem: ca.trustBundlePem });
      const error = await rejection(other.connect({ ...target, expectedIdentity: backend }));
      await other.close();
      assert.equal(error.reason, 'peer-identity');
      assert.match(error.message, /sa\/cart/);

      assert.deepEqual(seen[0]?.local, hbone.address);
      assert.equal(seen[0]?.remote.address, '127.0.0.1');
      assert.equal(requests.length, 1);
      assert.deepEqual(requests[0]?.local, { address: '10.244.2.9', port: 15008 });
      assert.deepEqual(requests[0]?.localIdentity, backend);
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('refuses a connection to an address the proxy has no certificate for', async () => {
    const hbone = await hboneServer(ca, await ca.issue(backend), {
      certificateFor: () => undefined,
    });
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const error = await rejection(
        client.connect({
          source: await ca.issue(frontend),
          destination: echo.address,
          peer: hbone.address,
          expectedIdentity: backend,
        }),
      );
      assert.equal(error.reason, 'tls', error.message);
      assert.equal((await waitForEvent(hbone.events, isRefused)).reason, 'no-certificate');
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it("maps the proxy's refusal to the status and a typed client error", async () => {
    const hbone = await hboneServer(ca, await ca.issue(backend), {
      handler: () => Promise.resolve({ refuse: 401, reason: 'denied by policy ns/shop/deny-all' }),
    });
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    const source = await ca.issue(frontend);
    try {
      const error = await rejection(
        client.connect({
          source,
          destination: echo.address,
          peer: hbone.address,
          expectedIdentity: backend,
        }),
      );
      assert.equal(error.reason, 'refused');
      assert.equal(error.status, 401);
      assert.match(error.message, /status 401: denied by authorization policy/);
      const refusal = await waitForEvent(
        hbone.events,
        (e): e is Extract<HboneServerEvent, { type: 'stream-refused' }> =>
          e.type === 'stream-refused',
      );
      assert.equal(refusal.reason, 'denied by policy ns/shop/deny-all');
      assert.deepEqual(refusal.request?.source, frontend);
      // The session survives a refused stream: the next CONNECT reuses it.
      await rejection(
        client.connect({
          source,
          destination: echo.address,
          peer: hbone.address,
          expectedIdentity: backend,
        }),
      );
      assert.equal(
        hbone.events.filter((e) => e.type === 'session-opened').length,
        1,
        'one session for both',
      );
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('answers 405 to anything but CONNECT and 400 to an authority that is not <ip>:<port>', async () => {
    const hbone = await hboneServer(ca, await ca.issue(backend));
    const source = await ca.issue(frontend);
    const tls = clientTlsOptions(source, ca.trustBundlePem, [backend]);
    const session = connectHttp2(`https://127.0.0.1:${hbone.address.port}`, tls);
    const status = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const stream = session.request(headers);
        stream.once('response', (response) => {
          resolve(Number(response[':status']));
          stream.close();
        });
        stream.once('error', reject);
        if (headers[':method'] === 'GET') stream.end();
      });
    try {
      assert.equal(await status({ ':method': 'GET', ':path': '/' }), 405);
      assert.equal(await status({ ':method': 'CONNECT', ':authority': 'backend.shop:80' }), 400);
      assert.equal(await status({ ':method': 'CONNECT', ':authority': '10.0.0.1:99999' }), 400);
      assert.equal(await status({ ':method': 'CONNECT', ':authority': '::1:80' }), 400);
    } finally {
      session.destroy();
      await hbone.server.close();
    }
  });
});
