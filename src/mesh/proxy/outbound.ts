/**
 * The node proxy's outbound path (15001, transparent): the accepted socket's
 * local address is the endpoint the kernel chose (after Service DNAT). An
 * enrolled destination gets a CONNECT stream to its own address on 15008,
 * with the source's certificate, expecting the destination's identity;
 * anything else a transparent connection from the source's address, straight on.
 */
import type { Socket } from 'node:net';
import { formatAuthority } from '../hbone/connect-request.js';
import { HboneConnectError } from '../hbone/errors.js';
import { relay } from '../hbone/relay.js';
import { formatSpiffeId } from '../identity/spiffe.js';
import type { ConnectionOpen } from '../telemetry/metrics.js';
import {
  countAtClose,
  describe,
  passthrough,
  refused,
  reset,
  trafficWorkload,
  type ProxyContext,
} from './connection.js';

/** Carries one connection a pod of this node opened. */
export async function proxyOutbound(context: ProxyContext, socket: Socket): Promise<void> {
  socket.allowHalfOpen = true;
  socket.pause();
  socket.on('error', () => undefined);
  const sourceIp = socket.remoteAddress ?? '';
  const destination = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
  const sourceText = `${sourceIp}:${socket.remotePort ?? 0}`;
  const destinationText = formatAuthority(destination);
  const source = context.localEnrolled(sourceIp);
  const target = context.options.workloads.byIp(destination.address);
  const base = {
    direction: 'outbound' as const,
    source: sourceText,
    destination: destinationText,
  };
  if (source !== undefined && target?.enrolled === true) {
    const open: ConnectionOpen = {
      reporter: 'source',
      source: trafficWorkload(source, source.identity),
      destination: trafficWorkload(target, target.identity),
      security: 'mutual_tls',
      sourceAddress: sourceText,
      destinationAddress: formatAuthority({ address: target.ip, port: context.ports.hbone }),
      hboneAddress: destinationText,
    };
    let stream;
    try {
      const certificate = await context.options.certificates.certificateFor(source.identity);
      stream = await context.requireClient().connect({
        source: certificate,
        destination,
        peer: { address: target.ip, port: context.ports.hbone },
        expectedIdentity: target.identity,
        sourceAddress: sourceIp,
      });
    } catch (error) {
      const denied = error instanceof HboneConnectError && error.status === 401;
      refused(context, open, denied ? 'DENY' : 'CONNECT', describe(error));
      context.decided({ ...base, outcome: denied ? 'deny' : 'error', reason: describe(error) });
      reset(socket);
      return;
    }
    const connection = context.metrics.open(open);
    context.decided({ ...base, outcome: 'hbone', sourceIdentity: formatSpiffeId(source.identity) });
    countAtClose(connection, socket);
    socket.resume();
    await relay(stream, socket);
    return;
  }
  // Not to an enrolled workload (or from a pod the capture still names but the index no longer
  // does): straight on, from the source's own address.
  const open: ConnectionOpen = {
    reporter: 'source',
    source: trafficWorkload(source ?? context.options.workloads.byIp(sourceIp)),
    destination: trafficWorkload(target),
    security: 'unknown',
    sourceAddress: sourceText,
    destinationAddress: destinationText,
  };
  await passthrough(context, socket, open, base, sourceIp, destination, 'passthrough');
}
