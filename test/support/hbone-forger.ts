/**
 * A forged HBONE client for test/e2e/mesh-security.test.ts, run as its own
 * process inside a node's network namespace (`ip netns exec <node> node
 * hbone-forger.js`): the test process cannot enter a namespace itself. It
 * speaks to a node proxy's port 15008 with whatever certificate the test made
 * (another CA's, an expired one, the wrong identity), through strata's own
 * HboneClient, and reports what happened.
 *
 * Input on stdin: one JSON ForgerRequest. Output on stdout: one JSON
 * ForgerResult per attempt, in order, one per line.
 */
import { constants as h2, connect as connectHttp2 } from 'node:http2';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { HboneClient } from '../../src/mesh/hbone/client.js';
import { HboneConnectError } from '../../src/mesh/hbone/errors.js';
import type { SpiffeId } from '../../src/mesh/identity/spiffe.js';
import type { WorkloadCertificate } from '../../src/mesh/identity/workload.js';

/** A WorkloadCertificate as JSON carries it (dates as ISO strings). */
export type CertificateJson = Omit<WorkloadCertificate, 'notBefore' | 'notAfter'> & {
  notBefore: string;
  notAfter: string;
};

export interface ForgerAttempt {
  name: string;
  /**
   * `hbone`: a CONNECT through HboneClient, sending `payload` and reading the
   * answer; `server-certificate`: a plain HTTP/2-over-TLS session to the peer
   * proxy, only to read the certificate it presents there.
   */
  kind: 'hbone' | 'server-certificate';
  certificate: CertificateJson;
  /** The roots this client trusts the peer proxy's chain to. */
  trustBundlePem: string;
  peer: { address: string; port: number };
  destination: { address: string; port: number };
  expectedIdentity: SpiffeId;
  /** Sent as `forwarded: for=<ip>`, the source workload's address. */
  sourceAddress?: string;
  payload?: string;
}

export interface ForgerRequest {
  attempts: ForgerAttempt[];
}

export interface ForgerResult {
  name: string;
  outcome: 'connected' | 'refused';
  /** What the destination answered (connected). */
  answer?: string;
  /** HboneConnectError's reason (refused): `tls`, `peer-identity`, `refused`, ... */
  reason?: string;
  /** The CONNECT's status when the peer proxy answered one other than 200. */
  status?: number;
  message?: string;
  /** The peer proxy's certificate (`server-certificate`): serial (upper-case hex) and URI SAN. */
  serverSerial?: string;
  serverSan?: string;
}

function certificateFromJson(json: CertificateJson): WorkloadCertificate {
  return { ...json, notBefore: new Date(json.notBefore), notAfter: new Date(json.notAfter) };
}

async function hbone(attempt: ForgerAttempt): Promise<ForgerResult> {
  const client = new HboneClient({
    trustBundlePem: attempt.trustBundlePem,
    connectTimeoutMs: 5000,
  });
  try {
    const stream = await client.connect({
      source: certificateFromJson(attempt.certificate),
      destination: attempt.destination,
      peer: attempt.peer,
      expectedIdentity: attempt.expectedIdentity,
      ...(attempt.sourceAddress === undefined ? {} : { sourceAddress: attempt.sourceAddress }),
    });
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      const timer = setTimeout(() => {
        stream.close(h2.NGHTTP2_CANCEL);
      }, 3000);
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (text += chunk));
      // Our side stays open until the destination has said all it will: a server
      // that sees our end first may hang up before answering.
      stream.once('end', () => stream.end());
      stream.once('close', () => {
        clearTimeout(timer);
        resolve(text);
      });
      if (attempt.payload !== undefined) stream.write(attempt.payload);
    });
    return { name: attempt.name, outcome: 'connected', answer };
  } catch (error) {
    if (!(error instanceof HboneConnectError)) throw error;
    return {
      name: attempt.name,
      outcome: 'refused',
      reason: error.reason,
      ...(error.status === undefined ? {} : { status: error.status }),
      message: error.message,
    };
  } finally {
    await client.close();
  }
}

/** The certificate the peer proxy presents for `destination`'s address, over a clean HTTP/2 session. */
async function serverCertificate(attempt: ForgerAttempt): Promise<ForgerResult> {
  const certificate = attempt.certificate;
  return new Promise<ForgerResult>((resolve) => {
    const session = connectHttp2(`https://${attempt.peer.address}:${attempt.peer.port}`, {
      createConnection: () =>
        connectTls({
          host: attempt.peer.address,
          port: attempt.peer.port,
          key: certificate.privateKeyPem,
          cert: certificate.certChainPem.join('\n'),
          ca: attempt.trustBundlePem,
          minVersion: 'TLSv1.3',
          ALPNProtocols: ['h2'],
          rejectUnauthorized: true,
          // The chain is verified; which identity it proves is what this attempt reports.
          checkServerIdentity: () => undefined,
        }),
    });
    const timer = setTimeout(() => {
      session.destroy();
      resolve({ name: attempt.name, outcome: 'refused', message: 'no TLS session within 5 s' });
    }, 5000);
    session.once('error', (error: Error) => {
      clearTimeout(timer);
      resolve({ name: attempt.name, outcome: 'refused', message: error.message });
    });
    session.once('connect', (_session, socket) => {
      clearTimeout(timer);
      const peer = (socket as TLSSocket).getPeerCertificate();
      session.close();
      resolve({
        name: attempt.name,
        outcome: 'connected',
        serverSerial: peer.serialNumber,
        serverSan: peer.subjectaltname ?? '',
      });
    });
  });
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const request = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ForgerRequest;
  for (const attempt of request.attempts) {
    const result =
      attempt.kind === 'hbone' ? await hbone(attempt) : await serverCertificate(attempt);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `hbone-forger: ${error instanceof Error ? (error.stack ?? '') : String(error)}\n`,
  );
  process.exitCode = 1;
});
