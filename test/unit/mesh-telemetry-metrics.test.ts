// The node proxy's istio_tcp_* counters (src/mesh/telemetry/metrics.ts): a
// connection's life as the counters show it, the exact series a scrape
// prints, ztunnel's "unknown" defaults, and bytes batched off the data path.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { Counter, Registry, register as globalRegistry } from 'prom-client';
import {
  TcpMetrics,
  tcpMetrics,
  trafficLabels,
  type ClosedConnection,
} from '../../src/mesh/telemetry/metrics.js';
import { inboundMtls, productpage, reviews } from './mesh-telemetry-fixtures.test.js';

const inboundLabels =
  'reporter="destination",' +
  'source_workload="productpage-v1",' +
  'source_canonical_service="productpage",' +
  'source_canonical_revision="v1",' +
  'source_workload_namespace="bookinfo",' +
  'source_principal="spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage",' +
  'source_app="productpage",' +
  'source_version="v1",' +
  'source_cluster="Kubernetes",' +
  'destination_service="reviews.bookinfo.svc.cluster.local",' +
  'destination_service_namespace="bookinfo",' +
  'destination_service_name="reviews",' +
  'destination_workload="reviews-v2",' +
  'destination_canonical_service="reviews",' +
  'destination_canonical_revision="v2",' +
  'destination_workload_namespace="bookinfo",' +
  'destination_principal="spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews",' +
  'destination_app="reviews",' +
  'destination_version="v2",' +
  'destination_cluster="Kubernetes",' +
  'request_protocol="tcp",' +
  'response_flags="-",' +
  'connection_security_policy="mutual_tls"';

/** The sample lines of one metric in an exposition. */
function samples(exposition: string, name: string): string[] {
  return exposition.split('\n').filter((line) => line.startsWith(`${name}{`));
}

/** The value of the one sample of `name` whose labels include all of `match`. */
function value(exposition: string, name: string, match: Record<string, string>): number {
  const found = samples(exposition, name).filter((line) =>
    Object.entries(match).every(([key, v]) => line.includes(`${key}="${v}"`)),
  );
  assert.equal(found.length, 1, `one ${name} series matching ${JSON.stringify(match)}`);
  return Number(found[0]?.slice(found[0].lastIndexOf(' ') + 1));
}

