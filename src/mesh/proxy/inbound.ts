/**
 * The node proxy's inbound paths, to the enrolled pods of this node:
 * - HBONE (15008, transparent): each CONNECT is checked (a local enrolled
 *   workload of the identity the tunnel was made with), authorized
 *   (AuthorizationPolicy with the proven source identity) and connected from
 *   the source pod's address with SO_MARK 0x539, so NetworkPolicy judges it
 *   in the output hook as without the mesh.
 * - Plaintext (15006, transparent): PeerAuthentication (STRICT refuses),
 *   AuthorizationPolicy without an identity, then the same transparent connection.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { formatAuthority, parseForwardedFor } from '../hbone/connect-request.js';
import type { HboneConnectRequest, HboneRefusal } from '../hbone/server.js';
import { formatSpiffeId, sameSpiffeId } from '../identity/spiffe.js';
import { authorize, effectiveMtls, type AuthorizationDecision } from '../policy/index.js';
import type { ConnectionOpen, ResponseFlags } from '../telemetry/metrics.js';
import {
  connectUpstream,
  describe,
  passthrough,
  refused,
  reset,
  trafficWorkload,
  type ProxyContext,
} from './connection.js';

/** Carries one plaintext connection to a pod of this node, or refuses it. */
export async function proxyInboundPlaintext(context: ProxyContext, socket: Socket): Promise<void> {
  socket.allowHalfOpen = true;
  socket.pause();
  socket.on('error', () => undefined);
  const sourceIp = socket.remoteAddress ?? '';
  const destination = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
  const sourceText = `${sourceIp}:${socket.remotePort ?? 0}`;
  const destinationText = formatAuthority(destination);
  const base = {
    direction: 'inbound-plaintext' as const,
    source: sourceText,
    destination: destinationText,
  };
  const target = context.localEnrolled(destination.address);
  const open: ConnectionOpen = {
    reporter: 'destination',
    source: trafficWorkload(context.options.workloads.byIp(sourceIp)),
    destination: trafficWorkload(target, target?.identity),
    security: 'unknown',
    sourceAddress: sourceText,
    destinationAddress: destinationText,
  };
  if (target !== undefined) {
    const policy = { rootNamespace: context.options.rootNamespace ?? 'istio-system' };
    const mtls = effectiveMtls(
      target,
      destination.port,
      context.options.workloads.peerAuthentications(),
      policy,
    );
    let refusal: string | undefined;
    if (!mtls.acceptsPlaintext) {
      refusal = `plaintext refused: mTLS mode ${mtls.mode}${typeof mtls.source === 'string' ? '' : ` (PeerAuthentication ${mtls.source.namespace}/${mtls.source.name})`}`;
    } else {
      const decision = authorize(
        target,
        { sourceIp, destinationIp: destination.address, destinationPort: destination.port },
        context.options.workloads.authorizationPolicies(),
        policy,
      );
      context.warn(decision.warnings);
      if (decision.verdict === 'deny') refusal = denialReason(decision);
    }
    if (refusal !== undefined) {
      refused(context, open, 'DENY', refusal);
      context.decided({ ...base, outcome: 'deny', reason: refusal });
      reset(socket);
      return;
    }
  }
  await passthrough(context, socket, open, base, sourceIp, destination, 'allow');
}

