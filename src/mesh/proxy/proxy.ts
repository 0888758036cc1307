/**
 * The node's L4 proxy (ztunnel's role; docs/mesh.md, "Next: the node
 * proxy"): what `inet strata_mesh` (capture.ts) hands it, it carries.
 *
 * - Outbound (15001, transparent): the accepted socket's local address is
 *   the endpoint the kernel chose (after Service DNAT). An enrolled
 *   destination gets a CONNECT stream to its own address on 15008, with the
 *   source's certificate, expecting the destination's identity; anything
 *   else a transparent connection from the source's address, straight on.
 * - Inbound HBONE (15008, transparent): the HBONE server presents the
 *   certificate of the workload the tunnel was addressed to; each CONNECT is
 *   checked (a local enrolled workload of that identity), authorized
 *   (AuthorizationPolicy with the proven source identity) and connected
 *   from the source pod's address with SO_MARK 0x539, so NetworkPolicy
 *   judges it in the output hook as without the mesh.
 * - Inbound plaintext (15006, transparent): PeerAuthentication (STRICT
 *   refuses), AuthorizationPolicy without an identity, then the same
 *   transparent connection.
 *
 * Every proxied connection is counted in `istio_tcp_*` (served on 15020) and
 * logged as one JSON line at close. The workload index and the certificates
 * come from outside: the agent feeds the index from its informers and holds
 * a CertificateManager (src/mesh/certificates/); tests give a static index
 * and a local CA.
 */