describe('TcpMetrics', () => {
  let metrics: TcpMetrics;
  let closed: ClosedConnection[];

  beforeEach(() => {
    closed = [];
    metrics = new TcpMetrics({ onClose: (connection) => closed.push(connection) });
  });
  afterEach(() => {
    metrics.stop();
  });

  it('counts a connection from open, through bytes in chunks, to close', async () => {
    const connection = metrics.open(inboundMtls);
    for (const chunk of [512, 1024, 16_384]) connection.received(chunk);
    for (const chunk of [8192, 8192, 100]) connection.sent(chunk);
    connection.close();

    const exposition = await metrics.registry.metrics();
    assert.deepEqual(samples(exposition, tcpMetrics.opened.name), [
      `istio_tcp_connections_opened_total{${inboundLabels}} 1`,
    ]);
    assert.deepEqual(samples(exposition, tcpMetrics.closed.name), [
      `istio_tcp_connections_closed_total{${inboundLabels}} 1`,
    ]);
    assert.deepEqual(samples(exposition, tcpMetrics.received.name), [
      `istio_tcp_received_bytes_total{${inboundLabels}} 17920`,
    ]);
    assert.deepEqual(samples(exposition, tcpMetrics.sent.name), [
      `istio_tcp_sent_bytes_total{${inboundLabels}} 16484`,
    ]);
    assert.equal(metrics.openConnections, 0);
  });

  it('prints each counter with HELP and TYPE, even before any connection', async () => {
    const exposition = await metrics.registry.metrics();
    for (const { name, help } of Object.values(tcpMetrics)) {
      assert.ok(exposition.includes(`# HELP ${name} ${help}\n# TYPE ${name} counter\n`), name);
    }
    assert.equal(samples(exposition, 'istio_tcp_').length, 0);
  });

  it('shows open connections and their bytes so far in a scrape', async () => {
    const connection = metrics.open(inboundMtls);
    connection.received(300);
    const first = await metrics.registry.metrics();
    assert.equal(value(first, tcpMetrics.opened.name, {}), 1);
    assert.equal(samples(first, tcpMetrics.closed.name).length, 0);
    assert.equal(value(first, tcpMetrics.received.name, {}), 300);

    connection.received(200);
    const second = await metrics.registry.metrics();
    assert.equal(value(second, tcpMetrics.received.name, {}), 500);
    connection.close();
  });

  it('adds up connections with the same labels in one series', async () => {
    for (let i = 0; i < 3; i += 1) {
      const connection = metrics.open(inboundMtls);
      connection.received(10);
      connection.close();
    }
    const exposition = await metrics.registry.metrics();
    assert.equal(value(exposition, tcpMetrics.opened.name, {}), 3);
    assert.equal(value(exposition, tcpMetrics.closed.name, {}), 3);
    assert.equal(value(exposition, tcpMetrics.received.name, {}), 30);
  });

  it("puts the response flags on the closed counter's series only, as ztunnel", async () => {
    const denied = metrics.open(inboundMtls);
    denied.close({ error: new Error('denied by AuthorizationPolicy'), responseFlags: 'DENY' });
    const exposition = await metrics.registry.metrics();
    assert.equal(value(exposition, tcpMetrics.opened.name, { response_flags: '-' }), 1);
    assert.equal(value(exposition, tcpMetrics.closed.name, { response_flags: 'DENY' }), 1);
    assert.equal(samples(exposition, tcpMetrics.closed.name).length, 1);
  });

  it('reports the closed connection once, with its totals and outcome', () => {
    const now = mock.fn(() => new Date('2025-03-01T12:00:00.000Z'));
    const records: ClosedConnection[] = [];
    const timed = new TcpMetrics({ now, onClose: (c) => records.push(c) });
    const connection = timed.open(inboundMtls);
    connection.received(70);
    connection.sent(1500);
    now.mock.mockImplementation(() => new Date('2025-03-01T12:00:02.250Z'));
    connection.close({ error: 'upstream reset', responseFlags: 'CONNECT' });
    connection.close();
    connection.sent(99);

    assert.equal(records.length, 1);
    const [record] = records;
    assert.ok(record);
    assert.equal(record.receivedBytes, 70);
    assert.equal(record.sentBytes, 1500);
    assert.equal(record.error, 'upstream reset');
    assert.equal(record.responseFlags, 'CONNECT');
    assert.equal(record.labels.response_flags, 'CONNECT');
    assert.equal(record.openedAt.toISOString(), '2025-03-01T12:00:00.000Z');
    assert.equal(record.closedAt.toISOString(), '2025-03-01T12:00:02.250Z');
    assert.equal(record.hboneAddress, '10.244.2.9:9080');
    timed.stop();
  });

  it('registers on a registry of its own, never the global one', async () => {
    metrics.open(inboundMtls).close();
    assert.ok(metrics.registry instanceof Registry);
    assert.notEqual(metrics.registry, globalRegistry);
    assert.equal(globalRegistry.getSingleMetric(tcpMetrics.opened.name), undefined);
    // Two proxies in one process (the tests' clusters) keep separate counts.
    const other = new TcpMetrics();
    assert.equal(samples(await other.registry.metrics(), tcpMetrics.opened.name).length, 0);
  });

  it('ignores byte counts that are zero, negative or not numbers', async () => {
    const connection = metrics.open(inboundMtls);
    connection.received(0);
    connection.received(-5);
    connection.received(Number.NaN);
    connection.received(40);
    connection.close();
    const exposition = await metrics.registry.metrics();
    assert.equal(value(exposition, tcpMetrics.received.name, {}), 40);
    assert.equal(closed[0]?.receivedBytes, 40);
  });
});

