/**
 * The container the Service tests' pods run (upstream's e2e uses agnhost
 * `serve-hostname`/`netexec` for the same purpose): an HTTP server on PORT
 * (8080) that answers `GET /` with the pod's name (POD_NAME), so a client
 * knows which endpoint it reached, and `GET /healthz` for the readiness
 * probe (503 with READY=false, for a pod that must never become ready).
 * Every answer closes its connection, so each request is a new connection
 * that the Service's DNAT picks an endpoint for.
 *
 * It behaves as a well-made app behind a Service does when its pod is
 * deleted: on SIGTERM it goes on serving for DRAIN_MS (2500) before it
 * stops listening and exits, as a preStop sleep would make it, since
 * endpoints are withdrawn from the data path only after the pod starts
 * terminating.
 *
 *   node service-server.js        (inside the pod's network namespace)
 */
import { createServer } from 'node:http';

const name = process.env.POD_NAME ?? '';
const port = Number(process.env.PORT ?? 8080);
const ready = process.env.READY !== 'false';
const drainMs = Number(process.env.DRAIN_MS ?? 2500);

const server = createServer((req, res) => {
  res.setHeader('Connection', 'close');
  if (req.url === '/healthz') {
    res.writeHead(ready ? 200 : 503, { 'Content-Type': 'text/plain' });
    res.end(ready ? 'ok\n' : 'not ready\n');
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end(name);
});
server.on('error', (error) => {
  process.stderr.write(`service-server ${name}: ${error.message}\n`);
  process.exit(1);
});
server.listen(port, '0.0.0.0', () => {
  process.stdout.write(`service-server ${name}: HTTP on ${port}\n`);
});

process.once('SIGTERM', () => {
  process.stdout.write(`service-server ${name}: SIGTERM, serving ${drainMs} ms more\n`);
  setTimeout(() => {
    server.close();
    process.exit(0);
  }, drainMs);
});
