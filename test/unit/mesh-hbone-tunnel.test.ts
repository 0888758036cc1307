// Bytes through an HBONE tunnel (src/mesh/hbone): client → mTLS HTTP/2
// CONNECT → server → TCP destination on loopback, with real certificates from
// the identity module. Both directions intact, each closing on its own
// (END_STREAM ↔ FIN), and resets carried across (RST_STREAM ↔ TCP RST).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HboneClient } from '../../src/mesh/hbone/client.js';
import { relay } from '../../src/mesh/hbone/relay.js';
import type { HboneConnectRequest, HboneServerEvent } from '../../src/mesh/hbone/server.js';
import {
  closeServer,
  dialDestination,
  echoServer,
  hboneServer,
  identity,
  listen,
  readAll,
  sha256,
  testCa,
  waitForEvent,
  type TestCa,
} from './mesh-hbone-fixtures.test.js';

const client = identity('shop', 'frontend');
const server = identity('shop', 'backend');

describe('HBONE tunnel', () => {
  let ca: TestCa;
  before(async () => {
    ca = await testCa();
  });
  after(async () => {
    await ca.cleanup();
  });

  it('carries 1 MB of random bytes both ways intact', async () => {
    const echo = await echoServer();
    const hbone = await hboneServer(ca, await ca.issue(server));
    const hboneClient = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const tunnel = await hboneClient.connect({
        source: await ca.issue(client),
        destination: echo.address,
        peer: hbone.address,
        expectedIdentity: server,
      });
      const payload = randomBytes(1024 * 1024);
      const echoed = readAll(tunnel);
      tunnel.end(payload);
      const received = await echoed;
      assert.equal(received.length, payload.length);
      assert.equal(sha256(received), sha256(payload));
      const closed = await waitForEvent(
        hbone.events,
        (e): e is Extract<HboneServerEvent, { type: 'stream-closed' }> =>
          e.type === 'stream-closed',
      );
      assert.equal(closed.result.outcome, 'closed');
      assert.equal(closed.result.tunnelToSocket, payload.length);
      assert.equal(closed.result.socketToTunnel, payload.length);
    } finally {
      await hboneClient.close();
      await hbone.server.close();
      await closeServer(echo.server);
    }
  });

  it('tells the handler who connected, to where, from which address', async () => {
    const echo = await echoServer();
    const requests: HboneConnectRequest[] = [];
    const serverCertificate = await ca.issue(server);
    const hbone = await hboneServer(ca, serverCertificate, {
      handler: (request) => {
        requests.push(request);
        return dialDestination(request);
      },
    });
    const hboneClient = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const tunnel = await hboneClient.connect({
        source: await ca.issue(client),
        destination: echo.address,
        peer: hbone.address,
        expectedIdentity: server,
        sourceAddress: '10.244.1.7',
        headers: { baggage: 'k8s.namespace.name=shop' },
      });
      tunnel.end();
      await readAll(tunnel);
      const [request] = requests;
      assert.ok(request);
      assert.deepEqual(request.source, client);
      assert.deepEqual(request.destination, echo.address);
      assert.deepEqual(request.localIdentity, server);
      assert.equal(request.local.port, hbone.address.port);
      assert.equal(request.peer.address, '127.0.0.1');
      assert.equal(request.headers.forwarded, 'for=10.244.1.7');
      assert.equal(request.headers.baggage, 'k8s.namespace.name=shop');
      assert.equal(request.headers[':method'], 'CONNECT');
    } finally {
      await hboneClient.close();
      await hbone.server.close();
      await closeServer(echo.server);
    }
  });

  it('half-closes: the destination still answers after the client finished sending', async () => {
    // The destination reads until FIN, then answers with what it counted and closes.
    const counted = createServer({ allowHalfOpen: true }, (socket) => {
      let bytes = 0;
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
      socket.on('end', () => {
        setTimeout(() => socket.end(`got ${bytes}`), 50);
      });
    });
    const destination = await listen(counted);
    const hbone = await hboneServer(ca, await ca.issue(server));
    const hboneClient = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const tunnel = await hboneClient.connect({
        source: await ca.issue(client),
        destination,
        peer: hbone.address,
        expectedIdentity: server,
      });
      const answer = readAll(tunnel);
      tunnel.end(Buffer.alloc(70_000, 1));
      assert.equal((await answer).toString(), 'got 70000');
    } finally {
      await hboneClient.close();
      await hbone.server.close();
      await closeServer(counted);
    }
  });

  it('relays a downstream socket: FIN from the app reaches the destination and the answer comes back', async () => {
    const echo = await echoServer();
    const hbone = await hboneServer(ca, await ca.issue(server));
    const hboneClient = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    const source = await ca.issue(client);
    // The outbound side of a proxy: accept the app's connection, tunnel it, relay.
    const outbound = createServer({ allowHalfOpen: true }, (downstream) => {
      void hboneClient
        .connect({
          source,
          destination: echo.address,
          peer: hbone.address,
          expectedIdentity: server,
        })
        .then((tunnel) => relay(tunnel, downstream));
    });
    const outboundAddress = await listen(outbound);
    try {
      const app = connect({ ...outboundAddress, host: '127.0.0.1', allowHalfOpen: true });
      const payload = randomBytes(300_000);
      const back = readAll(app);
      app.end(payload);
      assert.equal(sha256(await back), sha256(payload));
    } finally {
      await hboneClient.close();
      await hbone.server.close();
      await closeServer(outbound);
      await closeServer(echo.server);
    }
  });

  it('turns a reset destination into RST_STREAM at the client, with no END_STREAM first', async () => {
    const resetting = createServer((socket) => {
      socket.once('data', () => socket.resetAndDestroy());
    });
    const destination = await listen(resetting);
    const hbone = await hboneServer(ca, await ca.issue(server));
    const hboneClient = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    try {
      const tunnel = await hboneClient.connect({
        source: await ca.issue(client),
        destination,
        peer: hbone.address,
        expectedIdentity: server,
      });
      let ended = false;
      tunnel.on('end', () => (ended = true));
      tunnel.on('data', () => undefined);
      const failure = new Promise<NodeJS.ErrnoException>((resolve) =>
        tunnel.once('error', resolve),
      );
      tunnel.write('hello');
      assert.equal((await failure).code, 'ERR_HTTP2_STREAM_ERROR');
      assert.notEqual(tunnel.rstCode, 0);
      assert.equal(ended, false, 'a reset must not look like a FIN');
      const closed = await waitForEvent(
        hbone.events,
        (e): e is Extract<HboneServerEvent, { type: 'stream-closed' }> =>
          e.type === 'stream-closed',
      );
      assert.equal(closed.result.outcome, 'socket-reset');
    } finally {
      await hboneClient.close();
      await hbone.server.close();
      await closeServer(resetting);
    }
  });

  it('turns an app reset into a TCP reset at the destination, never a FIN', async () => {
    let accepted: (socket: Socket) => void = () => undefined;
    const seen = new Promise<Socket>((resolve) => (accepted = resolve));
    const holding = createServer((socket) => {
      accepted(socket);
    });
    const destination = await listen(holding);
    const hbone = await hboneServer(ca, await ca.issue(server));
    const hboneClient = new HboneClient({ trustBundlePem: ca.trustBundlePem });
    const source = await ca.issue(client);
    const outbound = createServer({ allowHalfOpen: true }, (downstream) => {
      void hboneClient
        .connect({ source, destination, peer: hbone.address, expectedIdentity: server })
        .then((tunnel) => relay(tunnel, downstream));
    });
    const outboundAddress = await listen(outbound);
    try {
      const app = connect({ ...outboundAddress, host: '127.0.0.1' });
      app.on('error', () => undefined);
      app.write('partial upload');
      const socket = await seen;
      let ended = false;
      socket.on('end', () => (ended = true));
      socket.on('data', () => undefined);
      const failure = new Promise<NodeJS.ErrnoException>((resolve) =>
        socket.once('error', resolve),
      );
      app.resetAndDestroy();
      assert.equal((await failure).code, 'ECONNRESET');
      assert.equal(ended, false, 'a reset must not look like a FIN');
    } finally {
      await hboneClient.close();
      await hbone.server.close();
      await closeServer(outbound);
      await closeServer(holding);
    }
  });
});
