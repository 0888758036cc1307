/**
 * What every path of the node proxy shares: the ProxyContext the NodeProxy
 * spine (proxy.ts) hands its paths, the telemetry of one connection (its
 * workloads, its refusal or its byte counts), and the transparent connection
 * straight on (passthrough) that outbound and inbound plaintext both end in.
 */
import type { Socket } from 'node:net';
import { connectTransparent } from '../../kernel/transparent.js';
import type { HboneClient } from '../hbone/client.js';
import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import type {
  ConnectionOpen,
  ResponseFlags,
  TcpConnection,
  TcpMetrics,
  TrafficWorkload,
} from '../telemetry/metrics.js';
import { proxyMark } from './capture.js';
import type { NodeProxyOptions, NodeProxyPorts, ProxyDecision } from './proxy.js';
import type { Workload } from './workloads.js';

/** The NodeProxy state its connection paths need. */
export interface ProxyContext {
  readonly options: NodeProxyOptions;
  readonly ports: NodeProxyPorts;
  readonly metrics: TcpMetrics;
  /** Sockets the proxy holds, destroyed at stop. */
  readonly sockets: Set<Socket>;
  /** Records one connection's fate (counts, recent, the log line for a refusal). */
  decided(decision: ProxyDecision): void;
  /** The workload at `ip` when it is an enrolled pod of this node. */
  localEnrolled(ip: string): Workload | undefined;
  /** The HBONE client; throws when the proxy is not started. */
  requireClient(): HboneClient;
  /**
   * Policy warnings met while deciding (a policy the node proxy cannot
   * enforce as written: HTTP attributes, CUSTOM, AUDIT); each is logged once.
   */
  warn(warnings: readonly string[]): void;
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function trafficWorkload(
  workload: Workload | undefined,
  identity?: SpiffeId,
): TrafficWorkload {
  const out: TrafficWorkload = {};
  if (workload !== undefined) {
    out.pod = workload.telemetry.pod;
    out.namespace = workload.telemetry.namespace;
    out.workload = workload.telemetry.workload;
    out.canonicalService = workload.telemetry.canonicalService;
    out.canonicalRevision = workload.telemetry.canonicalRevision;
  }
  if (identity !== undefined) out.identity = formatSpiffeId(identity);
  return out;
}

export function reset(socket: Socket): void {
  if (socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

/**
 * Bytes both ways between two sockets, each direction closing on its own
 * (FIN for FIN), an error on either side resetting the other. Resolves when
 * both are closed.
 */
export function splice(a: Socket, b: Socket): Promise<{ error?: Error }> {
  return new Promise((resolve) => {
    let failure: Error | undefined;
    let closed = 0;
    const onClose = () => {
      closed += 1;
      if (closed === 2) resolve(failure === undefined ? {} : { error: failure });
    };
    const onError = (other: Socket) => (error: Error) => {
      failure ??= error;
      reset(other);
    };
    a.on('error', onError(b));
    b.on('error', onError(a));
    a.once('close', onClose);
    b.once('close', onClose);
    a.pipe(b);
    b.pipe(a);
  });
}

/** Counts a connection that was refused before any byte passed. */
export function refused(
  context: ProxyContext,
  open: ConnectionOpen,
  flags: ResponseFlags,
  error: string,
): void {
  context.metrics.open(open).close({ responseFlags: flags, error });
}

/** Counts the bytes of `client` (the socket facing whoever opened the connection) at its close. */
export function countAtClose(connection: TcpConnection, client: Socket): void {
  client.once('close', (hadError: boolean) => {
    connection.received(client.bytesRead);
    connection.sent(client.bytesWritten);
    connection.close(hadError ? { error: 'connection reset' } : {});
  });
}

/**
 * The proxy's connection to a workload, from the source's own address (so
 * NetworkPolicy judges the source in the output hook), marked 0x539 so the
 * replies come back to this socket (capture.ts).
 */
export function connectUpstream(
  sourceIp: string,
  destination: { address: string; port: number },
): Promise<Socket> {
  return connectTransparent({
    source: sourceIp,
    host: destination.address,
    port: destination.port,
    mark: proxyMark,
  });
}

/** A transparent connection from the source's own address, straight on to `destination`. */
export async function passthrough(
  context: ProxyContext,
  socket: Socket,
  open: ConnectionOpen,
  base: Omit<ProxyDecision, 'outcome'>,
  sourceIp: string,
  destination: { address: string; port: number },
  outcome: 'passthrough' | 'allow',
): Promise<void> {
  let upstream: Socket;
  try {
    upstream = await connectUpstream(sourceIp, destination);
  } catch (error) {
    refused(context, open, 'CONNECT', describe(error));
    context.decided({ ...base, outcome: 'error', reason: describe(error) });
    reset(socket);
    return;
  }
  upstream.allowHalfOpen = true;
  context.sockets.add(upstream);
  upstream.once('close', () => context.sockets.delete(upstream));
  const connection = context.metrics.open(open);
  context.decided({ ...base, outcome });
  countAtClose(connection, socket);
  socket.resume();
  await splice(socket, upstream);
}
