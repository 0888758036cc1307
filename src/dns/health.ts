/**
 * The DNS server's HTTP probes, as CoreDNS's health and ready plugins serve
 * them: `/health` answers 200 `OK` while the process runs (liveness),
 * `/ready` answers 200 `OK` once every informer has listed and 503 before
 * (readiness), and `/metrics` on the health listener gives the counters in
 * Prometheus' text format with CoreDNS's metric names.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProbeRoutes {
  /** Path → whether it answers 200 now (else 503). */
  checks: Record<string, () => boolean>;
  /** `/metrics`, when given. */
  metrics?: () => string;
}

/** One HTTP listener answering GET on its probe paths; 404 for anything else. */
export class ProbeListener {
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async listen(host: string, port: number, routes: ProbeRoutes): Promise<ProbeListener> {
    const server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0] ?? '/';
      const check = routes.checks[path];
      if (check) {
        const ok = check();
        response.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' });
        response.end(ok ? 'OK' : 'Service Unavailable');
        return;
      }
      if (path === '/metrics' && routes.metrics) {
        response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        response.end(routes.metrics());
        return;
      }
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      response.end('404 page not found\n');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new ProbeListener(server, (server.address() as AddressInfo).port);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => {
        resolve();
      });
      this.server.closeAllConnections();
    });
  }
}
