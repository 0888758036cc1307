/**
 * `strata controller`: runs the controllers against an API server until
 * SIGTERM or SIGINT. Flags as kube-controller-manager names them.
 */
import { parseArgs } from 'node:util';
import {
  type ControllerName,
  ControllerConfigError,
  caServiceConfig,
  controllerNames,
  durationFlag,
} from './config.js';
import { runController } from './controller.js';
import { messageOf } from './object-state.js';

export const controllerUsage = `Usage: strata controller --api SOCK --cluster-cidr CIDR [options]

Turns desired state into derived state: pod CIDRs for Nodes, pods bound to
Nodes, Deployments into Pods, Services into EndpointSlices (and, with
--service-cidr, cluster IPs for Services); Nodes whose agent stopped posting
status turn Unknown, tainted, with their pods not ready. With --ca-dir it also
serves the mesh's CA to the nodes (docs/cluster.md).

Options:
  --api SOCK                        the API server: a unix socket path, unix:///path or http://host:port
  --cluster-cidr CIDR[,CIDR]        where node pod CIDRs come from (one per IP family)
  --node-cidr-mask-size N           pod CIDR size, single-stack (default 24 for IPv4, 64 for IPv6)
  --node-cidr-mask-size-ipv4 N      pod CIDR size for IPv4 in a dual-stack cluster (default 24)
  --node-cidr-mask-size-ipv6 N      pod CIDR size for IPv6 in a dual-stack cluster (default 64)
  --service-cidr CIDR[,CIDR]        allocate Services' cluster IPs from this range
  --node-monitor-grace-period DUR   how long a Node's Ready heartbeat may go unrenewed (default 40s)
  --node-monitor-period DUR         how often Nodes' heartbeats are checked (default 5s)
  --controllers NAME[,NAME]         which to run (default all): ${controllerNames.join(', ')}
  --ca-dir DIR                      run the mesh CA service with the CA kept in DIR (Istio's plug-in
                                    files, or a self-signed root made there)
  --ca-socket PATH                  the CA service's unix socket (default ca.sock beside DIR)
  --node-tokens FILE                node name → SHA-256 of its token (default DIR/node-tokens.json)
  --trust-domain DOMAIN             the trust domain the CA signs for (default cluster.local)
  -h, --help                        this text
`;

function integerFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value))
    throw new ControllerConfigError(`--${flag} "${value}": expected a number`);
  return Number(value);
}

/** Runs `strata controller`; `argv` is what follows `controller` on the command line. Returns the exit code. */
export async function controllerCommand(
  argv: readonly string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const args = argv[0] === 'controller' ? argv.slice(1) : [...argv];
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        api: { type: 'string' },
        'cluster-cidr': { type: 'string' },
        'node-cidr-mask-size': { type: 'string' },
        'node-cidr-mask-size-ipv4': { type: 'string' },
        'node-cidr-mask-size-ipv6': { type: 'string' },
        'service-cidr': { type: 'string' },
        'node-monitor-grace-period': { type: 'string' },
        'node-monitor-period': { type: 'string' },
        controllers: { type: 'string' },
        'ca-dir': { type: 'string' },
        'ca-socket': { type: 'string' },
        'node-tokens': { type: 'string' },
        'trust-domain': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    err.write(`strata controller: ${messageOf(error)}\n\n${controllerUsage}`);
    return 2;
  }
  if (values.help) {
    out.write(controllerUsage);
    return 0;
  }
  const log = (line: string): void => {
    err.write(`${new Date().toISOString()} ${line}\n`);
  };
  let controller;
  try {
    if (values.api === undefined) throw new ControllerConfigError('--api is required');
    const ca = caServiceConfig({
      caDir: values['ca-dir'],
      caSocket: values['ca-socket'],
      nodeTokens: values['node-tokens'],
      trustDomain: values['trust-domain'],
    });
    controller = await runController({
      api: values.api,
      clusterCidr: values['cluster-cidr'],
      nodeCidrMaskSize: integerFlag('node-cidr-mask-size', values['node-cidr-mask-size']),
      nodeCidrMaskSizeIpv4: integerFlag(
        'node-cidr-mask-size-ipv4',
        values['node-cidr-mask-size-ipv4'],
      ),
      nodeCidrMaskSizeIpv6: integerFlag(
        'node-cidr-mask-size-ipv6',
        values['node-cidr-mask-size-ipv6'],
      ),
      serviceCidr: values['service-cidr'],
      nodeMonitorGracePeriodMs: durationFlag(
        'node-monitor-grace-period',
        values['node-monitor-grace-period'],
      ),
      nodeMonitorPeriodMs: durationFlag('node-monitor-period', values['node-monitor-period']),
      controllers: values.controllers?.split(',').map((n) => n.trim() as ControllerName),
      ...(ca === undefined ? {} : { ca }),
      log,
    });
  } catch (error) {
    err.write(`strata controller: ${messageOf(error)}\n`);
    return error instanceof ControllerConfigError ? 2 : 1;
  }
  await new Promise<void>((resolve) => {
    const done = (): void => {
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      resolve();
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
  });
  log('controller: stopping');
  await controller.stop();
  return 0;
}
