/**
 * The tiny HTTP server of bench:mesh, run as a container of the server pod:
 * `node dist/bench/mesh-server.js <port>` answers every request 200 with `ok\n`,
 * keep-alive, nothing else.
 */
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? '8080');
const body = Buffer.from('ok\n');
const server = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(port, '0.0.0.0');
const stop = (): void => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
