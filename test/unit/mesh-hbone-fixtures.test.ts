// What the HBONE tests share: a real CA from the identity module in a
// temporary directory, workload certificates it signs, an HBONE server whose
// handler dials the destination on loopback, and TCP echo servers to dial.
// It holds no tests of its own.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { CertificateAuthority } from '../../src/mesh/identity/ca.js';
import type { SpiffeId } from '../../src/mesh/identity/spiffe.js';
import { generateWorkloadKey, type WorkloadCertificate } from '../../src/mesh/identity/workload.js';
import type { SocketAddress } from '../../src/mesh/hbone/connect-request.js';
import {
  HboneServer,
  type HboneConnectRequest,
  type HboneHandler,
  type HboneServerEvent,
  type HboneServerOptions,
} from '../../src/mesh/hbone/server.js';

export function identity(
  namespace: string,
  serviceAccount: string,
  trustDomain = 'cluster.local',
): SpiffeId {
  return { trustDomain, namespace, serviceAccount };
}

/** A CA in a temporary directory, with a clock the test can move. */
export interface TestCa {
  ca: CertificateAuthority;
  trustBundlePem: string;
  /** Signs a fresh key for `id`. */
  issue(id: SpiffeId, options?: { ttlSeconds?: number }): Promise<WorkloadCertificate>;
  /** Signs as if it were `at`. */
  issueAt(at: Date, id: SpiffeId, options?: { ttlSeconds?: number }): Promise<WorkloadCertificate>;
  cleanup(): Promise<void>;
}

export async function testCa(trustDomain = 'cluster.local'): Promise<TestCa> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-hbone-ca-'));
  // The root is made at open; backdate it so certificates signed "in the past" chain to it.
  let clock: Date | undefined = new Date(Date.now() - 7 * 24 * 3600_000);
  const ca = await CertificateAuthority.open({
    dir,
    trustDomain,
    now: () => clock ?? new Date(),
  });
  clock = undefined;
  const issueAt = async (at: Date | undefined, id: SpiffeId, options?: { ttlSeconds?: number }) => {
    const key = await generateWorkloadKey();
    const csr = await key.createCsr(id);
    clock = at;
    try {
      const issued = await ca.sign(csr, id, options);
      return { ...issued, privateKeyPem: key.privateKeyPem };
    } finally {
      clock = undefined;
    }
  };
  return {
    ca,
    trustBundlePem: ca.trustBundlePem(),
    issue: (id, options) => issueAt(undefined, id, options),
    issueAt,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A TCP server on loopback that echoes everything and closes its side when the client does. */
export async function echoServer(): Promise<{ server: Server; address: SocketAddress }> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  return { server, address: await listen(server) };
}

export async function listen(server: Server): Promise<SocketAddress> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const bound = server.address();
  if (bound === null || typeof bound === 'string') throw new Error('not listening');
  return { address: bound.address, port: bound.port };
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => {
      resolve();
    });
  });
}

/** The handler the proxy will have, minus authorization: dial the destination, refuse 503 when it cannot. */
export const dialDestination: HboneHandler = (request: HboneConnectRequest) =>
  new Promise<Duplex | { refuse: number; reason: string }>((resolve) => {
    const upstream: Socket = connect({
      host: request.destination.address,
      port: request.destination.port,
      allowHalfOpen: true,
    });
    upstream.once('connect', () => {
      resolve(upstream);
    });
    upstream.once('error', (error) => {
      resolve({ refuse: 503, reason: error.message });
    });
  });

/** An HBONE server on 127.0.0.1, port 0, presenting `certificate` on every connection. */
export async function hboneServer(
  ca: TestCa,
  certificate: WorkloadCertificate,
  options: Partial<HboneServerOptions> = {},
): Promise<{ server: HboneServer; address: SocketAddress; events: HboneServerEvent[] }> {
  const events: HboneServerEvent[] = [];
  const server = new HboneServer({
    address: '127.0.0.1',
    port: 0,
    trustDomain: 'cluster.local',
    trustBundlePem: ca.trustBundlePem,
    certificateFor: () => ({ certificate }),
    handler: dialDestination,
    onEvent: (event) => events.push(event),
    ...options,
  });
  const address = await server.listen();
  return { server, address, events };
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Everything a readable side delivers until it ends. */
export function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => {
      resolve(Buffer.concat(chunks));
    });
    stream.once('error', reject);
  });
}

/** Resolves on the first event matching `match`, looking at what already happened too. */
export async function waitForEvent<T extends HboneServerEvent>(
  events: HboneServerEvent[],
  match: (event: HboneServerEvent) => event is T,
  timeoutMs = 3000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = events.find(match);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('timed out waiting for an HBONE server event');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
