/**
 * The CLI's way to a cluster: the API socket in the state directory that
 * --name/--state-dir pick, checked to exist so that "no cluster" reads as
 * such, and kubectl's wording for failures the server reports.
 */
import { existsSync } from 'node:fs';
import { ApiClient, ApiError } from '../client/index.js';
import {
  type ClusterRecord,
  type ClusterTarget,
  locateCluster,
  readRecord,
  statePaths,
  targetFlags,
} from '../cluster/index.js';
import { CommandError, targetFromFlags } from './args.js';

export interface Connection {
  target: ClusterTarget;
  /** cluster.json, when the cluster was made by `strata up`. */
  record: ClusterRecord | undefined;
  apiSocket: string;
  client: ApiClient;
}

/** Connects to the API server of the cluster the flags name; fails when it is not up. */
export function connect(values: { name?: string; 'state-dir'?: string }): Connection {
  const target = locateCluster(targetFromFlags(values));
  const record = readRecord(target.stateDir);
  const apiSocket = record?.apiSocket ?? statePaths(target.stateDir).apiSocket;
  if (!existsSync(apiSocket)) {
    throw new CommandError(
      `no cluster "${target.name}" is up (${apiSocket} does not exist): start one with "strata up${targetFlags(target)}"`,
    );
  }
  return { target, record, apiSocket, client: new ApiClient({ socketPath: apiSocket }) };
}

/** A server failure as kubectl prints it: `Error from server (NotFound): pods "web" not found`. */
export function serverError(error: ApiError, during?: string): string {
  const reason = error.reason ?? `HTTP ${error.code}`;
  return `Error from server (${reason}): ${during === undefined ? '' : `${during}: `}${error.message}`;
}

/** Re-throws anything but an ApiError; returns kubectl's line for an ApiError. */
export function serverErrorLine(error: unknown, during?: string): string {
  if (error instanceof ApiError) return serverError(error, during);
  throw error;
}
