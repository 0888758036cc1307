/**
 * `strata mesh-proxy ...`: the node's ambient L4 proxy as a process of its
 * own, as ztunnel runs beside the CNI agent rather than inside it. The node
 * agent starts and supervises it (mesh-process.ts) inside the node's network
 * namespace; it can also be run by hand for debugging.
 *
 * It watches the API server itself (Pods, Namespaces, PeerAuthentications,
 * AuthorizationPolicies), obtains certificates from the controller's CA
 * service with the node's token, applies the capture table and runs the
 * listeners (MeshAgent, mesh.ts). Its CPU and memory are its own, so they can
 * be measured as one node proxy's, and a fault in it cannot take the agent
 * (pods, routes, NetworkPolicy, Services) down with it.
 *
 * Protocol with the agent: log lines on stderr (the agent copies them into
 * its own log); one line `ready` on stdout once the capture is in place and
 * the listeners are up. It stops on SIGTERM or SIGINT, removing the capture,
 * and also when its parent goes away (an agent killed without a chance to
 * stop it), so no orphan keeps a node's traffic captured.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { messageChain } from '../cni/errors.js';
import { ApiClient } from '../client/index.js';
import { SharedInformers } from '../client/informer.js';
import { checkWorkloadCertTtl } from '../mesh/certificates/lifetime.js';
import { MeshAgent } from './mesh.js';
import { meshFlagOptions, trustDomainProblem } from './options.js';

export const meshProxyUsage = `Usage: strata mesh-proxy --state-dir DIR --api SOCKET --node NAME
                         --ca-socket SOCKET --ca-token-file FILE
                         [--trust-domain DOMAIN] [--workload-cert-ttl DURATION]

Runs the node's ambient mesh proxy (docs/mesh.md) in the current network namespace:
captures the node's enrolled pods with nftables and carries their TCP over HBONE, with
certificates for --trust-domain (cluster.local) from the controller's CA service that
last --workload-cert-ttl (the CA's default, 24h). The node agent starts it; it prints
"ready" on stdout once it carries traffic and stops on SIGTERM, removing its capture.
`;

export interface MeshProxyOptions {
  stateDir: string;
  api: string;
  nodeName: string;
  caSocket: string;
  caTokenFile: string;
  trustDomain: string;
  workloadCertTtlSeconds?: number;
}

export class MeshProxyUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MeshProxyUsageError';
  }
}

/** Parses `strata mesh-proxy` arguments; MeshProxyUsageError names what is wrong. */
export function parseMeshProxyArgs(argv: readonly string[]): MeshProxyOptions {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        'state-dir': { type: 'string' },
        api: { type: 'string' },
        node: { type: 'string' },
        ...meshFlagOptions,
      },
    }));
  } catch (error) {
    throw new MeshProxyUsageError((error as Error).message);
  }
  const required = (flag: string): string => {
    const value = values[flag];
    if (value === undefined || value === '') {
      throw new MeshProxyUsageError(`--${flag} is required`);
    }
    return value;
  };
  const options: MeshProxyOptions = {
    stateDir: required('state-dir'),
    api: required('api'),
    nodeName: required('node'),
    caSocket: required('ca-socket'),
    caTokenFile: required('ca-token-file'),
    trustDomain: values['trust-domain'] ?? 'cluster.local',
  };
  const domainProblem = trustDomainProblem(options.trustDomain);
  if (domainProblem !== undefined) throw new MeshProxyUsageError(domainProblem);
  const ttl = values['workload-cert-ttl'];
  if (ttl !== undefined) {
    const checked = checkWorkloadCertTtl(ttl);
    if (!checked.ok) throw new MeshProxyUsageError(`--workload-cert-ttl ${checked.problem}`);
    options.workloadCertTtlSeconds = checked.seconds;
  }
  return options;
}

export interface MeshProxyCommandIo {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
}

/** How often the process checks that the agent that started it is still there. */
const parentCheckMs = 1000;

/** Runs `strata mesh-proxy` with `argv` (the arguments after `mesh-proxy`). */
export async function meshProxyCommand(
  argv: readonly string[],
  io: MeshProxyCommandIo = { out: process.stdout, err: process.stderr },
): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.err.write(meshProxyUsage);
    return 0;
  }
  let options: MeshProxyOptions;
  try {
    options = parseMeshProxyArgs(argv);
  } catch (error) {
    if (!(error instanceof MeshProxyUsageError)) throw error;
    io.err.write(`strata mesh-proxy: ${error.message}\n\n${meshProxyUsage}`);
    return 2;
  }
  const log = (line: string): void => {
    io.err.write(`${line}\n`);
  };
  let stopRequested: (reason: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => {
    stopRequested = resolve;
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    stopRequested(signal);
  };
  // As the agent: a bug in one connection's handling must not take the node's mesh down.
  const onRejection = (reason: unknown): void => {
    log(`mesh: unhandled rejection (a bug; the proxy keeps running): ${messageChain(reason)}`);
  };
  const parent = process.ppid;
  const watchParent = setInterval(() => {
    if (process.ppid !== parent) stopRequested('the agent that started it is gone');
  }, parentCheckMs);
  watchParent.unref();
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('unhandledRejection', onRejection);
  const client = new ApiClient(options.api);
  const informers = new SharedInformers(client, log);
  const mesh = new MeshAgent({
    client,
    informers,
    nodeName: options.nodeName,
    nodeDir: join(options.stateDir, 'nodes', options.nodeName),
    caSocket: options.caSocket,
    tokenFile: options.caTokenFile,
    trustDomain: options.trustDomain,
    ...(options.workloadCertTtlSeconds === undefined
      ? {}
      : { workloadCertTtlSeconds: options.workloadCertTtlSeconds }),
    log,
  });
  try {
    const started = mesh.start().then(() => 'started' as const);
    const first = await Promise.race([started, stopped]);
    if (first === 'started') {
      io.out.write('ready\n');
      log(`mesh: stopping (${await stopped})`);
    } else {
      log(`mesh: stopping before the proxy started (${first})`);
    }
    return 0;
  } catch (error) {
    log(`mesh: the node proxy cannot run: ${messageChain(error)}`);
    return 1;
  } finally {
    clearInterval(watchParent);
    await mesh.stop().catch((error: unknown) => {
      log(`mesh: stopping failed: ${messageChain(error)}`);
    });
    await informers.stop();
    client.close();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('unhandledRejection', onRejection);
  }
}
