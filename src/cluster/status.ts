/**
 * `strata status`: what cluster.json says was made, checked against what
 * is running now: each component's process, and each node as the API
 * server sees it (registered, Ready, its pod CIDR).
 */
import { resourceForKind } from '../api/registry.js';
import type { KubeObject } from '../api/types.js';
import { ApiClient } from '../client/index.js';
import { type ClusterTarget, targetFlags } from './config.js';
import { isClusterProcess, meshProxyPid } from './processes.js';
import { type ClusterRecord, locateCluster, readRecord } from './state.js';

export interface ProcessStatus {
  component: string;
  pid: number;
  running: boolean;
}

export interface NodeStatus {
  name: string;
  ip: string;
  netns: string;
  /** Undefined when the API server could not be asked. */
  registered?: boolean;
  ready?: boolean;
  podCidr?: string;
  /** The node's mesh proxy (`strata mesh-proxy`, its agent's child), when one runs. */
  meshProxyPid?: number;
}

export interface ClusterStatus {
  target: ClusterTarget;
  record: ClusterRecord;
  processes: ProcessStatus[];
  nodes: NodeStatus[];
  /** Why the nodes could not be read from the API server. */
  apiError?: string;
}

/** The cluster's status, or undefined when it is not up (no cluster.json). */
export async function status(options: Partial<ClusterTarget>): Promise<ClusterStatus | undefined> {
  const target = locateCluster(options);
  const record = readRecord(target.stateDir);
  if (!record) return undefined;
  const processes = Object.entries(record.processes).map(([component, pid]) => ({
    component,
    pid,
    running: isClusterProcess(pid, target.stateDir),
  }));
  let apiNodes: Map<string, KubeObject> | undefined;
  let apiError: string | undefined;
  const nodeResource = resourceForKind('v1', 'Node');
  const client = new ApiClient({ socketPath: record.apiSocket }, { timeoutMs: 3000 });
  try {
    if (!nodeResource) throw new Error('the registry has no v1 Node');
    const list = await client.list(nodeResource);
    apiNodes = new Map(list.items.map((node) => [node.metadata.name ?? '', node]));
  } catch (error) {
    apiError = (error as Error).message;
  } finally {
    client.close();
  }
  const nodes = record.nodes.map((node): NodeStatus => {
    const proxy = meshProxyPid(target.stateDir, node.name);
    const mesh = proxy === undefined ? {} : { meshProxyPid: proxy };
    if (!apiNodes) return { ...node, ...mesh };
    const object = apiNodes.get(node.name);
    const conditions = (object?.status?.conditions ?? []) as { type?: string; status?: string }[];
    const podCidr = object?.spec?.podCIDR;
    return {
      ...node,
      registered: object !== undefined,
      ready: conditions.some((c) => c.type === 'Ready' && c.status === 'True'),
      ...(typeof podCidr === 'string' && podCidr !== '' ? { podCidr } : {}),
      ...mesh,
    };
  });
  return { target, record, processes, nodes, ...(apiError === undefined ? {} : { apiError }) };
}

/** Whether every process runs (each node's mesh proxy too) and every node is Ready with a pod CIDR. */
export function isHealthy(cluster: ClusterStatus): boolean {
  return (
    cluster.apiError === undefined &&
    cluster.processes.every((p) => p.running) &&
    cluster.nodes.every(
      (n) => n.ready === true && n.podCidr !== undefined && n.meshProxyPid !== undefined,
    )
  );
}

function pad(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + 3)))
        .join(''),
    )
    .map((line) => `${line}\n`)
    .join('');
}

function readiness(node: NodeStatus): string {
  if (node.registered === undefined) return 'unknown';
  if (!node.registered) return 'NotRegistered';
  return node.ready ? 'Ready' : 'NotReady';
}

/** The status as `strata status` prints it. */
export function formatStatus(cluster: ClusterStatus): string {
  const { record } = cluster;
  const agents = new Map(cluster.processes.map((p) => [p.component, p]));
  const health = (p: ProcessStatus | undefined): string =>
    p === undefined
      ? 'not started'
      : p.running
        ? `running (pid ${p.pid})`
        : `exited (pid ${p.pid})`;
  const lines = [
    `Cluster "${record.name}": ${isHealthy(cluster) ? 'healthy' : 'degraded'}`,
    `  state      ${record.stateDir}`,
    `  api        unix://${record.apiSocket}`,
    `  networks   cluster ${record.clusterCidr} (/${record.nodeCidrMaskSize} per node), services ${record.serviceCidr}, underlay ${record.underlayCidr}, ${record.backend}`,
    '',
  ].join('\n');
  const nodes = pad([
    ['NODE', 'IP', 'POD CIDR', 'STATUS', 'AGENT', 'MESH PROXY'],
    ...cluster.nodes.map((node) => [
      node.name,
      node.ip,
      node.podCidr ?? '<none>',
      readiness(node),
      health(agents.get(`agent-${node.name}`)),
      node.meshProxyPid === undefined ? 'not running' : `running (pid ${node.meshProxyPid})`,
    ]),
  ]);
  const components = pad([
    ['COMPONENT', 'PROCESS'],
    ...['apiserver', 'controller'].map((c) => [c, health(agents.get(c))]),
  ]);
  const api =
    cluster.apiError === undefined ? '' : `\nThe API server did not answer: ${cluster.apiError}\n`;
  const flags = targetFlags(cluster.target);
  const hint = isHealthy(cluster)
    ? ''
    : `\nLogs: ${record.stateDir}/logs/. Start again with "strata down${flags}" then "strata up${flags}".\n`;
  return `${lines}\n${nodes}\n${components}${api}${hint}`;
}
