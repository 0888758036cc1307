// The proxy's stats and readiness servers (src/mesh/telemetry/server.ts),
// real servers on loopback port 0: metrics on /metrics and
// /stats/prometheus in the Prometheus text format, readiness 500 until
// nothing is pending, then 200.
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { TelemetryListenError } from '../../src/mesh/telemetry/errors.js';
import { TcpMetrics } from '../../src/mesh/telemetry/metrics.js';
import { Readiness, TelemetryServer, type BoundAddress } from '../../src/mesh/telemetry/server.js';
import { inboundMtls } from './mesh-telemetry-fixtures.test.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const loopback = { address: '127.0.0.1', port: 0 };

describe('TelemetryServer', () => {
  const metrics = new TcpMetrics();
  const readiness = new Readiness(['certificates', 'listeners']);
  const server = new TelemetryServer({
    registries: [metrics.registry],
    readiness,
    stats: loopback,
    readinessProbe: loopback,
  });
  let stats: BoundAddress;
  let ready: BoundAddress;

  before(async () => {
    ({ stats, readiness: ready } = await server.listen());
    const connection = metrics.open(inboundMtls);
    connection.received(75);
    connection.close();
  });
  after(async () => {
    await server.close();
    metrics.stop();
  });

  it('listens on the ports it was given (0: any free one)', () => {
    assert.equal(stats.address, '127.0.0.1');
    assert.ok(stats.port > 0);
    assert.ok(ready.port > 0);
    assert.notEqual(stats.port, ready.port);
  });

  for (const path of ['/metrics', '/stats/prometheus']) {
    it(`serves the metrics on ${path} in the Prometheus text format`, async () => {
      const reply = await get(stats.port, path);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
      assert.equal(reply.body, await metrics.registry.metrics());
      assert.match(reply.body, /^istio_tcp_received_bytes_total\{reporter="destination",.*\} 75$/m);
    });
  }

  it('ignores a query string, as scrapers may add one', async () => {
    const reply = await get(stats.port, '/metrics?format=prometheus');
    assert.equal(reply.status, 200);
  });

  it('answers 404 elsewhere and 405 for other methods', async () => {
    assert.equal((await get(stats.port, '/')).status, 404);
    assert.equal((await get(stats.port, '/healthz/ready')).status, 404);
    const post = await get(stats.port, '/metrics', 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
  });

  it('is not ready while tasks are pending, and says which', async () => {
    const reply = await get(ready.port, '/healthz/ready');
    assert.equal(reply.status, 500);
    assert.equal(reply.body, 'not ready, pending: certificates, listeners\n');

    readiness.unblock('certificates');
    const still = await get(ready.port, '/healthz/ready');
    assert.equal(still.status, 500);
    assert.equal(still.body, 'not ready, pending: listeners\n');
  });

  it('is ready once marked ready, and not again when a task is added', async () => {
    readiness.markReady();
    const reply = await get(ready.port, '/healthz/ready');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'ready\n');

    readiness.block('certificates');
    assert.equal((await get(ready.port, '/healthz/ready')).status, 500);
    readiness.unblock('certificates');
    assert.equal((await get(ready.port, '/healthz/ready')).status, 200);
  });

  it('answers the readiness probe only on its path and for GET', async () => {
    assert.equal((await get(ready.port, '/metrics')).status, 404);
    assert.equal((await get(ready.port, '/healthz/ready', 'POST')).status, 405);
  });
});

describe('TelemetryServer with several registries', () => {
  it('serves them one after the other', async () => {
    const metrics = new TcpMetrics();
    const extra = new Registry();
    new Counter({
      name: 'strata_proxy_certificate_rotations_total',
      help: 'Workload certificates rotated',
      registers: [extra],
    }).inc();
    const server = new TelemetryServer({
      registries: [metrics.registry, extra],
      readiness: new Readiness([]),
      stats: loopback,
      readinessProbe: loopback,
    });
    const { stats } = await server.listen();
    try {
      const reply = await get(stats.port, '/metrics');
      assert.match(reply.body, /^# TYPE istio_tcp_connections_opened_total counter$/m);
      assert.match(reply.body, /^strata_proxy_certificate_rotations_total 1$/m);
    } finally {
      await server.close();
    }
  });
});

describe('TelemetryServer.listen', () => {
  let taken: Server;
  before(async () => {
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    await new Promise((resolve) => taken.close(resolve));
  });

  it('fails with STRATA_ERR_TELEMETRY_LISTEN naming the server and the port in use', async () => {
    const port = (taken.address() as AddressInfo).port;
    const server = new TelemetryServer({
      registries: [new TcpMetrics().registry],
      readiness: new Readiness(),
      stats: loopback,
      readinessProbe: { address: '127.0.0.1', port },
    });
    await assert.rejects(server.listen(), (error: unknown) => {
      assert.ok(error instanceof TelemetryListenError);
      assert.equal(error.code, 'STRATA_ERR_TELEMETRY_LISTEN');
      assert.match(
        error.message,
        new RegExp(`^Cannot listen for readiness on 127\\.0\\.0\\.1 port ${port}: `),
      );
      return true;
    });
    await server.close();
  });
});
