// The HBONE client's sessions (src/mesh/hbone/client.ts): streams of one
// source/destination identity pair through one peer share one mTLS session,
// as Istio's HBONE multiplexes them; other pairs get their own; a session
// past its stream limit gets a sibling; an idle one is released; and one the
// peer sends GOAWAY on or drops is replaced while its streams run on.
import assert from 'node:assert/strict';
import type { ClientHttp2Stream } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { HboneClient } from '../../src/mesh/hbone/client.js';
import {
  closeServer,
  echoServer,
  hboneServer,
  identity,
  readAll,
  testCa,
  waitForEvent,
  type TestCa,
} from './mesh-hbone-fixtures.test.js';
import type { WorkloadCertificate } from '../../src/mesh/identity/workload.js';

const frontend = identity('shop', 'frontend');
const checkout = identity('shop', 'checkout');
const backend = identity('shop', 'backend');

/** Writes `text` and resolves with what comes back, leaving the stream open. */
function roundTrip(stream: ClientHttp2Stream, text: string): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    const onData = (chunk: Buffer) => {
      received += chunk.toString();
      if (received.length >= text.length) {
        stream.off('data', onData);
        resolve(received);
      }
    };
    stream.on('data', onData);
    stream.write(text);
  });
}

describe('HBONE session pool', () => {
  let ca: TestCa;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let frontendCert: WorkloadCertificate;
  let checkoutCert: WorkloadCertificate;
  let backendCert: WorkloadCertificate;
  before(async () => {
    ca = await testCa();
    echo = await echoServer();
    [frontendCert, checkoutCert, backendCert] = await Promise.all([
      ca.issue(frontend),
      ca.issue(checkout),
      ca.issue(backend),
    ]);
  });
  after(async () => {
    await closeServer(echo.server);
    await ca.cleanup();
  });

  it('multiplexes 50 parallel streams of one identity pair over one session', async () => {
    const hbone = await hboneServer(ca, backendCert);
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const tunnels = await Promise.all(
        Array.from({ length: 50 }, () =>
          client.connect({
            source: frontendCert,
            destination: echo.address,
            peer: hbone.address,
            expectedIdentity: backend,
          }),
        ),
      );
      const answers = await Promise.all(
        tunnels.map((tunnel, index) => roundTrip(tunnel, `stream ${index}`)),
      );
      assert.deepEqual(
        answers,
        tunnels.map((_tunnel, index) => `stream ${index}`),
      );
      const sessions = client.sessions();
      assert.equal(sessions.length, 1);
      assert.equal(sessions[0]?.streams, 50);
      assert.equal(hbone.server.sessionCount(), 1);
      assert.equal(hbone.events.filter((e) => e.type === 'session-opened').length, 1);
      await Promise.all(tunnels.map((tunnel) => (tunnel.end(), readAll(tunnel))));
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('gives each source identity its own session', async () => {
    const hbone = await hboneServer(ca, backendCert);
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const target = { destination: echo.address, peer: hbone.address, expectedIdentity: backend };
      const tunnels = await Promise.all([
        client.connect({ ...target, source: frontendCert }),
        client.connect({ ...target, source: checkoutCert }),
        client.connect({ ...target, source: frontendCert }),
      ]);
      assert.deepEqual(
        client
          .sessions()
          .map((s) => [s.source, s.streams])
          .sort(),
        [
          ['spiffe://cluster.local/ns/shop/sa/checkout', 1],
          ['spiffe://cluster.local/ns/shop/sa/frontend', 2],
        ],
      );
      assert.equal(hbone.server.sessionCount(), 2);
      for (const tunnel of tunnels) tunnel.end();
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('opens a sibling session when one is at its stream limit', async () => {
    const hbone = await hboneServer(ca, backendCert);
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem, maxStreamsPerSession: 10 });
    try {
      const tunnels = await Promise.all(
        Array.from({ length: 25 }, () =>
          client.connect({
            source: frontendCert,
            destination: echo.address,
            peer: hbone.address,
            expectedIdentity: backend,
          }),
        ),
      );
      assert.deepEqual(
        client
          .sessions()
          .map((s) => s.streams)
          .sort(),
        [10, 10, 5],
      );
      for (const tunnel of tunnels) tunnel.end();
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('releases a session left without streams for idleTimeoutMs', async () => {
    const hbone = await hboneServer(ca, backendCert);
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem, idleTimeoutMs: 100 });
    try {
      const tunnel = await client.connect({
        source: frontendCert,
        destination: echo.address,
        peer: hbone.address,
        expectedIdentity: backend,
      });
      tunnel.end('bye');
      await readAll(tunnel);
      await waitForEvent(hbone.events, (e) => e.type === 'session-closed');
      assert.deepEqual(client.sessions(), []);
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('keeps streams of a session the peer sends GOAWAY on, and opens a new one for the next', async () => {
    const first = await hboneServer(ca, backendCert);
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    let second: Awaited<ReturnType<typeof hboneServer>> | undefined;
    try {
      const target = {
        source: frontendCert,
        destination: echo.address,
        peer: first.address,
        expectedIdentity: backend,
      };
      const draining = await client.connect(target);
      assert.equal(await roundTrip(draining, 'before'), 'before');
      // The first proxy drains: GOAWAY, no new streams, open ones run to their end.
      const closed = first.server.close({ graceful: true });
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(client.sessions()[0]?.retired, true);
      assert.equal(await roundTrip(draining, 'after goaway'), 'after goaway');
      // A new proxy on the same port (a restart) gets a new session.
      second = await hboneServer(ca, backendCert, { port: first.address.port });
      const fresh = await client.connect(target);
      assert.equal(await roundTrip(fresh, 'fresh'), 'fresh');
      assert.equal(second.server.sessionCount(), 1);
      draining.end();
      await readAll(draining);
      await closed;
      fresh.end();
      await readAll(fresh);
    } finally {
      await client.close();
      await first.server.close();
      await second?.server.close();
    }
  });

  it('replaces a session the peer dropped', async () => {
    const first = await hboneServer(ca, backendCert);
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    let second: Awaited<ReturnType<typeof hboneServer>> | undefined;
    try {
      const target = {
        source: frontendCert,
        destination: echo.address,
        peer: first.address,
        expectedIdentity: backend,
      };
      const lost = await client.connect(target);
      lost.on('error', () => undefined);
      await first.server.close();
      await new Promise((resolve) => lost.once('close', resolve));
      second = await hboneServer(ca, backendCert, { port: first.address.port });
      const fresh = await client.connect(target);
      assert.equal(await roundTrip(fresh, 'again'), 'again');
      fresh.end();
    } finally {
      await client.close();
      await second?.server.close();
    }
  });
});
