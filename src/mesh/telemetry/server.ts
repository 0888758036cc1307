/**
 * The node proxy's two small HTTP servers, at ztunnel's ports and paths:
 * stats on 15020 (`/metrics`, and `/stats/prometheus`, the path Istio's
 * scrape annotations name; istio/ztunnel src/metrics/server.rs) and
 * readiness on 15021 (`/healthz/ready`: 200 "ready" once nothing is pending,
 * 500 naming what is pending before; src/readiness/server.rs).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { TelemetryListenError } from './errors.js';

/** ztunnel's stats port. */
export const statsPort = 15020;
/** ztunnel's readiness port. */
export const readinessPort = 15021;

/** Paths the stats server answers with the metrics. */
export const metricsPaths = ['/metrics', '/stats/prometheus'] as const;
/** The readiness probe's path. */
export const readinessPath = '/healthz/ready';

/**
 * What readiness still waits for, as ztunnel's `Ready` tracks it: each part
 * of the proxy that must be up before traffic is sent its way (the workload
 * certificates, the listeners) is a named task, and the proxy is ready when
 * none is left.
 */
export class Readiness {
  readonly #pending = new Set<string>();

  /** Starts with `tasks` pending; `["proxy"]` by default. */
  constructor(tasks: Iterable<string> = ['proxy']) {
    for (const task of tasks) this.#pending.add(task);
  }

  /** Readiness also waits for `task`. */
  block(task: string): void {
    this.#pending.add(task);
  }

  /** `task` is done. */
  unblock(task: string): void {
    this.#pending.delete(task);
  }

  /** Everything is done. */
  markReady(): void {
    this.#pending.clear();
  }

  get ready(): boolean {
    return this.#pending.size === 0;
  }

  /** The tasks still pending, sorted. */
  get pending(): string[] {
    return [...this.#pending].sort();
  }
}

/** Where one server listens. */
export interface ListenAddress {
  /** `::` by default, as ztunnel binds. */
  address?: string;
  port?: number;
}

export interface TelemetryServerOptions {
  /** Registries whose metrics the stats server serves, one after the other (their names must not overlap). */
  registries: readonly Registry[];
  readiness: Readiness;
  /** Port 15020 by default; port 0 picks a free one. */
  stats?: ListenAddress;
  /** Port 15021 by default; port 0 picks a free one. */
  readinessProbe?: ListenAddress;
}

export interface BoundAddress {
  address: string;
  port: number;
}

/** The stats and readiness servers of one proxy. */
export class TelemetryServer {
  readonly #options: TelemetryServerOptions;
  readonly #stats: Server;
  readonly #readiness: Server;

  constructor(options: TelemetryServerOptions) {
    this.#options = options;
    this.#stats = createServer((request, response) => {
      void this.#serveStats(request, response);
    });
    this.#readiness = createServer((request, response) => {
      this.#serveReadiness(request, response);
    });
  }

  /** Starts both servers; resolves with their bound addresses. */
  async listen(): Promise<{ stats: BoundAddress; readiness: BoundAddress }> {
    const stats = await listen(this.#stats, 'stats', this.#options.stats, statsPort);
    try {
      const readiness = await listen(
        this.#readiness,
        'readiness',
        this.#options.readinessProbe,
        readinessPort,
      );
      return { stats, readiness };
    } catch (error) {
      await close(this.#stats);
      throw error;
    }
  }

  /** Stops both servers and drops their open connections. */
  async close(): Promise<void> {
    await Promise.all([close(this.#stats), close(this.#readiness)]);
  }

  async #serveStats(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = pathOf(request);
    if (!(metricsPaths as readonly string[]).includes(path)) {
      answer(response, 404, 'not found\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      answer(response, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
      return;
    }
    const { registries } = this.#options;
    try {
      const texts = await Promise.all(registries.map((registry) => registry.metrics()));
      // Registry.metrics() ends each text with a newline; a blank line
      // between registries keeps families apart as within one.
      const body = texts.filter((text) => text.trim() !== '').join('\n');
      const contentType = registries[0]?.contentType ?? 'text/plain; version=0.0.4; charset=utf-8';
      answer(response, 200, request.method === 'HEAD' ? '' : body, {
        'content-type': contentType,
        'content-length': String(Buffer.byteLength(body)),
      });
    } catch (error) {
      answer(response, 500, `${error instanceof Error ? error.message : String(error)}\n`);
    }
  }

  #serveReadiness(request: IncomingMessage, response: ServerResponse): void {
    if (pathOf(request) !== readinessPath) {
      answer(response, 404, 'not found\n');
      return;
    }
    if (request.method !== 'GET') {
      answer(response, 405, 'method not allowed\n', { allow: 'GET' });
      return;
    }
    const { readiness } = this.#options;
    if (readiness.ready) {
      answer(response, 200, 'ready\n');
    } else {
      answer(response, 500, `not ready, pending: ${readiness.pending.join(', ')}\n`);
    }
  }
}

function pathOf(request: IncomingMessage): string {
  const url = request.url ?? '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

function answer(
  response: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    ...headers,
  });
  response.end(body);
}

function listen(
  server: Server,
  role: string,
  where: ListenAddress = {},
  defaultPort: number,
): Promise<BoundAddress> {
  const address = where.address ?? '::';
  const port = where.port ?? defaultPort;
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      reject(
        new TelemetryListenError(
          `Cannot listen for ${role} on ${address} port ${port}: ${error.message}`,
          { cause: error },
        ),
      );
    };
    server.once('error', onError);
    server.listen({ host: address, port }, () => {
      server.off('error', onError);
      const bound = server.address() as AddressInfo;
      resolve({ address: bound.address, port: bound.port });
    });
  });
}

function close(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => {
      resolve();
    });
    server.closeAllConnections();
  });
}
