/**
 * `strata down`: removes everything of a cluster, whatever state `up` left
 * it in. The recorded processes (and any `strata apiserver|controller|agent`
 * of this state directory that was not recorded) get SIGTERM, then SIGKILL;
 * every process still inside one of the cluster's namespaces (the pods')
 * likewise; then the namespaces go (with them every link, route and
 * nftables table they held), then the state directory. Idempotent: a
 * cluster already gone is not an error. The host's root namespace is never
 * touched, since nothing of the cluster was ever in it.
 */
import { existsSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { netnsEtcDir } from '../agent/netns.js';
import { join } from 'node:path';
import { type ClusterTarget, isClusterNamespace } from './config.js';
import { ClusterError } from './errors.js';
import { deleteNamespace, listNamespaces } from './network.js';
import {
  findComponentProcesses,
  isClusterProcess,
  namespacePids,
  stopProcesses,
} from './processes.js';
import { type ClusterRecord, locateCluster, readRecord, stateEntries } from './state.js';

function etcNetnsEntries(): string[] {
  try {
    return readdirSync(netnsEtcDir);
  } catch {
    return [];
  }
}

export interface Progress {
  write(text: string): void;
}

export interface DownResult {
  target: ClusterTarget;
  /** Processes that were running and were stopped. */
  stopped: number;
  /** Network namespaces deleted. */
  namespaces: string[];
  /** The state directory was there and is gone now. */
  removedStateDir: boolean;
  /** The state directory holds files strata did not make, so it was left (its own entries removed). */
  keptStateDir: boolean;
}

/** How long components get to exit after SIGTERM before SIGKILL. */
const componentGraceMs = 5000;
/** What is left in the cluster's namespaces (pods' processes: a stopping agent leaves them to its successor). */
const podGraceMs = 1000;

function clusterNamespaces(target: ClusterTarget, record: ClusterRecord | undefined): string[] {
  const recorded = new Set([
    ...(record ? [record.underlay.netns, ...record.nodes.map((node) => node.netns)] : []),
  ]);
  const found = listNamespaces().filter(
    (netns) => recorded.has(netns) || isClusterNamespace(target.name, netns),
  );
  // Pods first, then nodes, the underlay last: each is deleted before what it hangs off.
  const rank = (netns: string): number =>
    netns === record?.underlay.netns || netns.endsWith('-underlay')
      ? 2
      : recorded.has(netns) || /-node-\d+$/.test(netns)
        ? 1
        : 0;
  return found.sort((a, b) => rank(a) - rank(b));
}

/**
 * Removes what strata made in the state directory; the directory too when
 * nothing else is in it. A directory without strata's marks (cluster.json,
 * the store's lock) never held a cluster: nothing in it is touched, whatever
 * its entries are called.
 */
function removeStateDir(stateDir: string): { removed: boolean; kept: boolean } {
  let entries: string[];
  try {
    entries = readdirSync(stateDir);
  } catch {
    return { removed: false, kept: false };
  }
  const marked =
    entries.includes('cluster.json') ||
    entries.includes('cluster.json.tmp') ||
    existsSync(join(stateDir, 'store', 'lock'));
  if (!marked) return { removed: false, kept: entries.length > 0 };
  for (const entry of entries.filter((e) => stateEntries.includes(e))) {
    rmSync(join(stateDir, entry), { recursive: true, force: true });
  }
  if (entries.some((e) => !stateEntries.includes(e))) return { removed: false, kept: true };
  rmdirSync(stateDir);
  return { removed: true, kept: false };
}

/** Tears the cluster down; see the module comment. Throws only when something could not be removed. */
export async function teardown(target: ClusterTarget): Promise<DownResult> {
  const record = readRecord(target.stateDir);
  const problems: string[] = [];

  const recorded = Object.values(record?.processes ?? {}).filter((pid) =>
    isClusterProcess(pid, target.stateDir),
  );
  const components = [...recorded, ...findComponentProcesses(target.stateDir)];
  let stopped = (await stopProcesses(components, componentGraceMs)).length;

  const namespaces = clusterNamespaces(target, record);
  const inside = namespaces.flatMap(namespacePids);
  stopped += (await stopProcesses(inside, podGraceMs)).length;
  const deleted: string[] = [];
  for (const netns of namespaces) {
    try {
      deleteNamespace(netns);
      deleted.push(netns);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }

  // Pods' resolv.conf files (`ip netns exec` binds /etc/netns/<pod>/ over /etc).
  for (const entry of etcNetnsEntries()) {
    if (!isClusterNamespace(target.name, entry)) continue;
    try {
      rmSync(join(netnsEtcDir, entry), { recursive: true, force: true });
    } catch (error) {
      problems.push(`cannot remove ${join(netnsEtcDir, entry)}: ${(error as Error).message}`);
    }
  }

  let state = { removed: false, kept: false };
  try {
    state = removeStateDir(target.stateDir);
  } catch (error) {
    problems.push(`cannot remove ${target.stateDir}: ${(error as Error).message}`);
  }
  if (problems.length > 0) {
    throw new ClusterError(
      'STRATA_ERR_CLUSTER_DOWN',
      `Cluster "${target.name}" is not completely down: ${problems.join('; ')}`,
    );
  }
  return {
    target,
    stopped,
    namespaces: deleted,
    removedStateDir: state.removed,
    keptStateDir: state.kept,
  };
}

/** `strata down`: tears the cluster down and reports what it removed. */
export async function down(
  options: Partial<ClusterTarget>,
  out: Progress = { write: () => undefined },
): Promise<DownResult> {
  const target = locateCluster(options);
  const result = await teardown(target);
  const { stopped, namespaces, removedStateDir, keptStateDir } = result;
  if (stopped === 0 && namespaces.length === 0 && !removedStateDir && !keptStateDir) {
    out.write(`Cluster "${target.name}" is not up; nothing to remove.\n`);
    return result;
  }
  if (stopped > 0) out.write(`✓ stopped ${stopped} process${stopped === 1 ? '' : 'es'}\n`);
  if (namespaces.length > 0) {
    out.write(
      `✓ deleted ${namespaces.length} network namespace${namespaces.length === 1 ? '' : 's'}\n`,
    );
  }
  if (removedStateDir) out.write(`✓ removed ${target.stateDir}\n`);
  if (keptStateDir) {
    out.write(
      `✓ removed strata's files from ${target.stateDir} (kept the directory: it holds other files)\n`,
    );
  }
  out.write(`Cluster "${target.name}" is down.\n`);
  return result;
}