/** Answers one CONNECT of an HBONE tunnel: the upstream socket to relay to, or a refusal. */
export async function proxyInboundHbone(
  context: ProxyContext,
  request: HboneConnectRequest,
): Promise<Duplex | HboneRefusal> {
  const destination = request.destination;
  const forwarded = parseForwardedFor(headerText(request.headers.forwarded));
  const sourceIp = forwarded ?? request.peer.address;
  const sourceText = sourceIp;
  const destinationText = formatAuthority(destination);
  const base = {
    direction: 'inbound-hbone' as const,
    source: sourceText,
    destination: destinationText,
    sourceIdentity: formatSpiffeId(request.source),
  };
  const target = context.localEnrolled(destination.address);
  const sourceWorkload = context.options.workloads.byIp(sourceIp);
  const open: ConnectionOpen = {
    reporter: 'destination',
    source: trafficWorkload(sourceWorkload, request.source),
    destination: trafficWorkload(target, target?.identity),
    security: 'mutual_tls',
    // The source workload's address, as ztunnel logs it (the tunnel's peer is a node).
    sourceAddress: sourceIp,
    destinationAddress: formatAuthority(request.local),
    hboneAddress: destinationText,
  };
  const refuse = (status: number, flags: ResponseFlags, reason: string): HboneRefusal => {
    refused(context, open, flags, reason);
    context.decided({ ...base, outcome: flags === 'DENY' ? 'deny' : 'error', reason });
    return { refuse: status, reason };
  };
  if (target === undefined) {
    return refuse(400, 'CONNECT', `${destinationText} is not an enrolled workload of this node`);
  }
  if (!sameSpiffeId(target.identity, request.localIdentity)) {
    return refuse(
      400,
      'CONNECT',
      `${destinationText} runs as ${formatSpiffeId(target.identity)}, not ${formatSpiffeId(request.localIdentity)} the tunnel was made with`,
    );
  }
  // The upstream leaves from the source's address, so NetworkPolicy judges it
  // by that address: a pod's address must belong to the identity the tunnel
  // proved, whether the tunnel came from it (as tunnels from node proxies do)
  // or a `forwarded` header names it. Otherwise a pod holding another
  // identity's certificate would be judged by one layer as itself and by the
  // other as the identity it borrowed.
  if (
    forwarded !== undefined &&
    forwarded !== request.peer.address &&
    context.options.workloads.byIp(request.peer.address) !== undefined
  ) {
    return refuse(
      401,
      'DENY',
      `the tunnel from pod address ${request.peer.address} names another source, ${forwarded}`,
    );
  }
  if (sourceWorkload !== undefined && !sameSpiffeId(sourceWorkload.identity, request.source)) {
    return refuse(
      401,
      'DENY',
      `source address ${sourceIp} belongs to ${formatSpiffeId(sourceWorkload.identity)}, not ${formatSpiffeId(request.source)}`,
    );
  }
  // HBONE is mutual TLS: every PeerAuthentication mode accepts it.
  const decision = authorize(
    target,
    {
      sourceIdentity: request.source,
      sourceIp,
      destinationIp: destination.address,
      destinationPort: destination.port,
    },
    context.options.workloads.authorizationPolicies(),
    { rootNamespace: context.options.rootNamespace ?? 'istio-system' },
  );
  context.warn(decision.warnings);
  if (decision.verdict === 'deny') return refuse(401, 'DENY', denialReason(decision));
  let upstream: Socket;
  try {
    upstream = await connectUpstream(sourceIp, destination);
  } catch (error) {
    return refuse(503, 'CONNECT', `cannot connect to ${destinationText}: ${describe(error)}`);
  }
  upstream.allowHalfOpen = true;
  context.sockets.add(upstream);
  const connection = context.metrics.open(open);
  upstream.once('close', (hadError: boolean) => {
    context.sockets.delete(upstream);
    // Facing the pod: what it read came from the client, what it wrote went back.
    connection.received(upstream.bytesWritten);
    connection.sent(upstream.bytesRead);
    connection.close(hadError ? { error: 'connection reset' } : {});
  });
  context.decided({ ...base, outcome: 'allow' });
  return upstream;
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function denialReason(decision: AuthorizationDecision): string {
  switch (decision.reason) {
    case 'deny-rule':
      return `denied by AuthorizationPolicy ${decision.decidedBy.namespace}/${decision.decidedBy.name} (rule ${decision.decidedBy.ruleIndex})`;
    case 'no-allow-rule-matched':
      return `no ALLOW rule matched (${decision.allowPolicies.map((p) => `${p.namespace}/${p.name}`).join(', ')})`;
    case 'custom-unsupported':
      return `CUSTOM AuthorizationPolicy ${decision.decidedBy.namespace}/${decision.decidedBy.name} is not supported yet: ${decision.unsupported}`;
    default:
      return 'allowed';
  }
}
