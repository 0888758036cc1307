/**
 * `strata dns`: the cluster DNS server as a component, CoreDNS's place in a
 * cluster. It lists and watches Services and EndpointSlices from the API
 * server, answers the cluster domain on UDP and TCP, forwards other names to
 * the upstreams it is given (none by default: they are REFUSED), and serves
 * `/health` and `/ready` over HTTP. Runs until SIGTERM or SIGINT. Exit
 * codes: 0 after a signal, 1 when it cannot start, 2 for a bad command line.
 */
import { parseArgs } from 'node:util';
import { messageChain } from '../cni/errors.js';
import type { Io } from '../cli/io.js';
import { ApiClient, type ApiTarget } from '../client/index.js';
import { locateCluster, statePaths } from '../cluster/state.js';
import { type DnsEndpoint, formatEndpoint, parseEndpoint } from './endpoints.js';
import { ProbeListener, type ProbeRoutes } from './health.js';
import { isValidDomain, normalizeDomain } from './records.js';
import { DnsServer, defaultDomain, defaultTtl } from './server.js';
import { InformerRecordSource } from './source.js';

export const dnsUsage = `Usage: strata dns [--api TARGET | --name NAME | --state-dir DIR] [options]

Serves the cluster's DNS (the Kubernetes DNS-based service discovery spec, as
CoreDNS's kubernetes plugin answers it) from the Services and EndpointSlices
of the API server.

Options:
  --api TARGET          the API server: a unix socket path, unix:///path or http://host:port
                        (default: the API socket of the cluster --name/--state-dir pick)
  --domain DOMAIN       the cluster domain (default ${defaultDomain})
  --listen HOST:PORT    UDP and TCP address (default 0.0.0.0:53; [::]:53 for IPv6; port 0 picks one)
  --upstream IP:PORT    where names outside the cluster go, tried in order (repeatable);
                        without one they are REFUSED
  --ttl SECONDS         TTL of every answer (default ${defaultTtl})
  --health-port PORT    HTTP /health and /metrics on the listen host (default 8080; 0: off)
  --ready-port PORT     HTTP /ready, 200 once Services and EndpointSlices are listed (default 8181; 0: off)
  -h, --help            this text
`;

/** The settings of `strata dns`, checked. */
export interface DnsCommandSettings {
  api: ApiTarget;
  domain: string;
  listen: DnsEndpoint;
  upstreams: DnsEndpoint[];
  ttl: number;
  healthPort: number;
  readyPort: number;
}

/** The command line is wrong: the message names the flag and what it wants. */
export class DnsUsageError extends Error {
  override readonly name = 'DnsUsageError';
  readonly code = 'STRATA_ERR_USAGE';
}

function portFlag(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new DnsUsageError(`--${flag} ${JSON.stringify(text)}: expected a port number 0-65535`);
  }
  return Number(text);
}

/** Parses and checks `strata dns` arguments; DnsUsageError names what is wrong. */
export function parseDnsArgs(argv: readonly string[]): DnsCommandSettings | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        api: { type: 'string' },
        name: { type: 'string' },
        'state-dir': { type: 'string' },
        domain: { type: 'string' },
        listen: { type: 'string' },
        upstream: { type: 'string', multiple: true },
        ttl: { type: 'string' },
        'health-port': { type: 'string' },
        'ready-port': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new DnsUsageError((error as Error).message.replace(/\. To specify .*$/s, ''));
  }
  if (values.help) return 'help';
  const domain = values.domain ?? defaultDomain;
  if (!isValidDomain(domain)) {
    throw new DnsUsageError(
      `--domain ${JSON.stringify(domain)}: expected a DNS name like cluster.local`,
    );
  }
  const listenText = values.listen ?? '0.0.0.0:53';
  const listen = parseEndpoint(listenText);
  if (!listen) {
    throw new DnsUsageError(
      `--listen ${JSON.stringify(listenText)}: expected IP:PORT, like 0.0.0.0:53 or [::]:53`,
    );
  }
  const upstreams = (values.upstream ?? []).map((text) => {
    const upstream = parseEndpoint(text, 53);
    if (!upstream || upstream.port === 0) {
      throw new DnsUsageError(
        `--upstream ${JSON.stringify(text)}: expected an IP address with an optional port, like 8.8.8.8:53 or [2001:db8::53]:53`,
      );
    }
    return upstream;
  });
  const ttlText = values.ttl ?? String(defaultTtl);
  if (!/^\d{1,7}$/.test(ttlText)) {
    throw new DnsUsageError(`--ttl ${JSON.stringify(ttlText)}: expected a number of seconds`);
  }
  let api: ApiTarget | undefined = values.api;
  if (api === '') throw new DnsUsageError('--api must not be empty');
  if (api === undefined) {
    try {
      const target = locateCluster({
        ...(values.name === undefined ? {} : { name: values.name }),
        ...(values['state-dir'] === undefined ? {} : { stateDir: values['state-dir'] }),
      });
      api = statePaths(target.stateDir).apiSocket;
    } catch (error) {
      throw new DnsUsageError(messageChain(error), { cause: error });
    }
  }
  return {
    api,
    domain: normalizeDomain(domain),
    listen,
    upstreams,
    ttl: Number(ttlText),
    healthPort: portFlag('health-port', values['health-port'], 8080),
    readyPort: portFlag('ready-port', values['ready-port'], 8181),
  };
}