describe('TcpMetrics batching', () => {
  beforeEach(() => {
    mock.timers.enable({ apis: ['setInterval'] });
  });
  afterEach(() => {
    mock.timers.reset();
  });

  it('moves bytes into the counters once a second, not per chunk', () => {
    const metrics = new TcpMetrics();
    const received = metrics.registry.getSingleMetric(tcpMetrics.received.name);
    assert.ok(received instanceof Counter);
    const inc = mock.method(received, 'inc');
    // inc(labels, value): the value each call added.
    const added = (call: number) => (inc.mock.calls[call]?.arguments as unknown[] | undefined)?.[1];
    const connection = metrics.open(inboundMtls);
    for (let i = 0; i < 1000; i += 1) connection.received(1460);
    assert.equal(inc.mock.callCount(), 0);

    mock.timers.tick(1000);
    assert.equal(inc.mock.callCount(), 1);
    assert.equal(added(0), 1_460_000);

    // Nothing new: nothing to add.
    mock.timers.tick(1000);
    assert.equal(inc.mock.callCount(), 1);

    connection.received(5);
    connection.close();
    assert.equal(inc.mock.callCount(), 2);
    assert.equal(added(1), 5);
    metrics.stop();
  });

  it('runs its timer only while connections are open', () => {
    const metrics = new TcpMetrics();
    const flush = mock.method(metrics, 'flush');
    mock.timers.tick(5000);
    assert.equal(flush.mock.callCount(), 0);
    const connection = metrics.open(inboundMtls);
    mock.timers.tick(3000);
    assert.equal(flush.mock.callCount(), 3);
    connection.close();
    mock.timers.tick(5000);
    assert.equal(flush.mock.callCount(), 3);
  });
});

describe('trafficLabels', () => {
  it('says "unknown" for everything the proxy does not know', () => {
    const labels = trafficLabels({ reporter: 'source', security: 'unknown' });
    assert.deepEqual(labels, {
      reporter: 'source',
      source_workload: 'unknown',
      source_canonical_service: 'unknown',
      source_canonical_revision: 'unknown',
      source_workload_namespace: 'unknown',
      source_principal: 'unknown',
      source_app: 'unknown',
      source_version: 'unknown',
      source_cluster: 'unknown',
      destination_service: 'unknown',
      destination_service_namespace: 'unknown',
      destination_service_name: 'unknown',
      destination_workload: 'unknown',
      destination_canonical_service: 'unknown',
      destination_canonical_revision: 'unknown',
      destination_workload_namespace: 'unknown',
      destination_principal: 'unknown',
      destination_app: 'unknown',
      destination_version: 'unknown',
      destination_cluster: 'unknown',
      request_protocol: 'tcp',
      response_flags: '-',
      connection_security_policy: 'unknown',
    });
  });

  it('takes source_principal only from mutual TLS; destination_principal as known', () => {
    const plaintext = trafficLabels({
      reporter: 'destination',
      source: productpage,
      destination: reviews,
      security: 'unknown',
    });
    assert.equal(plaintext.source_principal, 'unknown');
    assert.equal(plaintext.destination_principal, reviews.identity);
    assert.equal(plaintext.connection_security_policy, 'unknown');
  });

  it('names the proxy cluster for known workloads, unless the workload says otherwise', () => {
    const labels = trafficLabels(
      {
        reporter: 'destination',
        source: { identity: productpage.identity },
        destination: { ...reviews, cluster: 'east' },
        security: 'mutual_tls',
      },
      'west',
    );
    assert.equal(labels.source_cluster, 'unknown');
    assert.equal(labels.source_workload, 'unknown');
    assert.equal(labels.source_principal, productpage.identity);
    assert.equal(labels.destination_cluster, 'east');
  });

  it('reports the canonical service and revision as *_app and *_version', () => {
    const labels = trafficLabels(inboundMtls);
    assert.equal(labels.source_app, 'productpage');
    assert.equal(labels.source_version, 'v1');
    assert.equal(labels.destination_app, 'reviews');
    assert.equal(labels.destination_version, 'v2');
  });

  it('treats an empty value as unknown', () => {
    const labels = trafficLabels({
      reporter: 'source',
      source: { ...productpage, canonicalRevision: '' },
      security: 'mutual_tls',
    });
    assert.equal(labels.source_canonical_revision, 'unknown');
    assert.equal(labels.source_version, 'unknown');
  });
});
