// How much an HBONE tunnel costs on loopback, measured against plain TCP in
// the same run (issue 6 targets bulk throughput through the tunnel of at least
// 25 % of plain; the figures are printed, not asserted, since they depend on
// the machine). Two proxies as on two nodes: the outbound one in this process
// (a TCP listener relaying each connection into an HboneClient tunnel), the
// inbound one (HboneServer dialing the destination) in a worker thread, so
// each has its own event loop. iperf3 moves the bulk data both ways; a
// ping-pong of small messages gives the latency the pair adds; a checksummed
// echo through the same path checks the bytes.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { HboneClient } from '../../src/mesh/hbone/client.js';
import type { SocketAddress } from '../../src/mesh/hbone/connect-request.js';
import { relay } from '../../src/mesh/hbone/relay.js';
import { HboneServer } from '../../src/mesh/hbone/server.js';
import type { WorkloadCertificate } from '../../src/mesh/identity/workload.js';
import {
  closeServer,
  dialDestination,
  echoServer,
  identity,
  listen,
  readAll,
  sha256,
  testCa,
  type TestCa,
} from '../unit/mesh-hbone-fixtures.test.js';

const frontend = identity('bench', 'client');
const backend = identity('bench', 'server');

interface InboundData {
  trustBundlePem: string;
  certificate: WorkloadCertificate;
}

/** The inbound proxy, in its worker: an HBONE server dialing each destination. */
async function runInboundProxy(data: InboundData): Promise<void> {
  const server = new HboneServer({
    address: '127.0.0.1',
    port: 0,
    trustDomain: 'cluster.local',
    trustBundlePem: data.trustBundlePem,
    certificateFor: () => ({ certificate: data.certificate }),
    handler: dialDestination,
  });
  const address = await server.listen();
  parentPort?.postMessage(address);
  parentPort?.once('message', () => {
    void server.close().then(() => parentPort?.close());
  });
}

function startInboundProxy(data: InboundData): Promise<{ worker: Worker; address: SocketAddress }> {
  const worker = new Worker(new URL(import.meta.url), { workerData: data });
  return new Promise((resolve, reject) => {
    worker.once('message', (address: SocketAddress) => {
      resolve({ worker, address });
    });
    worker.once('error', reject);
  });
}

/** The outbound proxy: every accepted connection goes through a tunnel to `destination`. */
async function startOutboundProxy(
  client: HboneClient,
  source: WorkloadCertificate,
  peer: SocketAddress,
  destination: SocketAddress,
): Promise<{ server: Server; address: SocketAddress }> {
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (downstream) => {
    downstream.on('error', () => undefined);
    client
      .connect({ source, destination, peer, expectedIdentity: backend, sourceAddress: '127.0.0.1' })
      .then((tunnel) => relay(tunnel, downstream))
      .catch(() => downstream.resetAndDestroy());
  });
  return { server, address: await listen(server) };
}

async function freePort(): Promise<number> {
  const probe = createServer();
  const { port } = await listen(probe);
  await closeServer(probe);
  return port;
}

/** Gbit/s an iperf3 client measured to `port`, upload or (`reverse`) download. */
async function iperf(port: number, reverse: boolean): Promise<number> {
  const args = ['-c', '127.0.0.1', '-p', String(port), '-t', '1', '-J'];
  if (reverse) args.push('-R');
  const child = spawn('iperf3', args);
  const output = await readAll(child.stdout);
  const report = JSON.parse(output.toString()) as {
    end?: { sum_received?: { bits_per_second?: number } };
    error?: string;
  };
  const bps = report.end?.sum_received?.bits_per_second;
  if (bps === undefined) throw new Error(`iperf3 failed: ${report.error ?? output.toString()}`);
  return bps / 1e9;
}

