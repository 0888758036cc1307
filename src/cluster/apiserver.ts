/**
 * `strata apiserver --state-dir D [--service-cidr S]`: the cluster's API
 * server process (it allocates Services' cluster IPs from S). A
 * FileStore in D/store behind the API on the unix socket D/api.sock; on
 * SIGTERM or SIGINT it stops listening, lets requests in flight finish,
 * closes the store and exits 0.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startApiServer } from '../apiserver/server.js';
import { FileStore } from '../store/file.js';
import { ClusterError } from './errors.js';
import { statePaths } from './state.js';

/** Runs the API server until a signal; resolves to the exit code. */
export async function apiserverCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      'state-dir': { type: 'string' },
      socket: { type: 'string' },
      'service-cidr': { type: 'string' },
    },
    strict: true,
  });
  const stateDir = values['state-dir'];
  if (stateDir === undefined) {
    throw new ClusterError('STRATA_ERR_CLUSTER_OPTION', 'strata apiserver needs --state-dir');
  }
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
