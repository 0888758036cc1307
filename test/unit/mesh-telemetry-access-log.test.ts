// The access log (src/mesh/telemetry/access-log.ts): one JSON line per
// closed connection with ztunnel's field names, identities only under mutual
// TLS, bytes from the local workload's side, and a stream the caller can
// rotate.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  AccessLog,
  accessLogEntry,
  formatAccessLogLine,
  openAccessLogFile,
} from '../../src/mesh/telemetry/access-log.js';
import {
  TcpMetrics,
  trafficLabels,
  type ClosedConnection,
  type ConnectionOpen,
} from '../../src/mesh/telemetry/metrics.js';
import { inboundMtls, outboundMtls, productpage, reviews } from './mesh-telemetry-fixtures.test.js';

function closedConnection(
  open: ConnectionOpen,
  rest: Partial<ClosedConnection> = {},
): ClosedConnection {
  return {
    ...open,
    labels: trafficLabels(open),
    openedAt: new Date('2025-03-01T12:00:00.000Z'),
    closedAt: new Date('2025-03-01T12:00:00.042Z'),
    receivedBytes: 75,
    sentBytes: 1574,
    responseFlags: '-',
    ...rest,
  };
}

let scratch = '';
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'strata-mesh-telemetry-access-log-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('formatAccessLogLine', () => {
  it('writes an inbound mTLS connection as ztunnel does, as one line of JSON', () => {
    const line = formatAccessLogLine(closedConnection(inboundMtls));
    assert.ok(line.endsWith('}\n'));
    assert.equal(line.indexOf('\n'), line.length - 1);
    assert.deepEqual(Object.entries(JSON.parse(line) as Record<string, unknown>), [
      ['timestamp', '2025-03-01T12:00:00.042Z'],
      ['level', 'info'],
      ['scope', 'access'],
      ['message', 'connection complete'],
      ['src.addr', '10.244.1.7:43122'],
      ['src.workload', 'productpage-v1-7f4669bdd9-dg7vn'],
      ['src.namespace', 'bookinfo'],
      ['src.identity', 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage'],
      ['dst.addr', '10.244.2.9:15008'],
      ['dst.hbone_addr', '10.244.2.9:9080'],
      ['dst.service', 'reviews.bookinfo.svc.cluster.local'],
      ['dst.workload', 'reviews-v2-5b9f6d9c7b-x7k2p'],
      ['dst.namespace', 'bookinfo'],
      ['dst.identity', 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews'],
      ['direction', 'inbound'],
      // At the destination the local workload is the server: it received the
      // client's 75 bytes and sent 1574 back.
      ['bytes_sent', 1574],
      ['bytes_recv', 75],
      ['duration', '42ms'],
    ]);
  });

  it("counts bytes from the source workload's side at the source's proxy", () => {
    const entry = accessLogEntry(closedConnection(outboundMtls));
    assert.equal(entry.direction, 'outbound');
    assert.equal(entry.bytes_sent, 75);
    assert.equal(entry.bytes_recv, 1574);
  });

  it('leaves identities out of a plaintext connection, and unknown fields out entirely', () => {
    const plaintext: ConnectionOpen = {
      reporter: 'destination',
      source: { ...productpage, pod: '' },
      destination: reviews,
      security: 'unknown',
      sourceAddress: '10.244.1.7:43122',
      destinationAddress: '10.244.2.9:9080',
    };
    const entry = accessLogEntry(closedConnection(plaintext));
    assert.equal(entry['src.identity'], undefined);
    assert.equal(entry['dst.identity'], undefined);
    assert.equal(entry['dst.hbone_addr'], undefined);
    assert.equal(entry['dst.service'], undefined);
    // No pod name: ztunnel falls back to the canonical service.
    assert.equal(entry['src.workload'], 'productpage');
    assert.ok(!('dst.service' in entry));
  });

  it('logs a failed connection at level error with the error', () => {
    const entry = accessLogEntry(
      closedConnection(inboundMtls, { error: 'connection refused', responseFlags: 'CONNECT' }),
    );
    assert.equal(entry.level, 'error');
    assert.equal(entry.error, 'connection refused');
  });
});

describe('AccessLog', () => {
  it("writes TcpMetrics' closed connections to its stream, one line each", async () => {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
    const log = new AccessLog(out);
    const metrics = new TcpMetrics({
      onClose: (connection) => {
        log.write(connection);
      },
    });
    const first = metrics.open(inboundMtls);
    first.received(10);
    first.close();
    metrics.open(outboundMtls).close({ error: 'peer reset' });
    await log.close();

    const lines = chunks.join('').split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 2);
    const [inbound, outbound] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(inbound?.direction, 'inbound');
    assert.equal(inbound?.bytes_recv, 10);
    assert.equal(outbound?.direction, 'outbound');
    assert.equal(outbound?.level, 'error');
    metrics.stop();
  });

  it('appends to a file, and writes to a new one after the caller rotates it', async () => {
    const path = join(scratch, 'access.log');
    const first = openAccessLogFile(path);
    const log = new AccessLog(first);
    log.write(closedConnection(inboundMtls));
    // Writes complete in order: once an empty one has, the line is on disk.
    await new Promise((resolve) => first.write('', resolve));
    await rename(path, `${path}.1`);
    log.switchTo(openAccessLogFile(path));
    log.write(closedConnection(outboundMtls));
    await log.close();

    const rotated = (await readFile(`${path}.1`, 'utf8')).trim().split('\n');
    const current = (await readFile(path, 'utf8')).trim().split('\n');
    assert.equal(rotated.length, 1);
    assert.equal(current.length, 1);
    assert.equal((JSON.parse(rotated[0] ?? '') as { direction: string }).direction, 'inbound');
    assert.equal((JSON.parse(current[0] ?? '') as { direction: string }).direction, 'outbound');
    // Created 0640: the umask may take bits away, never add them.
    const mode = (await stat(path)).mode & 0o777;
    assert.equal(mode & ~0o640, 0);
    assert.equal(mode & 0o600, 0o600);
  });

  it('reports a failing stream instead of taking the process down', async () => {
    const errors: Error[] = [];
    const broken = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error('disk full'));
      },
    });
    const log = new AccessLog(broken, { onError: (error) => errors.push(error) });
    log.write(closedConnection(inboundMtls));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      errors.map((error) => error.message),
      ['disk full'],
    );
    // The stream is dead; further writes are dropped, not thrown.
    log.write(closedConnection(inboundMtls));
    await log.close();
  });
});
