/**
 * strata's DNS server for bench:services, in a process of its own so that it does not
 * share an event loop with the benchmark: `node services-dns-server.js HOST PORT`.
 * DnsServer with a StaticRecordSource holding the zone of services-dns-zone.ts (no API
 * server), no upstreams. Prints `ready HOST:PORT` once it listens; a line `stats` on
 * stdin gets the server's counters back as one JSON line; stops on SIGTERM or when stdin
 * closes, so it cannot outlive the benchmark.
 */
import { createInterface } from 'node:readline';
import { DnsServer } from '../src/dns/server.js';
import { StaticRecordSource } from '../src/dns/source.js';
import { dnsDomain, zoneObjects } from './services-dns-zone.js';

async function main(): Promise<void> {
  const host = process.argv[2] ?? '127.0.0.1';
  const port = Number(process.argv[3] ?? '5300');
  const server = new DnsServer({
    source: new StaticRecordSource(zoneObjects()),
    domain: dnsDomain,
    listen: { host, port },
  });
  const address = await server.listen();
  process.stdout.write(`ready ${address.host}:${address.udpPort}\n`);
  const stop = (): void => {
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const input = createInterface({ input: process.stdin });
  input.on('line', (line) => {
    if (line.trim() === 'stats') process.stdout.write(`stats ${JSON.stringify(server.stats())}\n`);
  });
  input.on('close', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