/** Runs `strata dns` with `argv` (the arguments after `dns`); returns the exit code. */
export async function dnsCommand(
  argv: readonly string[],
  io: Pick<Io, 'out' | 'err'> = { out: process.stdout, err: process.stderr },
): Promise<number> {
  let settings: DnsCommandSettings | 'help';
  try {
    settings = parseDnsArgs(argv);
  } catch (error) {
    if (!(error instanceof DnsUsageError)) throw error;
    io.err.write(`strata dns: ${error.message}\n\n${dnsUsage}`);
    return 2;
  }
  if (settings === 'help') {
    io.out.write(dnsUsage);
    return 0;
  }
  const log = (line: string): void => {
    io.err.write(`${new Date().toISOString()} ${line}\n`);
  };
  let onSignal = (): void => undefined;
  const signal = new Promise<void>((resolve) => {
    onSignal = resolve;
  });
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    return await serve(settings, signal, log, io);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

function apiText(api: ApiTarget): string {
  return typeof api === 'string' ? api : api.socketPath;
}

/** Serves until `signal` settles; the exit code. */
async function serve(
  settings: DnsCommandSettings,
  signal: Promise<void>,
  log: (line: string) => void,
  io: Pick<Io, 'err'>,
): Promise<number> {
  const source = new InformerRecordSource(new ApiClient(settings.api), log);
  const server = new DnsServer({
    source,
    domain: settings.domain,
    listen: settings.listen,
    ttl: settings.ttl,
    upstreams: settings.upstreams,
    log,
  });
  const probes: ProbeListener[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all([server.close(), source.stop(), ...probes.map((p) => p.close())]);
  };
  try {
    const address = await server.listen();
    const host = settings.listen.host;
    // /health (with /metrics) and /ready, on one listener when they share a port.
    const routes = new Map<number, ProbeRoutes>();
    const routesAt = (port: number): ProbeRoutes => {
      const found = routes.get(port) ?? { checks: {} };
      routes.set(port, found);
      return found;
    };
    if (settings.healthPort !== 0) {
      const health = routesAt(settings.healthPort);
      health.checks['/health'] = () => true;
      health.metrics = () => server.metrics();
    }
    if (settings.readyPort !== 0) {
      routesAt(settings.readyPort).checks['/ready'] = () => server.ready();
    }
    const http: string[] = [];
    for (const [port, probeRoutes] of routes) {
      const listener = await ProbeListener.listen(host, port, probeRoutes);
      probes.push(listener);
      http.push(`${Object.keys(probeRoutes.checks).join(' ')} on ${listener.port}`);
    }
    const forwarding =
      settings.upstreams.length > 0
        ? `forwarding to ${settings.upstreams.map(formatEndpoint).join(', ')}`
        : 'no upstream (other names are REFUSED)';
    log(
      `dns: serving ${settings.domain} on ${formatEndpoint({ host: address.host, port: address.udpPort })} udp and tcp; ${forwarding}; http ${http.length > 0 ? http.join(', ') : 'off'}; api ${apiText(settings.api)}`,
    );
  } catch (error) {
    io.err.write(`strata dns: ${messageChain(error)}\n`);
    await stop();
    return 1;
  }
  // The informers list in the background: until they have, names in the zone are SERVFAIL.
  // The client retries an API server it cannot reach; say so now and then meanwhile.
  const waiting = setInterval(() => {
    log(`dns: still waiting to list Services and EndpointSlices from ${apiText(settings.api)}`);
  }, 10_000);
  const synced = source.start().then(
    () => {
      log('dns: Services and EndpointSlices listed; ready');
      return undefined;
    },
    (error: unknown) => error,
  );
  const outcome = await Promise.race([signal.then(() => 'signal' as const), synced]);
  clearInterval(waiting);
  if (outcome !== 'signal' && outcome !== undefined) {
    io.err.write(`strata dns: cannot list Services and EndpointSlices: ${messageChain(outcome)}\n`);
    await stop();
    return 1;
  }
  if (outcome === undefined) await signal;
  log('dns: stopping');
  await stop();
  return 0;
}
