/**
 * A cluster's state directory (docs/cluster.md): where each thing lives,
 * and cluster.json, the record of what `up` made, written as it goes so
 * that `down` finds everything even after an `up` that was killed halfway.
 */
import { closeSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { type ClusterPlan, type ClusterTarget, resolveTarget } from './config.js';

/** cluster.json: the plan, and the process id of each component started. */
export interface ClusterRecord extends ClusterPlan {
  /** `apiserver`, `controller`, `agent-<node>` → pid. */
  processes: Record<string, number>;
}

export interface StatePaths {
  clusterJson: string;
  store: string;
  apiSocket: string;
  logs: string;
  nodes: string;
  /** The mesh CA's directory: its key and roots, and node-tokens.json. */
  ca: string;
  /** The controller's CA service socket. */
  caSocket: string;
  /** node name → SHA-256 of its CA token, for the controller. */
  nodeTokens: string;
}

export function statePaths(stateDir: string): StatePaths {
  return {
    clusterJson: join(stateDir, 'cluster.json'),
    store: join(stateDir, 'store'),
    apiSocket: join(stateDir, 'api.sock'),
    logs: join(stateDir, 'logs'),
    nodes: join(stateDir, 'nodes'),
    ca: join(stateDir, 'ca'),
    caSocket: join(stateDir, 'ca.sock'),
    nodeTokens: join(stateDir, 'ca', 'node-tokens.json'),
  };
}

/** `nodes/<node>/ca-token`: the node's token for the CA service (mode 0600). */
export function nodeCaTokenFile(stateDir: string, node: string): string {
  return join(statePaths(stateDir).nodes, node, 'ca-token');
}

/** The entries of a state directory that strata makes; `down` removes these and nothing else. */
export const stateEntries = [
  'cluster.json',
  'cluster.json.tmp',
  'store',
  'api.sock',
  'logs',
  'nodes',
  'ca',
  'ca.sock',
];

/** `logs/<component>.log`. */
export function logFile(stateDir: string, component: string): string {
  return join(statePaths(stateDir).logs, `${component}.log`);
}

function serialize(record: ClusterRecord): string {
  return `${JSON.stringify(record, null, 2)}\n`;
}

/**
 * Creates cluster.json, failing with EEXIST when it is there: the record
 * is also the claim on the cluster's name, so two `up`s cannot both win.
 */
export function createRecord(record: ClusterRecord): void {
  const fd = openSync(statePaths(record.stateDir).clusterJson, 'wx', 0o644);
  try {
    writeSync(fd, serialize(record));
  } finally {
    closeSync(fd);
  }
}

/** Rewrites cluster.json whole (temp file and rename: a reader never sees half of it). */
export function saveRecord(record: ClusterRecord): void {
  const path = statePaths(record.stateDir).clusterJson;
  writeFileSync(`${path}.tmp`, serialize(record), { mode: 0o644 });
  renameSync(`${path}.tmp`, path);
}

/** The cluster.json in `stateDir`; undefined when there is none (or it cannot be read as one). */
export function readRecord(stateDir: string): ClusterRecord | undefined {
  let text: string;
  try {
    text = readFileSync(statePaths(stateDir).clusterJson, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const record = JSON.parse(text) as Partial<ClusterRecord> | null;
    if (typeof record !== 'object' || record === null || typeof record.name !== 'string') {
      return undefined;
    }
    return {
      ...(record as ClusterRecord),
      nodes: Array.isArray(record.nodes) ? record.nodes : [],
      processes:
        typeof record.processes === 'object' && record.processes !== null ? record.processes : {},
    };
  } catch {
    return undefined;
  }
}

/**
 * The cluster --name and --state-dir pick: with only --state-dir, the name
 * its cluster.json records (else the default name).
 */
export function locateCluster(options: Partial<ClusterTarget>): ClusterTarget {
  if (options.name === undefined && options.stateDir !== undefined) {
    const record = readRecord(options.stateDir);
    if (record) return { name: record.name, stateDir: options.stateDir };
  }
  return resolveTarget(options);
}
