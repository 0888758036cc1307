/**
 * The strata command line: a dispatcher to one module per command (or small
 * group), and the one place failures become output: a single line
 * (`error: ...`, or kubectl's `Error from server (...)`) and an exit code,
 * 1 for a failure and 2 for a command line that is wrong (explain's failures
 * are 3: its 1 means "denied"). STRATA_DEBUG=1 adds the stack.
 */
import { readFileSync } from 'node:fs';
import { supportedVersions } from '../cni/version.js';
import { ApiError } from '../client/index.js';
import { dnsCommand } from '../dns/command.js';
import { strataVersion } from '../version.js';
import { applyCommand } from './apply.js';
import { UsageError } from './args.js';
import { componentCommand, downCommand, statusCommand, upCommand } from './cluster-commands.js';
import { serverError } from './connect.js';
import { deleteCommand } from './delete.js';
import { runDemo } from './demo.js';
import { describeCommand } from './describe.js';
import { execCommand } from './exec.js';
import { explainCommand, explainExitCodes } from './explain.js';
import { getCommand } from './get.js';
import type { Io, Output } from './io.js';
import { logsCommand } from './logs.js';

const usage = `strata — Kubernetes networking, both layers

Usage: strata COMMAND [FLAGS]

A local cluster (root; network namespaces on this machine):
  up       [--nodes N] [--cluster-cidr CIDR] [--service-cidr CIDR] [--underlay-cidr CIDR]
           [--backend host-gw|vxlan] [--node-cidr-mask-size N] [--timeout SECONDS] [--no-dns]
           [--trust-domain DOMAIN] [--plugin-ca DIR] [--workload-cert-ttl DURATION]
                        start a cluster and wait until every node is Ready and the
                        cluster DNS answers (--no-dns: without cluster DNS); the mesh CA
                        signs for DOMAIN (default cluster.local) with a self-signed root,
                        or with Istio's plug-in files in DIR (ca-cert.pem, ca-key.pem,
                        root-cert.pem, cert-chain.pem); workload certificates last
                        DURATION (default 24h; 10s to 2160h, e.g. 90s, 1h30m) and are
                        rotated at half life
  down                  stop every process of the cluster and delete its namespaces and state
  status                the cluster's nodes, addresses, pod CIDRs and processes

Objects (as kubectl):
  apply -f FILE|DIR|- [-R] [-n NS]
                        validate every manifest, then create or update each object
  delete -f FILE|DIR|- | KIND NAME... | KIND --all [-n NS] [--ignore-not-found] [--wait]
  get KIND [NAME...] [-n NS | -A] [-l SELECTOR] [-o wide|yaml|json|name]
  describe KIND [NAME...] [-n NS]
  logs POD [-c CONTAINER] [-f] [--tail N] [-n NS]
  exec POD [-c CONTAINER] [-n NS] -- COMMAND [ARG...]
                        run a command in the pod's network namespace

NetworkPolicy:
  explain FROM TO:PORT[/PROTOCOL] [-n NS] [-o json]
                        whether FROM may connect to TO, and which policies and rules decide it;
                        FROM and TO are POD, NAMESPACE/POD or an IP ([IPv6]:PORT); PROTOCOL is
                        TCP (default), UDP or SCTP; exits 0 when allowed, 1 when denied
  get networkpolicies -o wide
                        each policy's types and the pods it selects

Other:
  demo                  two pods wired by strata-cni in network namespaces, no cluster (root)
  version               strata's version and the CNI versions it speaks
  help                  this text

Every cluster command takes --name NAME (default "default") and --state-dir DIR
(default /var/lib/strata/NAME) to pick the cluster.
`;

const commands: Record<string, (argv: readonly string[], io: Io) => Promise<number>> = {
  up: upCommand,
  down: downCommand,
  status: statusCommand,
  apply: applyCommand,
  delete: deleteCommand,
  get: getCommand,
  describe: describeCommand,
  logs: logsCommand,
  exec: execCommand,
  explain: explainCommand,
  apiserver: (argv) => componentCommand('apiserver', argv),
  controller: (argv) => componentCommand('controller', argv),
  agent: (argv) => componentCommand('agent', argv),
  'mesh-proxy': (argv) => componentCommand('mesh-proxy', argv),
  dns: (argv, io) => dnsCommand(argv, io),
};

/** The message and its causes, as one line: `outer: inner: innermost`. */
export function errorLine(error: unknown): string {
  if (error instanceof ApiError) return serverError(error);
  const parts: string[] = [];
  let current: unknown = error;
  while (current instanceof Error && parts.length < 5) {
    const { code, address } = current as NodeJS.ErrnoException & { address?: string };
    let message = current.message;
    if ((code === 'ECONNREFUSED' || code === 'ENOENT') && address !== undefined) {
      message = `the API server is not answering on ${address}: is the cluster up? (strata status)`;
    }
    if (!parts.some((part) => part.includes(message))) parts.push(message);
    current = current.cause;
  }
  if (parts.length === 0) parts.push(String(error));
  const line = parts.join(': ');
  return line.startsWith('Error from server') || line.startsWith('error: ')
    ? line
    : `error: ${line}`;
}

function debugText(error: unknown): string {
  let text = '';
  let current: unknown = error;
  while (current instanceof Error) {
    text += `${current.stack ?? current.message}\n`;
    current = current.cause;
    if (current instanceof Error) text += 'Caused by: ';
  }
  return text;
}

/** Runs the CLI and returns its exit code. */
export async function main(
  argv: readonly string[],
  out: Output = process.stdout,
  err: Output = process.stderr,
  readStdin: () => string = () => readFileSync(0, 'utf8'),
): Promise<number> {
  const [command, ...rest] = argv;
  const io: Io = { out, err, readStdin };
  try {
    switch (command) {
      case 'demo':
        return await runDemo(out);
      case 'version':
      case '--version':
        out.write(
          `strata ${strataVersion} (CNI ${supportedVersions.join(', ')}; node ${process.versions.node})\n`,
        );
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        out.write(usage);
        return 0;
      default: {
        const run = commands[command];
        if (!run) {
          err.write(`strata: unknown command "${command}"\n\n${usage}`);
          return 2;
        }
        return await run(rest, io);
      }
    }
  } catch (error) {
    if (process.env.STRATA_DEBUG === '1') err.write(debugText(error));
    err.write(`${errorLine(error)}\n`);
    if (error instanceof UsageError) {
      err.write('See "strata help" for usage.\n');
      return 2;
    }
    return command === 'explain' ? explainExitCodes.failure : 1;
  }
}
