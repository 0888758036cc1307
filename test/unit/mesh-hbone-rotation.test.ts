// Certificate rotation never drops a connection (issue 6; Istio rotates
// workload certificates at half life): after HboneClient.updateCertificate a
// long-lived stream keeps flowing over its old session, while a new stream
// goes over a new session that presents the new certificate; the old session
// closes once its last stream ends. The server side rotates the same way.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { ClientHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { HboneClient } from '../../src/mesh/hbone/client.js';
import type { HboneConnectRequest } from '../../src/mesh/hbone/server.js';
import type { WorkloadCertificate } from '../../src/mesh/identity/workload.js';
import {
  closeServer,
  dialDestination,
  echoServer,
  hboneServer,
  identity,
  readAll,
  sha256,
  testCa,
  waitForEvent,
  type TestCa,
} from './mesh-hbone-fixtures.test.js';

const frontend = identity('shop', 'frontend');
const backend = identity('shop', 'backend');

function serialOf(certificate: WorkloadCertificate): string {
  return new X509Certificate(certificate.certChainPem[0] ?? '').serialNumber;
}

/** Writes 64 KiB every few milliseconds until stopped; resolves with everything written. */
function keepWriting(stream: ClientHttp2Stream): { stop: () => Promise<Buffer> } {
  const written: Buffer[] = [];
  let stopped = false;
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const tick = () => {
    if (stopped) {
      finish();
      return;
    }
    const chunk = Buffer.alloc(64 * 1024, written.length % 251);
    written.push(chunk);
    stream.write(chunk);
    setTimeout(tick, 5);
  };
  tick();
  return {
    stop: async () => {
      stopped = true;
      await done;
      return Buffer.concat(written);
    },
  };
}

describe('HBONE certificate rotation', () => {
  let ca: TestCa;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    ca = await testCa();
    echo = await echoServer();
  });
  after(async () => {
    await closeServer(echo.server);
    await ca.cleanup();
  });

  it('keeps a long stream flowing across updateCertificate; new streams use the new certificate', async () => {
    const requests: HboneConnectRequest[] = [];
    const hbone = await hboneServer(ca, await ca.issue(backend), {
      handler: (request) => {
        requests.push(request);
        return dialDestination(request);
      },
    });
    const client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    const oldCertificate = await ca.issue(frontend);
    const newCertificate = await ca.issue(frontend);
    assert.notEqual(serialOf(oldCertificate), serialOf(newCertificate));
    try {
      const target = { destination: echo.address, peer: hbone.address, expectedIdentity: backend };
      const long = await client.connect({ ...target, source: oldCertificate });
      const echoed = readAll(long);
      const writer = keepWriting(long);
      await new Promise((resolve) => setTimeout(resolve, 100));

      client.updateCertificate(frontend, newCertificate);
      const fresh = await client.connect({ ...target, source: oldCertificate });
      fresh.end('after rotation');
      assert.equal((await readAll(fresh)).toString(), 'after rotation');

      // The long stream is still going, over the old session.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const sessions = client.sessions();
      assert.equal(sessions.length, 2);
      const retired = sessions.find((s) => s.retired);
      assert.equal(retired?.certificateSerial, serialOf(oldCertificate));
      assert.equal(retired.streams, 1);

      const sent = await writer.stop();
      long.end();
      const received = await echoed;
      assert.ok(sent.length > 10 * 64 * 1024, `only ${sent.length} bytes were sent`);
      assert.equal(received.length, sent.length);
      assert.equal(sha256(received), sha256(sent));

      // The server saw the old certificate on the long stream and the new one on the fresh.
      assert.deepEqual(
        requests.map((r) => r.sourceCertificate.serialNumber),
        [serialOf(oldCertificate), serialOf(newCertificate)],
      );
      // Its last stream done, the old session closes; the new one stays pooled.
      await waitForEvent(hbone.events, (e) => e.type === 'session-closed');
      assert.deepEqual(
        client.sessions().map((s) => [s.certificateSerial, s.retired]),
        [[serialOf(newCertificate), false]],
      );
    } finally {
      await client.close();
      await hbone.server.close();
    }
  });

  it('on the server, presents a new certificate on new connections and keeps old sessions', async () => {
    let current = await ca.issue(backend);
    const first = current;
    const hbone = await hboneServer(ca, current, {
      certificateFor: () => ({ certificate: current }),
    });
    const target = { destination: echo.address, peer: hbone.address, expectedIdentity: backend };
    const presented = (stream: ClientHttp2Stream) =>
      (stream.session?.socket as TLSSocket).getPeerCertificate().serialNumber;
    // Two clients, so the second gets its own connection.
    const before = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    const after = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const old = await before.connect({ ...target, source: await ca.issue(frontend) });
      current = await ca.issue(backend);
      const fresh = await after.connect({ ...target, source: await ca.issue(frontend) });
      assert.equal(presented(old), serialOf(first));
      assert.equal(presented(fresh), serialOf(current));
      old.end('still here');
      assert.equal((await readAll(old)).toString(), 'still here');
      fresh.end();
    } finally {
      await before.close();
      await after.close();
      await hbone.server.close();
    }
  });
});
