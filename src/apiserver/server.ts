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
import { NodePorts, type PortRange } from './node-ports.js';
import { ServiceIps } from './service-ips.js';

export type ListenAddress = { host: string; port: number } | { socketPath: string };

export interface ApiServerOptions {
  store: Store;
  listen: ListenAddress;
  /** Watch timing and limits; defaults as kube-apiserver's. */
  watch?: Partial<WatchSettings>;
  /**
   * The service CIDR (`10.96.0.0/16`, or an IPv4 and an IPv6 one separated
   * by a comma), as kube-apiserver's --service-cluster-ip-range: Services
   * get their cluster IPs at creation, checked against it (service-ips.ts).
   * Without it the server assigns none (the controller's allocator may).
   */
  serviceCidr?: string;
  /**
   * The node port range, as kube-apiserver's --service-node-port-range
   * (default 30000-32767): NodePort Services get their node ports from it at
   * creation and on update, and a nodePort outside it is refused
   * (node-ports.ts).
   */
  serviceNodePortRange?: PortRange;
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
  const { store, serviceCidr } = options;
  await ensureNamespaces(store, initialNamespaces);
  const nodePorts = await NodePorts.start(store, options.serviceNodePortRange);
  let serviceIps: ServiceIps | undefined;
  try {
    serviceIps =
      serviceCidr === undefined || serviceCidr === ''
        ? undefined
        : await ServiceIps.start(store, serviceCidr);
  } catch (error) {
    nodePorts.close();
    throw error;
  }
  const ctx: ApiContext = {
    store,
    namespaces: new NamespaceLifecycle(store),
    watch: { ...defaultWatchSettings, ...options.watch },
    serviceIps,
    nodePorts,
    openWatches: new Set(),
  };
  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    void dispatch(ctx, req, res);
  });
  let url: string;
  try {
    url = await listen(server, options.listen);
  } catch (error) {
    serviceIps?.close();
    nodePorts.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    url,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        for (const stop of [...ctx.openWatches]) stop();
        serviceIps?.close();
        nodePorts.close();
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
