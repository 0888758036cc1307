/**
 * A minimal transparent proxy for test/e2e/transparent.test.ts, run inside a
 * node namespace: it accepts what `tproxy` sends to port 15001 and connects
 * to each connection's original destination from the original source
 * address (IP_TRANSPARENT, SO_MARK 0x539), printing one JSON line per
 * connection it captured.
 */
import { connectTransparent, listenTransparent } from '../../src/kernel/transparent.js';

const server = await listenTransparent('0.0.0.0', 15001, (client) => {
  const source = client.remoteAddress ?? '';
  const original = { address: client.localAddress ?? '', port: client.localPort ?? 0 };
  process.stdout.write(`${JSON.stringify({ captured: { source, original } })}\n`);
  client.pause();
  connectTransparent({ source, host: original.address, port: original.port, mark: 0x539 }).then(
    (upstream) => {
      client.pipe(upstream).on('error', () => client.destroy());
      upstream.pipe(client).on('error', () => upstream.destroy());
      client.resume();
    },
    (error: unknown) => {
      process.stdout.write(`${JSON.stringify({ error: String(error) })}\n`);
      client.destroy();
    },
  );
});
process.stdout.write('{"listening":15001}\n');
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
