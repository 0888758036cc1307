/**
 * `strata apiserver --state-dir D [--service-cidr S]
 * [--service-node-port-range a-b]`: the cluster's API server process (it
 * allocates Services' cluster IPs from S, and NodePort Services' node ports
 * from a-b, 30000-32767 by default, as kube-apiserver's flags). A
 * FileStore in D/store behind the API on the unix socket D/api.sock; on
 * SIGTERM or SIGINT it stops listening, lets requests in flight finish,
 * closes the store and exits 0.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type PortRange, parsePortRange } from '../apiserver/node-ports.js';
import { startApiServer } from '../apiserver/server.js';
import { FileStore } from '../store/file.js';
import { ClusterError } from './errors.js';
import { statePaths } from './state.js';

/** --service-node-port-range, parsed; a usage error when it is not a range of ports. */
function nodePortRangeOption(text: string | undefined): PortRange | undefined {
  if (text === undefined) return undefined;
  const range = parsePortRange(text);
  if (typeof range === 'string') {
    throw new ClusterError(
      'STRATA_ERR_CLUSTER_OPTION',
      `--service-node-port-range ${JSON.stringify(text)} is not a port range: ${range}; for example 30000-32767`,
    );
  }
  return range;
}

/** Runs the API server until a signal; resolves to the exit code. */
export async function apiserverCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      'state-dir': { type: 'string' },
      socket: { type: 'string' },
      'service-cidr': { type: 'string' },
      'service-node-port-range': { type: 'string' },
    },
    strict: true,
  });
  const stateDir = values['state-dir'];
  if (stateDir === undefined) {
    throw new ClusterError('STRATA_ERR_CLUSTER_OPTION', 'strata apiserver needs --state-dir');
  }
  const nodePortRange = nodePortRangeOption(values['service-node-port-range']);
  const paths = statePaths(stateDir);
  const socketPath = values.socket ?? paths.apiSocket;
  mkdirSync(paths.store, { recursive: true });
  const store = await FileStore.open(paths.store);
  let server;
  try {
    server = await startApiServer({
      store,
      listen: { socketPath },
      ...(values['service-cidr'] ? { serviceCidr: values['service-cidr'] } : {}),
      ...(nodePortRange ? { serviceNodePortRange: nodePortRange } : {}),
    });
    // Whoever can reach the socket can run commands as root in pods: owner only.
    chmodSync(socketPath, 0o600);
  } catch (error) {
    await store.close();
    throw error;
  }
  const running = server;
  process.stdout.write(
    `${new Date().toISOString()} api server listening on ${running.url} (store ${paths.store})\n`,
  );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  process.stdout.write(`${new Date().toISOString()} ${signal}: stopping\n`);
  await running.close();
  await store.close();
  return 0;
}
