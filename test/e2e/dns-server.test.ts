// The cluster DNS server on real sockets, queried by the real `dig`: DnsServer
// on 127.0.0.1 with an ephemeral port, fed by a static source (no API
// server), answering A, SRV, PTR, NXDOMAIN, over UDP and TCP, a truncated UDP
// answer that dig retries over TCP, forwarding to a second DnsServer as the
// upstream, REFUSED without one, and the zone following its source. Then
// `strata dns` itself against an in-process API server: informers, /health
// and /ready. Everything stays on loopback: nothing is sent off the machine.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { KubeObject } from '../../src/api/types.js';
import { startApiServer } from '../../src/apiserver/server.js';
import { ApiClient } from '../../src/client/index.js';
import { dnsCommand } from '../../src/dns/command.js';
import { ProbeListener } from '../../src/dns/health.js';
import type { ClusterObjects } from '../../src/dns/records.js';
import { DnsServer } from '../../src/dns/server.js';
import { type DnsRecordSource, StaticRecordSource } from '../../src/dns/source.js';
import { MemoryStore } from '../../src/store/memory.js';
import { isRoot } from '../support/netns.js';
import {
  clusterIpService,
  decodeResponse,
  endpointSlice,
  headlessService,
  manyEndpoints,
  query,
} from '../unit/dns-fixtures.js';

const digPath = '/usr/bin/dig';
const skip = !isRoot()
  ? 'needs root (end-to-end tests run as root)'
  : !existsSync(digPath)
    ? `needs dig at ${digPath} (apt-get install bind9-dnsutils)`
    : false;
const run = promisify(execFile);

/** dig against 127.0.0.1:`port`, one try, short timeouts; its whole output. */
async function dig(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run(
    digPath,
    ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=2', ...args],
    {
      timeout: 10_000,
    },
  );
  return stdout;
}

/** The status dig reports: NOERROR, NXDOMAIN, REFUSED... */
function status(output: string): string | undefined {
  return /status: ([A-Z]+)/.exec(output)?.[1];
}

/** The answer section's records as `name TYPE data`, from `+noall +answer` output. */
function records(output: string): string[] {
  return output
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith(';'))
    .map((line) => {
      const [name, , , type, ...data] = line.split(/\s+/);
      return `${name ?? ''} ${type ?? ''} ${data.join(' ')}`;
    });
}

