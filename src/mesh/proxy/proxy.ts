/**
 * The node's L4 proxy (ztunnel's role; docs/mesh.md, "Next: the node
 * proxy"): what `inet strata_mesh` (capture.ts) hands it, it carries.
 *
 * - Outbound (15001, transparent): the accepted socket's local address is
 *   the endpoint the kernel chose (after Service DNAT). An enrolled
 *   destination gets a CONNECT stream to its own address on 15008, with the
 *   source's certificate, expecting the destination's identity, over a
 *   tunnel that leaves from the source pod's address (SO_MARK 0x539);
 *   anything else a transparent connection from the source's address,
 *   straight on.
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
 *
 * This file is the spine: the listeners, the lifecycle and status. The paths
 * live beside it: outbound.ts, inbound.ts (HBONE and plaintext), and
 * connection.ts (what they share).
 */
import { createConnection, type Server, type Socket } from 'node:net';
import {
  dialTransparent,
  listenTransparent,
  loadTransparentSockets,
} from '../../kernel/transparent.js';
import { HboneClient } from '../hbone/client.js';
import { formatAuthority } from '../hbone/connect-request.js';
import { HboneServer, type HboneServerEvent } from '../hbone/server.js';
import type { SpiffeId } from '../identity/spiffe.js';
import type { WorkloadCertificate } from '../identity/workload.js';
import { AccessLog, openAccessLogFile } from '../telemetry/access-log.js';
import { TcpMetrics } from '../telemetry/metrics.js';
import { Readiness, TelemetryServer } from '../telemetry/server.js';
import { defaultCapturePorts, proxyMark } from './capture.js';
import { describe, type ProxyContext } from './connection.js';
import { proxyInboundHbone, proxyInboundPlaintext } from './inbound.js';
import { proxyOutbound } from './outbound.js';
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
  readonly #warned = new Set<string>();
  #server: HboneServer | undefined;
  #listeners: Server[] = [];
  #telemetry: TelemetryServer | undefined;
  #running = false;
  readonly #context: ProxyContext;

  constructor(options: NodeProxyOptions) {
    this.#options = options;
    this.#ports = { ...defaultPorts, ...options.ports };
    this.#address = options.address ?? '0.0.0.0';
    this.#metrics = new TcpMetrics({
      onClose: (connection) => {
        this.#accessLog?.write(connection);
      },
    });
    this.#context = {
      options,
      ports: this.#ports,
      metrics: this.#metrics,
      sockets: this.#sockets,
      decided: (decision) => {
        this.#decided(decision);
      },
      localEnrolled: (ip) => this.#localEnrolled(ip),
      requireClient: () => this.#requireClient(),
      warn: (warnings) => {
        this.#warn(warnings);
      },
    };
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
    await loadTransparentSockets();
    this.#client = new HboneClient({
      trustBundlePem,
      // Tunnels leave from the source pod's address, as ztunnel's in-pod mode
      // does: NetworkPolicy at the destination judges the pod, on port 15008.
      dial: (peer, sourceAddress) =>
        sourceAddress === undefined
          ? createConnection({ host: peer.address, port: peer.port })
          : dialTransparent({
              source: sourceAddress,
              host: peer.address,
              port: peer.port,
              mark: proxyMark,
            }),
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
      handler: (request) => proxyInboundHbone(this.#context, request),
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
          void proxyOutbound(this.#context, socket);
        }),
        await listenTransparent(this.#address, this.#ports.inboundPlaintext, (socket) => {
          track(socket);
          void proxyInboundPlaintext(this.#context, socket);
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

  /** Logs each policy warning the first time a decision meets it (a bounded memory of them). */
  #warn(warnings: readonly string[]): void {
    for (const warning of warnings) {
      if (this.#warned.has(warning)) continue;
      if (this.#warned.size >= 1000) this.#warned.clear();
      this.#warned.add(warning);
      this.#options.log?.(`mesh proxy: warning: ${warning}`);
    }
  }

  #requireClient(): HboneClient {
    if (this.#client === undefined) throw new Error('The node proxy is not started');
    return this.#client;
  }
}
