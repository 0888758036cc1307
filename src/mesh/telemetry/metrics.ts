/**
 * The node proxy's TCP metrics, as ztunnel reports them (istio/ztunnel
 * src/proxy/metrics.rs): four counters with Istio's standard names
 * (istio.io docs/reference/config/metrics), each series labelled with
 * ztunnel's CommonTrafficLabels in ztunnel's order, and "unknown" for
 * anything the proxy does not know.
 *
 * The byte counters follow Istio's meaning for both reporters:
 * `istio_tcp_received_bytes_total` counts what the client (the side that
 * opened the connection) sent, `istio_tcp_sent_bytes_total` what went back to
 * it, so the source's and the destination's series agree.
 *
 * Bytes are added to the connection object as they pass (a number addition
 * per chunk) and moved into the counters every second, at close, and before
 * each scrape, so a scrape is always exact while the data path never touches
 * prom-client's label maps.
 */
import { Counter, Registry } from 'prom-client';

/** `reporter`: "source" when the client's proxy reports, "destination" when the server's does. */
export type Reporter = 'source' | 'destination';

/** `connection_security_policy`: ztunnel says "mutual_tls" over HBONE and "unknown" for plaintext. */
export type ConnectionSecurityPolicy = 'mutual_tls' | 'unknown';

/**
 * `response_flags`, ztunnel's three: "-" for none, "DENY" when authorization
 * policy refused the connection, "CONNECT" when the upstream connection
 * could not be made.
 */
export type ResponseFlags = '-' | 'DENY' | 'CONNECT';

/** One end of a connection as the labels describe it; whatever is absent is reported as "unknown". */
export interface TrafficWorkload {
  /** The pod's name (the access log's `src.workload` / `dst.workload`). */
  pod?: string;
  namespace?: string;
  /** The workload name, from workloadLabels(). */
  workload?: string;
  canonicalService?: string;
  canonicalRevision?: string;
  /**
   * The SPIFFE ID. The source's becomes `source_principal` only when the
   * connection is mutual TLS, as ztunnel takes it only from the handshake:
   * give the identity the certificate proved (outbound, the one this proxy
   * presented; inbound, the one it verified). The destination's is reported
   * as it is known.
   */
  identity?: string;
  /** The cluster ID; for a known workload, the proxy's own cluster when absent. */
  cluster?: string;
}

/** The Service a connection was addressed to (`destination_service*`). */
export interface DestinationService {
  /** `<name>.<namespace>.svc.<domain>`. */
  hostname: string;
  name: string;
  namespace: string;
}

/** What the proxy knows when a connection opens. */
export interface ConnectionOpen {
  reporter: Reporter;
  source?: TrafficWorkload;
  destination?: TrafficWorkload;
  destinationService?: DestinationService;
  security: ConnectionSecurityPolicy;
  /** `<ip>:<port>` of the client, for the access log. */
  sourceAddress?: string;
  /** `<ip>:<port>` the connection went to (the peer proxy's 15008 for HBONE), for the access log. */
  destinationAddress?: string;
  /** `<ip>:<port>` of the workload inside the HBONE tunnel, for the access log. */
  hboneAddress?: string;
}

/** How a connection ended; no error means it closed normally. */
export interface ConnectionClose {
  error?: Error | string;
  /** Defaults to "-". */
  responseFlags?: ResponseFlags;
}

/** A connection as metrics track it, from open to close. */
export interface TcpConnection {
  /** `bytes` went back to the client (`istio_tcp_sent_bytes_total`). */
  sent(bytes: number): void;
  /** `bytes` came from the client (`istio_tcp_received_bytes_total`). */
  received(bytes: number): void;
  /** Counts the close and reports the connection to `onClose`; later calls do nothing. */
  close(result?: ConnectionClose): void;
}

/** A closed connection: what the access log writes. */
export interface ClosedConnection extends ConnectionOpen {
  /** The labels of its `istio_tcp_connections_closed_total` series. */
  labels: TcpLabels;
  openedAt: Date;
  closedAt: Date;
  /** Bytes from the client over the connection's life. */
  receivedBytes: number;
  /** Bytes back to the client over the connection's life. */
  sentBytes: number;
  responseFlags: ResponseFlags;
  /** Why it failed; absent when it closed normally. */
  error?: string;
}

