/**
 * `strata up`, `strata down`, `strata status`, and the component
 * subcommands `strata apiserver|controller|agent|mesh-proxy` that `up` starts (not in
 * the help text: users do not run them by hand).
 */
import { parseArgs } from 'node:util';
import {
  apiserverCommand,
  down,
  formatStatus,
  isHealthy,
  locateCluster,
  runComponent,
  status,
  targetFlags,
  up,
} from '../cluster/index.js';
import {
  UsageError,
  integerFlag,
  parseCommandLine,
  targetFromFlags,
  targetOptions,
} from './args.js';
import type { Io } from './io.js';

function noPositionals(command: string, positionals: readonly string[]): void {
  if (positionals.length > 0) {
    throw new UsageError(
      `strata ${command}: unexpected argument ${JSON.stringify(positionals[0])}`,
    );
  }
}

export async function upCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parseCommandLine('up', () =>
    parseArgs({
      args: [...argv],
      options: {
        ...targetOptions,
        nodes: { type: 'string' },
        'cluster-cidr': { type: 'string' },
        'service-cidr': { type: 'string' },
        'underlay-cidr': { type: 'string' },
        'node-cidr-mask-size': { type: 'string' },
        backend: { type: 'string' },
        timeout: { type: 'string' },
        'no-dns': { type: 'boolean' },
        'trust-domain': { type: 'string' },
        'plugin-ca': { type: 'string' },
        'workload-cert-ttl': { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  noPositionals('up', positionals);
  const timeoutSeconds = integerFlag('--timeout', values.timeout);
  if (timeoutSeconds !== undefined && timeoutSeconds <= 0) {
    throw new UsageError(`--timeout ${timeoutSeconds}: must be a number of seconds above 0`);
  }
  await up(
    {
      ...targetFromFlags(values),
      nodes: integerFlag('--nodes', values.nodes),
      clusterCidr: values['cluster-cidr'],
      serviceCidr: values['service-cidr'],
      underlayCidr: values['underlay-cidr'],
      nodeCidrMaskSize: integerFlag('--node-cidr-mask-size', values['node-cidr-mask-size']),
      backend: values.backend,
      timeoutSeconds,
      dns: values['no-dns'] !== true,
      trustDomain: values['trust-domain'],
      pluginCa: values['plugin-ca'],
      workloadCertTtl: values['workload-cert-ttl'],
    },
    io.out,
  );
  return 0;
}

export async function downCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parseCommandLine('down', () =>
    parseArgs({ args: [...argv], options: targetOptions, allowPositionals: true, strict: true }),
  );
  noPositionals('down', positionals);
  await down(targetFromFlags(values), io.out);
  return 0;
}

/** Exit code 0 when the cluster is healthy, 1 when it is degraded or not up. */
export async function statusCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parseCommandLine('status', () =>
    parseArgs({ args: [...argv], options: targetOptions, allowPositionals: true, strict: true }),
  );
  noPositionals('status', positionals);
  const cluster = await status(targetFromFlags(values));
  if (!cluster) {
    const target = locateCluster(targetFromFlags(values));
    io.out.write(
      `Cluster "${target.name}" is not up (no ${target.stateDir}/cluster.json). Start it with "strata up${targetFlags(target)}".\n`,
    );
    return 1;
  }
  io.out.write(formatStatus(cluster));
  return isHealthy(cluster) ? 0 : 1;
}

/** `strata apiserver|controller|agent|mesh-proxy ...`: the cluster's components, one process each. */
export function componentCommand(
  component: 'apiserver' | 'controller' | 'agent' | 'mesh-proxy',
  argv: readonly string[],
): Promise<number> {
  return component === 'apiserver' ? apiserverCommand(argv) : runComponent(component, argv);
}
