/**
 * The API server: a Kubernetes-shaped REST API over a Store, on node:http,
 * listening on TCP or a unix socket. See dispatch.ts for the verbs and
 * routes.ts for the paths.
 */
import { existsSync, unlinkSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { connect } from 'node:net';
import type { Store } from '../store/store.js';
import type { ApiContext, WatchSettings } from './context.js';
import { dispatch } from './dispatch.js';
import { NamespaceLifecycle, ensureNamespaces } from './namespaces.js';

export type ListenAddress = { host: string; port: number } | { socketPath: string };

export interface ApiServerOptions {
  store: Store;
  listen: ListenAddress;
  /** Watch timing and limits; defaults as kube-apiserver's. */
  watch?: Partial<WatchSettings>;
}

export interface RunningApiServer {
  /** `http://127.0.0.1:6443`, or `unix:///run/strata/api.sock` for a socket. */
  url: string;
  /** Ends open watches, stops listening and closes connections; the store stays open. */
  close(): Promise<void>;
}

/** The namespaces every cluster starts with. */
export const initialNamespaces = ['default', 'kube-system', 'istio-system'];

const defaultWatchSettings: WatchSettings = {
  bookmarkIntervalMs: 60_000,
  defaultTimeoutSeconds: 1800,
  maxBufferedBytes: 16 * 1024 * 1024,
};

/** Whether a unix socket file is left over from a server that is gone (nothing accepts on it). */
function isStaleSocket(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const probe = connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (error: NodeJS.ErrnoException) => {
      resolve(error.code === 'ECONNREFUSED');
    });
  });
}

async function listen(server: Server, address: ListenAddress): Promise<string> {
  if ('socketPath' in address && (await isStaleSocket(address.socketPath))) {
    unlinkSync(address.socketPath);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const ready = (): void => {
      server.off('error', reject);
      resolve();
    };
    if ('socketPath' in address) server.listen(address.socketPath, ready);
    else server.listen(address.port, address.host, ready);
  });
  if ('socketPath' in address) return `unix://${address.socketPath}`;
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : address.port;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `http://${host}:${port}`;
}

/** Starts the API server once the initial namespaces exist. */
export async function startApiServer(options: ApiServerOptions): Promise<RunningApiServer> {
  const { store } = options;
  await ensureNamespaces(store, initialNamespaces);
  const ctx: ApiContext = {
    store,
    namespaces: new NamespaceLifecycle(store),
    watch: { ...defaultWatchSettings, ...options.watch },
    openWatches: new Set(),
  };
  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    void dispatch(ctx, req, res);
  });
  const url = await listen(server, options.listen);
  let closing: Promise<void> | undefined;
  return {
    url,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        for (const stop of [...ctx.openWatches]) stop();
        // Connections go as soon as they are idle (ended watches included);
        // requests still in flight get a second to finish.
        const sweep = setInterval(() => {
          server.closeIdleConnections();
        }, 10);
        const deadline = setTimeout(() => {
          server.closeAllConnections();
        }, 1000);
        server.close((error) => {
          clearInterval(sweep);
          clearTimeout(deadline);
          if (error) reject(error);
          else resolve();
        });
      });
      return closing;
    },
  };
}