import type { Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connectTransparent, listenTransparent } from '../../kernel/transparent.js';
import { HboneClient } from '../hbone/client.js';
import { formatAuthority, parseForwardedFor } from '../hbone/connect-request.js';
import { HboneConnectError } from '../hbone/errors.js';
import { relay } from '../hbone/relay.js';
import {
  HboneServer,
  type HboneConnectRequest,
  type HboneRefusal,
  type HboneServerEvent,
} from '../hbone/server.js';
import { formatSpiffeId, sameSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import type { WorkloadCertificate } from '../identity/workload.js';
import { authorize, effectiveMtls, type AuthorizationDecision } from '../policy/index.js';
import { AccessLog, openAccessLogFile } from '../telemetry/access-log.js';
import {
  TcpMetrics,
  type ConnectionOpen,
  type ResponseFlags,
  type TcpConnection,
  type TrafficWorkload,
} from '../telemetry/metrics.js';
import { Readiness, TelemetryServer } from '../telemetry/server.js';
import { defaultCapturePorts, proxyMark } from './capture.js';
import type { Workload, WorkloadIndex } from './workloads.js';

/**
 * Where the proxy gets its workloads' certificates: CertificateManager
 * (src/mesh/certificates/manager.ts) has this shape.
 */
export interface WorkloadCertificates {
  certificateFor(identity: SpiffeId): Promise<WorkloadCertificate>;
  trustBundle(): Promise<string>;
}

export interface NodeProxyPorts {
  outbound: number;
  inboundPlaintext: number;
  hbone: number;
  /** Metrics (`/metrics`, `/stats/prometheus`). */
  stats: number;
  readiness: number;
}

export interface NodeProxyOptions {
  /** This node's name: only its own pods are served inbound. */
  nodeName: string;
  workloads: WorkloadIndex;
  certificates: WorkloadCertificates;
  /** PeerAuthentication's and AuthorizationPolicy's root namespace; `istio-system`. */
  rootNamespace?: string;
  /** The IPv4 address the listeners bind; `0.0.0.0`. */
  address?: string;
  ports?: Partial<NodeProxyPorts>;
  /** One JSON line per connection is appended here; none when unset. */
  accessLogPath?: string;
  /** Diagnostics (one line each). */
  log?: (line: string) => void;
  /** Deadline for an outbound HBONE connect; 10 s. */
  connectTimeoutMs?: number;
}

export type ProxyDirection = 'outbound' | 'inbound-hbone' | 'inbound-plaintext';

/** One connection's fate, as status() reports it. */
export interface ProxyDecision {
  direction: ProxyDirection;
  source: string;
  destination: string;
  /** `hbone`: tunnelled; `passthrough`: sent on in plaintext; `deny`/`error`: refused or failed. */
  outcome: 'hbone' | 'passthrough' | 'allow' | 'deny' | 'error';
  sourceIdentity?: string;
  reason?: string;
}

export interface NodeProxyStatus {
  running: boolean;
  ports: NodeProxyPorts;
  /** Connections being proxied now. */
  open: number;
  /** Decisions so far by direction and outcome: `outbound/hbone` → 3. */
  counts: Record<string, number>;
  /** The latest decisions, oldest first (at most 100). */
  recent: ProxyDecision[];
  /** HBONE sessions (mTLS tunnel connections) the server holds. */
  inboundSessions: number;
  /** HBONE sessions the client holds. */
  outboundSessions: number;
}

const defaultPorts: NodeProxyPorts = {
  outbound: defaultCapturePorts.outbound,
  inboundPlaintext: defaultCapturePorts.inboundPlaintext,
  hbone: defaultCapturePorts.hbone,
  stats: 15020,
  readiness: 15021,
};

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function trafficWorkload(workload: Workload | undefined, identity?: SpiffeId): TrafficWorkload {
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

function reset(socket: Socket): void {
  if (socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

/**
 * Bytes both ways between two sockets, each direction closing on its own
 * (FIN for FIN), an error on either side resetting the other. Resolves when
 * both are closed.
 */
function splice(a: Socket, b: Socket): Promise<{ error?: Error }> {
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

/**
 * The HBONE server takes sockets accepted by its own listener; the proxy's
 * listener is transparent (made through koffi), so its sockets are handed to
 * the server's listener as if that had accepted them. HboneServer has no
 * public way in (`listen({ fd })` or `accept(socket)` would be one), hence
 * this one narrow reach into it.
 */
function injectInto(server: HboneServer, socket: Socket): void {
  const listener = (server as unknown as { listener: Server }).listener;
  listener.emit('connection', socket);
}

export class NodeProxy {
  readonly #options: NodeProxyOptions;
  readonly #ports: NodeProxyPorts;
  readonly #address: string;
  readonly #metrics: TcpMetrics;
  readonly #readiness = new Readiness(['listeners']);
  readonly #sockets = new Set<Socket>();
  readonly #counts = new Map<string, number>();
  readonly #recent: ProxyDecision[] = [];
  #accessLog: AccessLog | undefined;
  #client: HboneClient | undefined;
  #server: HboneServer | undefined;
  #listeners: Server[] = [];
  #telemetry: TelemetryServer | undefined;
  #running = false;

  constructor(options: NodeProxyOptions) {
    this.#options = options;
    this.#ports = { ...defaultPorts, ...options.ports };
    this.#address = options.address ?? '0.0.0.0';
    this.#metrics = new TcpMetrics({
      onClose: (connection) => {
        this.#accessLog?.write(connection);
      },
    });
  }

  get metrics(): TcpMetrics {
    return this.#metrics;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    const trustBundlePem = await this.#options.certificates.trustBundle();
    const trustDomain = this.#options.workloads.trustDomain;
    if (this.#options.accessLogPath !== undefined) {
      this.#accessLog = new AccessLog(openAccessLogFile(this.#options.accessLogPath));
    }
    this.#client = new HboneClient({
      trustBundlePem,
      ...(this.#options.connectTimeoutMs === undefined
        ? {}
        : { connectTimeoutMs: this.#options.connectTimeoutMs }),
    });
    const server = new HboneServer({
      trustDomain,
      trustBundlePem,
      port: this.#ports.hbone,
      certificateFor: async (connection) => {
        const workload = this.#localEnrolled(connection.local.address);
        if (workload === undefined) return undefined;
        return { certificate: await this.#options.certificates.certificateFor(workload.identity) };
      },
      handler: (request) => this.#inboundHbone(request),
      onEvent: (event) => {
        this.#onHboneEvent(event);
      },
    });
    this.#server = server;
    this.#running = true;
    try {
      const track = (socket: Socket) => {
        this.#sockets.add(socket);
        socket.once('close', () => this.#sockets.delete(socket));
      };
      this.#listeners.push(
        await listenTransparent(this.#address, this.#ports.outbound, (socket) => {
          track(socket);
          void this.#outbound(socket);
        }),
        await listenTransparent(this.#address, this.#ports.inboundPlaintext, (socket) => {
          track(socket);
          void this.#inboundPlaintext(socket);
        }),
        await listenTransparent(this.#address, this.#ports.hbone, (socket) => {
          injectInto(server, socket);
        }),
      );
      this.#telemetry = new TelemetryServer({
        registries: [this.#metrics.registry],
        readiness: this.#readiness,
        stats: { address: this.#address, port: this.#ports.stats },
        readinessProbe: { address: this.#address, port: this.#ports.readiness },
      });
      await this.#telemetry.listen();
      this.#readiness.markReady();
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    const listeners = this.#listeners;
    this.#listeners = [];
    await Promise.all(
      listeners.map(
        (listener) =>
          new Promise<void>((resolve) => {
            listener.close(() => {
              resolve();
            });
          }),
      ),
    );
    for (const socket of this.#sockets) socket.destroy();
    await this.#server?.close();
    await this.#client?.close();
    await this.#telemetry?.close();
    this.#metrics.flush();
    this.#metrics.stop();
    await this.#accessLog?.close();
    this.#accessLog = undefined;
  }

  status(): NodeProxyStatus {
    return {
      running: this.#running,
      ports: { ...this.#ports },
      open: this.#metrics.openConnections,
      counts: Object.fromEntries(this.#counts),
      recent: [...this.#recent],
      inboundSessions: this.#server?.sessionCount() ?? 0,
      outboundSessions: this.#client?.sessions().length ?? 0,
    };
  }

  #decided(decision: ProxyDecision): void {
    const key = `${decision.direction}/${decision.outcome}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    this.#recent.push(decision);
    if (this.#recent.length > 100) this.#recent.shift();
    if (decision.outcome === 'deny' || decision.outcome === 'error') {
      this.#options.log?.(
        `mesh proxy: ${decision.direction} ${decision.source} -> ${decision.destination}: ${decision.outcome}${decision.reason === undefined ? '' : `: ${decision.reason}`}`,
      );
    }
  }

  /** The workload at `ip` when it is an enrolled pod of this node. */
  #localEnrolled(ip: string): Workload | undefined {
    const workload = this.#options.workloads.byIp(ip);
    return workload?.enrolled === true && workload.nodeName === this.#options.nodeName
      ? workload
      : undefined;
  }

  /** Counts a connection that was refused before any byte passed. */
  #refused(open: ConnectionOpen, flags: ResponseFlags, error: string): void {
    this.#metrics.open(open).close({ responseFlags: flags, error });
  }

  /** Counts the bytes of `client` (the socket facing whoever opened the connection) at its close. */
  #countAtClose(connection: TcpConnection, client: Socket): void {
    client.once('close', (hadError: boolean) => {
      connection.received(client.bytesRead);
      connection.sent(client.bytesWritten);
      connection.close(hadError ? { error: 'connection reset' } : {});
    });
  }

  async #outbound(socket: Socket): Promise<void> {
    socket.allowHalfOpen = true;
    socket.pause();
    socket.on('error', () => undefined);
    const sourceIp = socket.remoteAddress ?? '';
    const destination = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
    const sourceText = `${sourceIp}:${socket.remotePort ?? 0}`;
    const destinationText = formatAuthority(destination);
    const source = this.#localEnrolled(sourceIp);
    const target = this.#options.workloads.byIp(destination.address);
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
        destinationAddress: formatAuthority({ address: target.ip, port: this.#ports.hbone }),
        hboneAddress: destinationText,
      };
      let stream;
      try {
        const certificate = await this.#options.certificates.certificateFor(source.identity);
        stream = await this.#requireClient().connect({
          source: certificate,
          destination,
          peer: { address: target.ip, port: this.#ports.hbone },
          expectedIdentity: target.identity,
          sourceAddress: sourceIp,
        });
      } catch (error) {
        const denied = error instanceof HboneConnectError && error.status === 401;
        this.#refused(open, denied ? 'DENY' : 'CONNECT', describe(error));
        this.#decided({ ...base, outcome: denied ? 'deny' : 'error', reason: describe(error) });
        reset(socket);
        return;
      }
      const connection = this.#metrics.open(open);
      this.#decided({ ...base, outcome: 'hbone', sourceIdentity: formatSpiffeId(source.identity) });
      this.#countAtClose(connection, socket);
      socket.resume();
      await relay(stream, socket);
      return;
    }
    // Not to an enrolled workload (or from a pod the capture still names but the index no longer
    // does): straight on, from the source's own address.
    const open: ConnectionOpen = {
      reporter: 'source',
      source: trafficWorkload(source ?? this.#options.workloads.byIp(sourceIp)),
      destination: trafficWorkload(target),
      security: 'unknown',
      sourceAddress: sourceText,
      destinationAddress: destinationText,
    };
    await this.#passthrough(socket, open, base, sourceIp, destination, 'passthrough');
  }

  async #passthrough(
    socket: Socket,
    open: ConnectionOpen,
    base: Omit<ProxyDecision, 'outcome'>,
    sourceIp: string,
    destination: { address: string; port: number },
    outcome: 'passthrough' | 'allow',
  ): Promise<void> {
    let upstream: Socket;
    try {
      upstream = await connectTransparent({
        source: sourceIp,
        host: destination.address,
        port: destination.port,
        mark: proxyMark,
      });
    } catch (error) {
      this.#refused(open, 'CONNECT', describe(error));
      this.#decided({ ...base, outcome: 'error', reason: describe(error) });
      reset(socket);
      return;
    }
    upstream.allowHalfOpen = true;
    this.#sockets.add(upstream);
    upstream.once('close', () => this.#sockets.delete(upstream));
    const connection = this.#metrics.open(open);
    this.#decided({ ...base, outcome });
    this.#countAtClose(connection, socket);
    socket.resume();
    await splice(socket, upstream);
  }

  async #inboundPlaintext(socket: Socket): Promise<void> {
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
    const target = this.#localEnrolled(destination.address);
    const open: ConnectionOpen = {
      reporter: 'destination',
      source: trafficWorkload(this.#options.workloads.byIp(sourceIp)),
      destination: trafficWorkload(target, target?.identity),
      security: 'unknown',
      sourceAddress: sourceText,
      destinationAddress: destinationText,
    };
    if (target !== undefined) {
      const policy = { rootNamespace: this.#options.rootNamespace ?? 'istio-system' };
      const mtls = effectiveMtls(
        target,
        destination.port,
        this.#options.workloads.peerAuthentications(),
        policy,
      );
      let refusal: string | undefined;
      if (!mtls.acceptsPlaintext) {
        refusal = `plaintext refused: mTLS mode ${mtls.mode}${typeof mtls.source === 'string' ? '' : ` (PeerAuthentication ${mtls.source.namespace}/${mtls.source.name})`}`;
      } else {
        const decision = authorize(
          target,
          { sourceIp, destinationIp: destination.address, destinationPort: destination.port },
          this.#options.workloads.authorizationPolicies(),
          policy,
        );
        if (decision.verdict === 'deny') refusal = denialReason(decision);
      }
      if (refusal !== undefined) {
        this.#refused(open, 'DENY', refusal);
        this.#decided({ ...base, outcome: 'deny', reason: refusal });
        reset(socket);
        return;
      }
    }
    await this.#passthrough(socket, open, base, sourceIp, destination, 'allow');
  }

  async #inboundHbone(request: HboneConnectRequest): Promise<Duplex | HboneRefusal> {
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
    const target = this.#localEnrolled(destination.address);
    const sourceWorkload = this.#options.workloads.byIp(sourceIp);
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
      this.#refused(open, flags, reason);
      this.#decided({ ...base, outcome: flags === 'DENY' ? 'deny' : 'error', reason });
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
    // The source proxy names the source's address; a known workload's address
    // must belong to the identity it proved, or NetworkPolicy would judge a lie.
    if (
      sourceWorkload !== undefined &&
      !sameSpiffeId(sourceWorkload.identity, request.source) &&
      forwarded !== undefined
    ) {
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
      this.#options.workloads.authorizationPolicies(),
      { rootNamespace: this.#options.rootNamespace ?? 'istio-system' },
    );
    if (decision.verdict === 'deny') return refuse(401, 'DENY', denialReason(decision));
    let upstream: Socket;
    try {
      upstream = await connectTransparent({
        source: sourceIp,
        host: destination.address,
        port: destination.port,
        mark: proxyMark,
      });
    } catch (error) {
      return refuse(503, 'CONNECT', `cannot connect to ${destinationText}: ${describe(error)}`);
    }
    upstream.allowHalfOpen = true;
    this.#sockets.add(upstream);
    const connection = this.#metrics.open(open);
    upstream.once('close', (hadError: boolean) => {
      this.#sockets.delete(upstream);
      // Facing the pod: what it read came from the client, what it wrote went back.
      connection.received(upstream.bytesWritten);
      connection.sent(upstream.bytesRead);
      connection.close(hadError ? { error: 'connection reset' } : {});
    });
    this.#decided({ ...base, outcome: 'allow' });
    return upstream;
  }

  #onHboneEvent(event: HboneServerEvent): void {
    if (event.type === 'connection-refused') {
      this.#decided({
        direction: 'inbound-hbone',
        source: formatAuthority(event.remote),
        destination: '',
        outcome: 'error',
        reason: `${event.reason}${event.error === undefined ? '' : `: ${describe(event.error)}`}`,
      });
    }
  }

  #requireClient(): HboneClient {
    if (this.#client === undefined) throw new Error('The node proxy is not started');
    return this.#client;
  }
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