/** ztunnel's CommonTrafficLabels, in its order (the order of the exposition). */
export const tcpLabelNames = [
  'reporter',
  'source_workload',
  'source_canonical_service',
  'source_canonical_revision',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_service',
  'destination_service_namespace',
  'destination_service_name',
  'destination_workload',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;

export type TcpLabelName = (typeof tcpLabelNames)[number];
export type TcpLabels = Readonly<Record<TcpLabelName, string>>;

/** What every label is when the proxy does not know it (ztunnel's DefaultedUnknown). */
export const unknown = 'unknown';

/** Istio's cluster ID when none is configured (global.multiCluster.clusterName). */
export const defaultClusterId = 'Kubernetes';

/** The metric names, and ztunnel's help texts. */
export const tcpMetrics = {
  opened: {
    name: 'istio_tcp_connections_opened_total',
    help: 'The total number of TCP connections opened',
  },
  closed: {
    name: 'istio_tcp_connections_closed_total',
    help: 'The total number of TCP connections closed',
  },
  received: {
    name: 'istio_tcp_received_bytes_total',
    help: 'The size of total bytes received during request in case of a TCP connection',
  },
  sent: {
    name: 'istio_tcp_sent_bytes_total',
    help: 'The size of total bytes sent during response in case of a TCP connection',
  },
} as const;

/**
 * The labels of a connection's series (ztunnel's `From<ConnectionOpen> for
 * CommonTrafficLabels`). ztunnel reports `*_app` and `*_version` as the
 * canonical service and revision, not the raw `app` and `version` labels a
 * sidecar reports.
 */
export function trafficLabels(
  open: ConnectionOpen,
  clusterId: string = defaultClusterId,
  responseFlags: ResponseFlags = '-',
): TcpLabels {
  const { source, destination, destinationService: service } = open;
  const mtls = open.security === 'mutual_tls';
  return Object.freeze({
    reporter: open.reporter,
    source_workload: known(source?.workload),
    source_canonical_service: known(source?.canonicalService),
    source_canonical_revision: known(source?.canonicalRevision),
    source_workload_namespace: known(source?.namespace),
    source_principal: mtls ? known(source?.identity) : unknown,
    source_app: known(source?.canonicalService),
    source_version: known(source?.canonicalRevision),
    source_cluster: clusterOf(source, clusterId),
    destination_service: known(service?.hostname),
    destination_service_namespace: known(service?.namespace),
    destination_service_name: known(service?.name),
    destination_workload: known(destination?.workload),
    destination_canonical_service: known(destination?.canonicalService),
    destination_canonical_revision: known(destination?.canonicalRevision),
    destination_workload_namespace: known(destination?.namespace),
    destination_principal: known(destination?.identity),
    destination_app: known(destination?.canonicalService),
    destination_version: known(destination?.canonicalRevision),
    destination_cluster: clusterOf(destination, clusterId),
    request_protocol: 'tcp',
    response_flags: responseFlags,
    connection_security_policy: open.security,
  });
}

function known(value: string | undefined): string {
  return value === undefined || value === '' ? unknown : value;
}

function clusterOf(end: TrafficWorkload | undefined, clusterId: string): string {
  if (end?.cluster) return end.cluster;
  const workloadKnown = end?.workload !== undefined || end?.pod !== undefined;
  return workloadKnown ? clusterId : unknown;
}

export interface TcpMetricsOptions {
  /** Where the counters are registered; a registry of their own by default (never the global one). */
  registry?: Registry;
  /** This cluster's ID, for `source_cluster` / `destination_cluster` of known workloads; "Kubernetes". */
  clusterId?: string;
  /** How often open connections' bytes move into the counters; 1000 ms. */
  flushIntervalMs?: number;
  /** Called once for each connection as it closes (the access log). */
  onClose?: (connection: ClosedConnection) => void;
  /** The clock, for tests. */
  now?: () => Date;
}

/** One proxy's `istio_tcp_*` counters. */
export class TcpMetrics {
  readonly registry: Registry;
  readonly clusterId: string;
  readonly #counters: Record<keyof typeof tcpMetrics, Counter<TcpLabelName>>;
  readonly #open = new Set<TrackedConnection>();
  readonly #flushIntervalMs: number;
  readonly #onClose: ((connection: ClosedConnection) => void) | undefined;
  readonly #now: () => Date;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: TcpMetricsOptions = {}) {
    this.registry = options.registry ?? new Registry();
    this.clusterId = options.clusterId ?? defaultClusterId;
    this.#flushIntervalMs = options.flushIntervalMs ?? 1000;
    this.#onClose = options.onClose;
    this.#now = options.now ?? (() => new Date());
    const counter = (metric: { name: string; help: string }, flushFirst: boolean) =>
      new Counter<TcpLabelName>({
        ...metric,
        labelNames: tcpLabelNames,
        registers: [this.registry],
        // A scrape reads each counter after its collect ran: the byte
        // counters take what open connections hold first.
        ...(flushFirst
          ? {
              collect: () => {
                this.flush();
              },
            }
          : {}),
      });
    this.#counters = {
      opened: counter(tcpMetrics.opened, false),
      closed: counter(tcpMetrics.closed, false),
      received: counter(tcpMetrics.received, true),
      sent: counter(tcpMetrics.sent, true),
    };
  }

  /** Counts a new connection; the returned object counts its bytes and its close. */
  open(open: ConnectionOpen): TcpConnection {
    const labels = trafficLabels(open, this.clusterId);
    this.#counters.opened.inc(labels, 1);
    const connection = new TrackedConnection(open, labels, this.#now(), (closing, result) => {
      this.#recordClose(closing, result);
    });
    this.#open.add(connection);
    if (this.#timer === undefined && this.#flushIntervalMs > 0 && !this.#stopped) {
      this.#timer = setInterval(() => {
        this.flush();
      }, this.#flushIntervalMs);
      this.#timer.unref();
    }
    return connection;
  }

  /** Moves the bytes open connections hold into the counters. */
  flush(): void {
    for (const connection of this.#open) this.#flushBytes(connection);
  }

  /** Connections opened and not yet closed. */
  get openConnections(): number {
    return this.#open.size;
  }

  /** Stops the flush timer for good (open connections keep counting; their bytes move at close or scrape). */
  stop(): void {
    this.#stopped = true;
    this.#stopTimer();
  }

  // The timer runs only while connections are open.
  #stopTimer(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #flushBytes(connection: TrackedConnection): void {
    const { received, sent } = connection.takePending();
    if (received > 0) this.#counters.received.inc(connection.labels, received);
    if (sent > 0) this.#counters.sent.inc(connection.labels, sent);
  }

  #recordClose(connection: TrackedConnection, result: ConnectionClose): void {
    this.#flushBytes(connection);
    this.#open.delete(connection);
    if (this.#open.size === 0) this.#stopTimer();
    // ztunnel sets the response flags on the labels at close, so only the
    // closed counter's series carries them.
    const responseFlags = result.responseFlags ?? '-';
    const labels =
      responseFlags === '-'
        ? connection.labels
        : trafficLabels(connection.open, this.clusterId, responseFlags);
    this.#counters.closed.inc(labels, 1);
    if (this.#onClose === undefined) return;
    const error = result.error;
    this.#onClose({
      ...connection.open,
      labels,
      openedAt: connection.openedAt,
      closedAt: this.#now(),
      receivedBytes: connection.totalReceived,
      sentBytes: connection.totalSent,
      responseFlags,
      ...(error === undefined ? {} : { error: typeof error === 'string' ? error : error.message }),
    });
  }
}