/** Microseconds per round trip of a 64-byte message, `count` times in sequence. */
async function pingPong(address: SocketAddress, count: number): Promise<number[]> {
  const socket: Socket = connect({ host: address.address, port: address.port, noDelay: true });
  await new Promise((resolve) => socket.once('connect', resolve));
  const message = Buffer.alloc(64, 7);
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      let received = 0;
      const onData = (chunk: Buffer) => {
        received += chunk.length;
        if (received >= message.length) {
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
      socket.write(message);
    });
    times.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  socket.destroy();
  return times.sort((a, b) => a - b);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

if (!isMainThread) {
  await runInboundProxy(workerData as InboundData);
} else {
  const hasIperf3 = spawnSync('iperf3', ['--version']).status === 0;
  describe('HBONE tunnel cost on loopback', () => {
    let ca: TestCa;
    let client: HboneClient;
    let inbound: Awaited<ReturnType<typeof startInboundProxy>>;
    let echo: Awaited<ReturnType<typeof echoServer>>;
    let echoProxy: Awaited<ReturnType<typeof startOutboundProxy>>;
    let source: WorkloadCertificate;

    before(async () => {
      ca = await testCa();
      source = await ca.issue(frontend);
      inbound = await startInboundProxy({
        trustBundlePem: ca.trustBundlePem,
        certificate: await ca.issue(backend),
      });
      client = new HboneClient({ trustBundlePem: ca.trustBundlePem });
      echo = await echoServer();
      echoProxy = await startOutboundProxy(client, source, inbound.address, echo.address);
    });
    after(async () => {
      await client.close();
      await closeServer(echoProxy.server);
      await closeServer(echo.server);
      inbound.worker.postMessage('close');
      await new Promise((resolve) => inbound.worker.once('exit', resolve));
      await ca.cleanup();
    });

    it('carries 16 MiB through both proxies intact', async () => {
      const payload = randomBytes(16 * 1024 * 1024);
      const socket = connect({ ...echoProxy.address, host: '127.0.0.1', allowHalfOpen: true });
      const back = readAll(socket);
      socket.end(payload);
      const received = await back;
      assert.equal(received.length, payload.length);
      assert.equal(sha256(received), sha256(payload));
    });

    it('adds little latency to small messages', async () => {
      await pingPong(echo.address, 200);
      await pingPong(echoProxy.address, 200);
      const plain = await pingPong(echo.address, 2000);
      const tunnel = await pingPong(echoProxy.address, 2000);
      const row = (p: number) =>
        `p${p} ${percentile(plain, p).toFixed(0)} µs plain, ${percentile(tunnel, p).toFixed(0)} µs tunnel, ` +
        `+${(percentile(tunnel, p) - percentile(plain, p)).toFixed(0)} µs`;
      console.log('64-byte round trips through the proxy pair, 2000 in sequence:');
      for (const p of [50, 90, 99]) console.log(`  ${row(p)}`);
      assert.ok(tunnel.length === 2000);
    });

    it(
      'moves bulk data both ways (iperf3, 1 s each)',
      { skip: !hasIperf3 && 'no iperf3' },
      async () => {
        const iperfPort = await freePort();
        const iperfServer = spawn('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort)]);
        const tunnelProxy = await startOutboundProxy(client, source, inbound.address, {
          address: '127.0.0.1',
          port: iperfPort,
        });
        try {
          await new Promise((resolve) => setTimeout(resolve, 200));
          const plainUp = await iperf(iperfPort, false);
          const plainDown = await iperf(iperfPort, true);
          const tunnelUp = await iperf(tunnelProxy.address.port, false);
          const tunnelDown = await iperf(tunnelProxy.address.port, true);
          const line = (name: string, plain: number, tunnel: number) =>
            `  ${name}: plain ${plain.toFixed(2)} Gbit/s, tunnel ${tunnel.toFixed(2)} Gbit/s, ` +
            `${((tunnel / plain) * 100).toFixed(0)} % of plain`;
          console.log('Bulk throughput through the proxy pair (iperf3 -t 1):');
          console.log(line('client → server', plainUp, tunnelUp));
          console.log(line('server → client', plainDown, tunnelDown));
          assert.ok(tunnelUp > 0 && tunnelDown > 0);
        } finally {
          await closeServer(tunnelProxy.server);
          iperfServer.kill();
        }
      },
    );
  });
}