/** A TCP port free right now on 127.0.0.1. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => {
    probe.close(() => {
      resolve();
    });
  });
  return port;
}

const shopObjects: ClusterObjects = {
  services: [
    clusterIpService('web', 'shop', ['10.96.0.10'], [{ name: 'http', port: 80 }]),
    headlessService('db', 'shop', [{ name: 'pg', port: 5432 }]),
    headlessService('big', 'shop'),
  ],
  endpointSlices: [
    endpointSlice(
      'db-1',
      'shop',
      'db',
      'IPv4',
      [
        { addresses: ['10.244.1.5'], ready: true, hostname: 'db-0' },
        { addresses: ['10.244.2.7'], ready: false },
      ],
      [{ name: 'pg', port: 15432 }],
    ),
    endpointSlice('big-1', 'shop', 'big', 'IPv4', manyEndpoints(60)),
  ],
};

describe('DnsServer queried with dig', { skip }, () => {
  const source = new StaticRecordSource(shopObjects);
  const upstreamSource = new StaticRecordSource({
    services: [clusterIpService('api', 'corp', ['192.0.2.10'])],
    endpointSlices: [],
  });
  const quiet = (): void => undefined;
  const server = new DnsServer({ source, listen: { host: '127.0.0.1', port: 0 }, log: quiet });
  // A second server, for the upstream: it serves the zone `upstream.test`.
  const upstream = new DnsServer({
    source: upstreamSource,
    domain: 'upstream.test',
    listen: { host: '127.0.0.1', port: 0 },
    log: quiet,
  });
  let port = 0;
  let upstreamPort = 0;

  before(async () => {
    port = (await server.listen()).udpPort;
    upstreamPort = (await upstream.listen()).udpPort;
  });

  after(async () => {
    await Promise.all([server.close(), upstream.close()]);
  });

  it('answers A, over UDP and over TCP, on the same port', async () => {
    const name = 'web.shop.svc.cluster.local';
    assert.deepEqual(records(await dig(port, name, 'A', '+noall', '+answer')), [
      `${name}. A 10.96.0.10`,
    ]);
    assert.deepEqual(records(await dig(port, name, 'A', '+tcp', '+noall', '+answer')), [
      `${name}. A 10.96.0.10`,
    ]);
    const stats = server.stats();
    assert.ok(stats.udpQueries >= 1 && stats.tcpQueries >= 1);
    assert.ok(server.address?.tcpPort === port);
  });

  it('answers SRV with the targets as additional records', async () => {
    const output = await dig(
      port,
      '_pg._tcp.db.shop.svc.cluster.local',
      'SRV',
      '+noall',
      '+answer',
      '+additional',
    );
    assert.deepEqual(records(output), [
      '_pg._tcp.db.shop.svc.cluster.local. SRV 0 100 15432 db-0.db.shop.svc.cluster.local.',
      'db-0.db.shop.svc.cluster.local. A 10.244.1.5',
    ]);
  });

  it('answers PTR for a cluster IP and for a headless endpoint', async () => {
    assert.deepEqual(records(await dig(port, '-x', '10.96.0.10', '+noall', '+answer')), [
      '10.0.96.10.in-addr.arpa. PTR web.shop.svc.cluster.local.',
    ]);
    assert.deepEqual(records(await dig(port, '-x', '10.244.1.5', '+noall', '+answer')), [
      '5.1.244.10.in-addr.arpa. PTR db-0.db.shop.svc.cluster.local.',
    ]);
  });

  it('answers NXDOMAIN with the SOA for an unknown name, NODATA for a namespace', async () => {
    const missing = await dig(port, 'nope.shop.svc.cluster.local', 'A');
    assert.equal(status(missing), 'NXDOMAIN');
    assert.match(
      missing,
      /AUTHORITY SECTION:\ncluster\.local\.\s+5\s+IN\s+SOA\s+ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\./,
    );
    const namespace = await dig(port, 'shop.svc.cluster.local', 'A');
    assert.equal(status(namespace), 'NOERROR');
    assert.match(namespace, /ANSWER: 0, AUTHORITY: 1/);
  });

  it('truncates a large answer over UDP, and dig gets every record over TCP', async () => {
    const truncated = await dig(port, 'big.shop.svc.cluster.local', 'A', '+noedns', '+ignore');
    assert.match(truncated, /flags: qr aa tc rd;/);
    assert.match(truncated, /ANSWER: 0,/);
    const retried = await dig(port, 'big.shop.svc.cluster.local', 'A');
    assert.match(retried, /Truncated, retrying in TCP mode/);
    assert.match(retried, /ANSWER: 60,/);
  });

  it('refuses a name outside the zone without an upstream', async () => {
    assert.equal(status(await dig(port, 'example.com', 'A')), 'REFUSED');
  });

  it('forwards names outside the zone to the upstream, over UDP and TCP, after a dead one', async () => {
    // A TCP port nobody listens on, and no UDP answer there either: the first upstream times out.
    const deadPort = await freePort();
    const forwarder = new DnsServer({
      source: new StaticRecordSource(shopObjects),
      listen: { host: '127.0.0.1', port: 0 },
      upstreams: [
        { host: '127.0.0.1', port: deadPort, family: 4 },
        { host: '127.0.0.1', port: upstreamPort, family: 4 },
      ],
      forwardTimeoutMs: 300,
      log: quiet,
    });
    const forwarderPort = (await forwarder.listen()).udpPort;
    try {
      const name = 'api.corp.svc.upstream.test';
      assert.deepEqual(records(await dig(forwarderPort, name, 'A', '+noall', '+answer')), [
        `${name}. A 192.0.2.10`,
      ]);
      assert.deepEqual(records(await dig(forwarderPort, name, 'A', '+tcp', '+noall', '+answer')), [
        `${name}. A 192.0.2.10`,
      ]);
      // The upstream's own negative answer comes back as it gave it.
      assert.equal(status(await dig(forwarderPort, 'nope.upstream.test', 'A')), 'NXDOMAIN');
      // Its own zone is still its own.
      assert.equal(status(await dig(forwarderPort, 'web.shop.svc.cluster.local', 'A')), 'NOERROR');
      assert.ok(forwarder.stats().forwarded >= 3);
      assert.ok(upstream.stats().tcpQueries >= 1, 'a TCP query is forwarded over TCP');
    } finally {
      await forwarder.close();
    }
    // Every upstream dead: SERVFAIL.
    const stranded = new DnsServer({
      source: new StaticRecordSource(),
      listen: { host: '127.0.0.1', port: 0 },
      upstreams: [{ host: '127.0.0.1', port: deadPort, family: 4 }],
      forwardTimeoutMs: 200,
      log: quiet,
    });
    const strandedPort = (await stranded.listen()).udpPort;
    try {
      assert.equal(status(await dig(strandedPort, 'example.com', 'A')), 'SERVFAIL');
    } finally {
      await stranded.close();
    }
  });

  it('answers from the new records as soon as the source changes', async () => {
    const name = 'web.shop.svc.cluster.local';
    const before = server.zone().serial;
    source.replace({
      ...shopObjects,
      services: [clusterIpService('web', 'shop', ['10.96.0.99']), ...shopObjects.services.slice(1)],
    });
    assert.deepEqual(records(await dig(port, name, 'A', '+noall', '+answer')), [
      `${name}. A 10.96.0.99`,
    ]);
    assert.ok(server.zone().serial > before, 'the SOA serial moves with the records');
    source.replace(shopObjects);
  });

  it('answers several queries on one TCP connection', async () => {
    const socket = new Socket();
    await new Promise<void>((resolve) => socket.connect(port, '127.0.0.1', resolve));
    try {
      const frames = [
        query('web.shop.svc.cluster.local', 'A', { id: 1 }),
        query('db.shop.svc.cluster.local', 'A', { id: 2 }),
      ].map((message) => {
        const framed = Buffer.alloc(message.length + 2);
        framed.writeUInt16BE(message.length, 0);
        message.copy(framed, 2);
        return framed;
      });
      // Both in one write: the server must split the stream on the length prefixes.
      socket.write(Buffer.concat(frames));
      const responses = await new Promise<Buffer[]>((resolve, reject) => {
        let data = Buffer.alloc(0);
        socket.on('error', reject);
        socket.on('data', (chunk: Buffer) => {
          data = Buffer.concat([data, chunk]);
          const found: Buffer[] = [];
          let offset = 0;
          while (
            data.length - offset >= 2 &&
            data.length - offset - 2 >= data.readUInt16BE(offset)
          ) {
            const length = data.readUInt16BE(offset);
            found.push(data.subarray(offset + 2, offset + 2 + length));
            offset += 2 + length;
          }
          if (found.length === 2) resolve(found);
        });
      });
      const decoded = responses.map(decodeResponse);
      assert.deepEqual(
        decoded.map((r) => [r.packet.id, r.answers[0]]),
        [
          [1, 'web.shop.svc.cluster.local A 10.96.0.10'],
          [2, 'db.shop.svc.cluster.local A 10.244.1.5'],
        ],
      );
    } finally {
      socket.destroy();
    }
  });
});

describe('TCP connections', { skip }, () => {
  it('closes a connection that sends nothing for the idle timeout', async () => {
    const server = new DnsServer({
      source: new StaticRecordSource(shopObjects),
      listen: { host: '127.0.0.1', port: 0 },
      tcpIdleTimeoutMs: 200,
      log: () => undefined,
    });
    const { tcpPort } = await server.listen();
    const socket = new Socket();
    try {
      const started = Date.now();
      const closed = new Promise<void>((resolve) =>
        socket.once('close', () => {
          resolve();
        }),
      );
      socket.connect(tcpPort, '127.0.0.1');
      await closed;
      const waited = Date.now() - started;
      assert.ok(waited >= 150 && waited < 2_000, `closed after ${waited} ms`);
    } finally {
      socket.destroy();
      await server.close();
    }
  });
});

/** A source that has not listed yet, until told. */
class PendingSource implements DnsRecordSource {
  #synced = false;
  readonly #listeners = new Set<() => void>();
  objects(): ClusterObjects {
    return shopObjects;
  }
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  synced(): boolean {
    return this.#synced;
  }
  sync(): void {
    this.#synced = true;
    for (const listener of this.#listeners) listener();
  }
}

async function httpStatus(port: number, path: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  await response.text();
  return response.status;
}

describe('readiness before the first listing', { skip }, () => {
  it('answers SERVFAIL and /ready 503 until the source has listed, then answers', async () => {
    const source = new PendingSource();
    const server = new DnsServer({
      source,
      listen: { host: '127.0.0.1', port: 0 },
      log: () => undefined,
    });
    const { udpPort } = await server.listen();
    const ready = await ProbeListener.listen('127.0.0.1', 0, {
      checks: { '/ready': () => server.ready() },
    });
    try {
      assert.equal(await httpStatus(ready.port, '/ready'), 503);
      assert.equal(status(await dig(udpPort, 'web.shop.svc.cluster.local', 'A')), 'SERVFAIL');
      source.sync();
      assert.equal(await httpStatus(ready.port, '/ready'), 200);
      assert.equal(status(await dig(udpPort, 'web.shop.svc.cluster.local', 'A')), 'NOERROR');
    } finally {
      await Promise.all([server.close(), ready.close()]);
    }
  });
});

describe('strata dns against an API server', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-dns-'));
  const socketPath = join(dir, 'api.sock');
  const client = new ApiClient(socketPath);
  let closeApi: (() => Promise<void>) | undefined;

  before(async () => {
    const api = await startApiServer({ store: new MemoryStore(), listen: { socketPath } });
    closeApi = () => api.close();
  });

  after(async () => {
    client.close();
    await closeApi?.();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the Services it watches, with /health and /ready, and stops on SIGTERM', async () => {
    const service: KubeObject = headlessService('db', 'default', [{ name: 'pg', port: 5432 }]);
    await client.create(service);
    await client.create(
      endpointSlice(
        'db-1',
        'default',
        'db',
        'IPv4',
        [{ addresses: ['10.244.1.5'], ready: true, hostname: 'db-0' }],
        [{ name: 'pg', port: 5432 }],
      ),
    );
    const [healthPort, readyPort] = [await freePort(), await freePort()];
    let log = '';
    const err = {
      write(text: string) {
        log += text;
        return true;
      },
    };
    const out = { write: () => true };
    const exited = dnsCommand(
      [
        '--api',
        socketPath,
        '--listen',
        '127.0.0.1:0',
        '--health-port',
        String(healthPort),
        '--ready-port',
        String(readyPort),
      ],
      { out, err },
    );
    try {
      const deadline = Date.now() + 5_000;
      while (!/ready$/m.test(log) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      const port = Number(/on 127\.0\.0\.1:(\d+) udp and tcp/.exec(log)?.[1]);
      assert.ok(port > 0, log);
      assert.equal(await httpStatus(healthPort, '/health'), 200);
      assert.equal(await httpStatus(readyPort, '/ready'), 200);
      const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
      assert.match(
        metrics,
        /^coredns_dns_requests_total\{server="dns:\/\/127\.0\.0\.1:\d+",zone="\.",proto="udp",family="1"\} \d+$/m,
      );
      assert.deepEqual(
        records(await dig(port, 'db-0.db.default.svc.cluster.local', 'A', '+noall', '+answer')),
        ['db-0.db.default.svc.cluster.local. A 10.244.1.5'],
      );
      // A Service created now reaches DNS through the watch.
      await client.create(clusterIpService('late', 'default', [], [{ name: 'http', port: 80 }]));
      const waitUntil = Date.now() + 5_000;
      let answer = '';
      while (Date.now() < waitUntil) {
        answer = await dig(port, 'late.default.svc.cluster.local', 'A');
        if (status(answer) === 'NOERROR') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(status(answer), 'NOERROR', answer);
    } finally {
      process.emit('SIGTERM');
    }
    assert.equal(await exited, 0);
    assert.match(log, /dns: stopping/);
  });
});