interface ByteCounts {
  received: number;
  sent: number;
}

class TrackedConnection implements TcpConnection {
  #pendingReceived = 0;
  #pendingSent = 0;
  #received = 0;
  #sent = 0;
  #closed = false;

  constructor(
    readonly open: ConnectionOpen,
    readonly labels: TcpLabels,
    readonly openedAt: Date,
    private readonly onClose: (connection: TrackedConnection, result: ConnectionClose) => void,
  ) {}

  get totalReceived(): number {
    return this.#received;
  }

  get totalSent(): number {
    return this.#sent;
  }

  sent(bytes: number): void {
    // `> 0` also refuses NaN, which would poison the counter for good.
    if (this.#closed || !(bytes > 0)) return;
    this.#pendingSent += bytes;
    this.#sent += bytes;
  }

  received(bytes: number): void {
    if (this.#closed || !(bytes > 0)) return;
    this.#pendingReceived += bytes;
    this.#received += bytes;
  }

  close(result: ConnectionClose = {}): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClose(this, result);
  }

  /** The bytes counted since the last call. */
  takePending(): ByteCounts {
    const pending = { received: this.#pendingReceived, sent: this.#pendingSent };
    this.#pendingReceived = 0;
    this.#pendingSent = 0;
    return pending;
  }
}
