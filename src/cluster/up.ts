/**
 * `strata up`: a local cluster as docs/cluster.md lays it out. In order:
 * the state directory and cluster.json (the claim on the name), the
 * underlay, the node namespaces, the API server (waited for), the
 * mesh CA's node tokens (and an operator's plug-in CA), the controller
 * (which serves the CA), one agent per node inside its namespace; then it
 * waits until every Node is Ready with a pod CIDR, the CA answers, and the
 * cluster DNS (dns-addon.ts) has a ready pod. Each step is recorded before the
 * next starts, and any failure (Ctrl-C included) tears down everything
 * made so far, keeping the logs aside for the user to read.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { resourceForKind } from '../api/registry.js';
import type { KubeObject } from '../api/types.js';
import { ApiClient } from '../client/index.js';
import { PlugInCaError, checkPlugInCa, installPlugInCa } from '../mesh/ca-service/plug-in.js';
import { provisionNodeTokens } from '../mesh/ca-service/tokens.js';
import {
  defaultWorkloadCertTtlSeconds,
  formatWorkloadCertTtl,
} from '../mesh/certificates/lifetime.js';
import {
  type ClusterPlan,
  type UpOptions,
  clusterDefaults,
  isClusterNamespace,
  planCluster,
  targetFlags,
  workloadCertTtlSeconds,
} from './config.js';
import { cniExecutable, componentMissing, strataExecutable } from './components.js';
import {
  clusterDnsAddress,
  clusterDomain,
  dnsAddonObjects,
  dnsDeploymentName,
  dnsNamespace,
} from './dns-addon.js';
import { type Progress, teardown } from './down.js';
import { ClusterError } from './errors.js';
import { createNode, createUnderlay, listNamespaces } from './network.js';
import { isStartingProcessAlive, startDetached } from './processes.js';

const netnsRunDir = '/var/run/netns';
import {
  type ClusterRecord,
  createRecord,
  locateCluster,
  logFile,
  nodeCaTokenFile,
  saveRecord,
  statePaths,
} from './state.js';

export interface UpRun extends UpOptions {
  /** How long to wait for the API server and the nodes; 120 s by default. */
  timeoutSeconds?: number;
  /** The components' working directory (relative paths in pods' commands resolve from it); the caller's by default. */
  cwd?: string;
}

/** Steps at which STRATA_UP_FAULT=fail:<step> (with STRATA_TEST_HOOKS=1) makes `up` fail, for rollback tests. */
export type UpStep =
  'after-state' | 'after-underlay' | 'after-nodes' | 'after-apiserver' | 'after-components';

function faultPoint(step: UpStep): void {
  if (process.env.STRATA_TEST_HOOKS !== '1') return;
  if (process.env.STRATA_UP_FAULT === `fail:${step}`) {
    throw new ClusterError('STRATA_ERR_CLUSTER_UP', `injected failure ${step} (STRATA_UP_FAULT)`);
  }
}

/** A step of `up` failed; the message names the log files to read. */
class StartupError extends ClusterError {
  constructor(
    message: string,
    /** The log files (names in logs/) that explain it, the most telling first. */
    readonly logs: readonly string[],
  ) {
    super('STRATA_ERR_CLUSTER_UP', message);
  }
}

function checkPrerequisites(plan: ClusterPlan): void {
  if (process.getuid?.() !== 0) {
    throw new ClusterError(
      'STRATA_ERR_CLUSTER_PREREQUISITE',
      'strata up needs root: it creates network namespaces and runs the node agents in them',
    );
  }
  for (const executable of [strataExecutable, cniExecutable]) {
    if (!existsSync(executable)) {
      throw new ClusterError(
        'STRATA_ERR_CLUSTER_PREREQUISITE',
        `${executable} is missing: build strata first (npm run build)`,
      );
    }
  }
  for (const component of ['controller', 'agent'] as const) {
    const missing = componentMissing(component);
    if (missing !== undefined) {
      throw new ClusterError(
        'STRATA_ERR_CLUSTER_PREREQUISITE',
        `Cannot start the cluster: ${missing}`,
      );
    }
  }
  const flags = targetFlags(plan);
  if (existsSync(statePaths(plan.stateDir).clusterJson)) {
    throw new ClusterError(
      'STRATA_ERR_CLUSTER_EXISTS',
      `Cluster "${plan.name}" is already up (${statePaths(plan.stateDir).clusterJson}): see it with "strata status${flags}", take it down with "strata down${flags}"`,
    );
  }
  const leftover = listNamespaces().filter((netns) => isClusterNamespace(plan.name, netns));
  if (leftover.length > 0) {
    throw new ClusterError(
      'STRATA_ERR_CLUSTER_EXISTS',
      `Network namespaces of a cluster "${plan.name}" are left over (${leftover.join(', ')}): remove them with "strata down${flags}"`,
    );
  }
}

/** GET /readyz over the socket: true on 200. */
function apiReady(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/readyz', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('error', () => {
      resolve(false);
    });
    req.once('timeout', () => {
      req.destroy();
    });
    req.end();
  });
}

/** GET /v1/trust-bundle with a node's token: true on 200. */
function caReady(socketPath: string, token: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      {
        socketPath,
        path: '/v1/trust-bundle',
        timeout: 2000,
        headers: { authorization: `Bearer ${token}` },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.once('error', () => {
      resolve(false);
    });
    req.once('timeout', () => {
      req.destroy();
    });
    req.end();
  });
}

/** The last lines of a log file, indented, for a failure report. */
function logTail(path: string, lines = 12): string {
  try {
    const text = readFileSync(path, 'utf8').trimEnd();
    if (text === '') return '    (empty)\n';
    return `${text
      .split('\n')
      .slice(-lines)
      .map((line) => `    ${line}`)
      .join('\n')}\n`;
  } catch {
    return '    (no log)\n';
  }
}

/** Moves the logs out of the state directory before teardown removes it; returns where. */
function keepLogs(plan: ClusterPlan): string | undefined {
  const logs = statePaths(plan.stateDir).logs;
  try {
    if (readdirSync(logs).length === 0) return undefined;
    const kept = mkdtempSync(join(tmpdir(), `strata-${plan.name}-logs-`));
    for (const file of readdirSync(logs)) renameSync(join(logs, file), join(kept, file));
    return kept;
  } catch {
    return undefined;
  }
}

interface NodeView {
  registered: boolean;
  ready: boolean;
  /** The Ready condition's reason and message when it is not True. */
  why?: string;
  podCidr?: string;
}

function viewNode(node: KubeObject | undefined): NodeView {
  if (!node) return { registered: false, ready: false };
  const conditions = (node.status?.conditions ?? []) as {
    type?: string;
    status?: string;
    reason?: string;
    message?: string;
  }[];
  const readyCondition = conditions.find((c) => c.type === 'Ready');
  const podCidr = node.spec?.podCIDR;
  return {
    registered: true,
    ready: readyCondition?.status === 'True',
    ...(readyCondition && readyCondition.status !== 'True'
      ? { why: [readyCondition.reason, readyCondition.message].filter(Boolean).join(': ') }
      : {}),
    ...(typeof podCidr === 'string' && podCidr !== '' ? { podCidr } : {}),
  };
}

function notReadyReason(view: NodeView): string {
  if (!view.registered) return 'its agent never registered the Node';
  if (!view.ready) return `the Node is not Ready${view.why ? ` (${view.why})` : ''}`;
  return 'the Node has no pod CIDR (the controller assigns it)';
}

class Startup {
  readonly record: ClusterRecord;
  interrupted = false;
  readonly #deadline: number;

  constructor(
    plan: ClusterPlan,
    private readonly run: UpRun,
    private readonly out: Progress,
  ) {
    this.record = { ...plan, processes: {} };
    this.#deadline = Date.now() + (run.timeoutSeconds ?? 120) * 1000;
  }

  get stateDir(): string {
    return this.record.stateDir;
  }

  #check(): void {
    if (this.interrupted) throw new ClusterError('STRATA_ERR_CLUSTER_UP', 'Interrupted');
    for (const [component, pid] of Object.entries(this.record.processes)) {
      if (isStartingProcessAlive(pid, this.stateDir)) continue;
      this.out.write(`✗ ${component} exited; the end of its log:\n`);
      this.out.write(logTail(logFile(this.stateDir, component)));
      throw new StartupError(`${component} exited during start-up`, [`${component}.log`]);
    }
  }

  async #start(component: string, args: string[], netns?: string): Promise<number> {
    const node = [process.execPath, strataExecutable, ...args];
    // nsenter --net, not `ip netns exec`: the latter gives the agent a private mount
    // namespace, where the pod namespaces it names would be invisible to the host.
    const pid = await startDetached({
      file: netns === undefined ? process.execPath : 'nsenter',
      args: netns === undefined ? node.slice(1) : [`--net=${netnsRunDir}/${netns}`, '--', ...node],
      logPath: logFile(this.stateDir, component),
      cwd: this.run.cwd ?? process.cwd(),
    });
    this.record.processes[component] = pid;
    saveRecord(this.record);
    return pid;
  }

  state(): void {
    const paths = statePaths(this.stateDir);
    mkdirSync(paths.logs, { recursive: true });
    mkdirSync(paths.nodes, { recursive: true });
    createRecord(this.record);
    this.out.write(
      `Creating cluster "${this.record.name}": ${this.record.nodes.length} node${this.record.nodes.length === 1 ? '' : 's'}, ${this.record.backend}, state in ${this.stateDir}\n`,
    );
  }

  network(): void {
    const { underlay, underlayCidr, nodes } = this.record;
    createUnderlay(this.record);
    this.out.write(`✓ underlay ${underlay.netns} (${underlayCidr}, bridge ${underlay.bridge})\n`);
    faultPoint('after-underlay');
    for (const node of nodes) {
      this.#check();
      createNode(this.record, node);
      this.out.write(`✓ ${node.name}: namespace ${node.netns}, eth0 ${node.ip}\n`);
    }
  }

  async apiserver(): Promise<void> {
    await this.#start('apiserver', [
      'apiserver',
      '--state-dir',
      this.stateDir,
      '--service-cidr',
      this.record.serviceCidr,
    ]);
    while (!(await apiReady(this.record.apiSocket))) {
      this.#check();
      if (Date.now() > this.#deadline) {
        throw new StartupError('The API server did not become ready in time', ['apiserver.log']);
      }
      await sleep(100);
    }
    this.out.write(`✓ api server ready (unix://${this.record.apiSocket})\n`);
  }

  get trustDomain(): string {
    return this.run.trustDomain ?? clusterDefaults.trustDomain;
  }

  /** The workload certificates' lifetime, as the agents' flag takes it (checked by planCluster). */
  get workloadCertTtl(): string {
    const seconds = workloadCertTtlSeconds(this.run.workloadCertTtl);
    return formatWorkloadCertTtl(seconds ?? defaultWorkloadCertTtlSeconds);
  }

  /** The mesh CA's directory: the operator's plug-in files if given, and a token per node. */
  async meshCa(): Promise<void> {
    const paths = statePaths(this.stateDir);
    if (this.run.pluginCa !== undefined) {
      await installPlugInCa(resolvePath(this.run.pluginCa), paths.ca);
    }
    await provisionNodeTokens({
      nodes: this.record.nodes.map((node) => node.name),
      tokensFile: paths.nodeTokens,
      tokenFile: (node) => nodeCaTokenFile(this.stateDir, node),
    });
  }

  async components(): Promise<void> {
    const { apiSocket, clusterCidr, nodeCidrMaskSize, backend } = this.record;
    const paths = statePaths(this.stateDir);
    await this.#start('controller', [
      'controller',
      '--api',
      apiSocket,
      '--cluster-cidr',
      clusterCidr,
      '--node-cidr-mask-size',
      String(nodeCidrMaskSize),
      '--service-cidr',
      this.record.serviceCidr,
      '--ca-dir',
      paths.ca,
      '--ca-socket',
      paths.caSocket,
      '--node-tokens',
      paths.nodeTokens,
      '--trust-domain',
      this.trustDomain,
    ]);
    this.out.write('✓ controller started\n');
    for (const node of this.record.nodes) {
      const args = ['agent', '--state-dir', this.stateDir, '--api', apiSocket, '--node', node.name];
      // --cluster names the pods' namespaces (strata-<cluster>-<uid>), which `down` looks for.
      const cluster = ['--cluster', this.record.name, '--cluster-cidr', clusterCidr];
      const services = ['--service-cidr', this.record.serviceCidr];
      if (this.run.dns !== false) {
        const dns = clusterDnsAddress(this.record.serviceCidr);
        services.push('--cluster-dns', dns, '--cluster-domain', clusterDomain);
      }
      // The mesh: the controller's CA service and this node's token (meshCa wrote it), and
      // the lifetime its workload certificates are asked for.
      const mesh = [
        '--ca-socket',
        paths.caSocket,
        '--ca-token-file',
        nodeCaTokenFile(this.stateDir, node.name),
        '--trust-domain',
        this.trustDomain,
        '--workload-cert-ttl',
        this.workloadCertTtl,
      ];
      await this.#start(
        `agent-${node.name}`,
        [...args, '--node-ip', node.ip, '--backend', backend, ...cluster, ...services, ...mesh],
        node.netns,
      );
    }
    this.out.write(`✓ agents started on ${this.record.nodes.map((n) => n.name).join(', ')}\n`);
  }

  async nodesReady(): Promise<void> {
    const nodeResource = resourceForKind('v1', 'Node');
    if (!nodeResource) throw new Error('the registry has no v1 Node');
    const client = new ApiClient({ socketPath: this.record.apiSocket }, { timeoutMs: 5000 });
    const reported = new Set<string>();
    let views = new Map<string, NodeView>();
    try {
      for (;;) {
        this.#check();
        try {
          const list = await client.list(nodeResource);
          views = new Map(list.items.map((n) => [n.metadata.name ?? '', viewNode(n)]));
        } catch {
          // The API server's death is caught by #check; a slow answer is retried.
        }
        for (const node of this.record.nodes) {
          const view = views.get(node.name);
          if (!reported.has(node.name) && view?.ready && view.podCidr !== undefined) {
            reported.add(node.name);
            this.out.write(`✓ ${node.name} Ready (pod CIDR ${view.podCidr})\n`);
          }
        }
        if (reported.size === this.record.nodes.length) return;
        if (Date.now() > this.#deadline) break;
        await sleep(200);
      }
    } finally {
      client.close();
    }
    const late = this.record.nodes.filter((node) => !reported.has(node.name));
    const reasons = late.map(
      (node) => `${node.name}: ${notReadyReason(views.get(node.name) ?? viewNode(undefined))}`,
    );
    throw new StartupError(
      `${late.length === 1 ? 'A node' : 'Nodes'} did not become Ready within ${this.run.timeoutSeconds ?? 120} s (${reasons.join('; ')})`,
      [...late.map((node) => `agent-${node.name}.log`), 'controller.log'],
    );
  }

  /** Waits until the controller's CA service answers a node's request for the trust bundle. */
  async caServing(): Promise<void> {
    const { caSocket } = statePaths(this.stateDir);
    const first = this.record.nodes[0];
    if (first === undefined) return;
    const token = readFileSync(nodeCaTokenFile(this.stateDir, first.name), 'utf8').trim();
    while (!(await caReady(caSocket, token))) {
      this.#check();
      if (Date.now() > this.#deadline) {
        throw new StartupError('The mesh CA service did not answer in time', ['controller.log']);
      }
      await sleep(100);
    }
    const source =
      this.run.pluginCa === undefined
        ? 'self-signed root'
        : `plug-in CA from ${resolvePath(this.run.pluginCa)}`;
    this.out.write(
      `✓ mesh CA serving (unix://${caSocket}, trust domain ${this.trustDomain}, ${source})\n`,
    );
  }

  /** Creates the cluster DNS (dns-addon.ts) and waits until one of its pods is ready. */
  async clusterDns(): Promise<void> {
    const address = clusterDnsAddress(this.record.serviceCidr);
    const client = new ApiClient({ socketPath: this.record.apiSocket }, { timeoutMs: 5000 });
    const deployments = resourceForKind('apps/v1', 'Deployment');
    try {
      for (const object of dnsAddonObjects({
        serviceCidr: this.record.serviceCidr,
        apiSocket: this.record.apiSocket,
        strata: [process.execPath, strataExecutable],
      })) {
        await client.create(object);
      }
      for (;;) {
        this.#check();
        const deployment = deployments
          ? await client
              .get(deployments, dnsDeploymentName, { namespace: dnsNamespace })
              .catch(() => undefined)
          : undefined;
        const ready = deployment?.status?.readyReplicas;
        if (typeof ready === 'number' && ready > 0) break;
        if (Date.now() > this.#deadline) {
          throw new StartupError(
            `The cluster DNS (deployment ${dnsNamespace}/${dnsDeploymentName}) did not become ready in time`,
            [...this.record.nodes.map((node) => `agent-${node.name}.log`)],
          );
        }
        await sleep(200);
      }
    } finally {
      client.close();
    }
    this.out.write(`✓ cluster DNS ready (${address}, domain ${clusterDomain})\n`);
  }
}

/** Brings the cluster up (see the module comment); resolves to its record once every node is Ready. */
export async function up(run: UpRun, out: Progress): Promise<ClusterRecord> {
  const plan = planCluster({ ...run, ...locateCluster(run) });
  checkPrerequisites(plan);
  if (run.pluginCa !== undefined) {
    try {
      await checkPlugInCa(resolvePath(run.pluginCa));
    } catch (error) {
      if (!(error instanceof PlugInCaError)) throw error;
      throw new ClusterError('STRATA_ERR_CLUSTER_OPTION', error.message);
    }
  }
  const startup = new Startup(plan, run, out);
  mkdirSync(plan.stateDir, { recursive: true, mode: 0o700 });
  try {
    startup.state();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new ClusterError(
        'STRATA_ERR_CLUSTER_EXISTS',
        `Cluster "${plan.name}" is being brought up by another strata up`,
      );
    }
    throw error;
  }
  const interrupt = (): void => {
    startup.interrupted = true;
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  process.on('SIGHUP', interrupt);
  try {
    faultPoint('after-state');
    startup.network();
    faultPoint('after-nodes');
    await startup.apiserver();
    faultPoint('after-apiserver');
    await startup.meshCa();
    await startup.components();
    faultPoint('after-components');
    await startup.nodesReady();
    await startup.caServing();
    if (run.dns !== false) await startup.clusterDns();
  } catch (error) {
    out.write('✗ start-up failed: removing everything made so far\n');
    const kept = keepLogs(plan);
    try {
      await teardown(plan);
    } catch (cleanup) {
      out.write(`✗ ${(cleanup as Error).message}\n`);
    }
    const logs = error instanceof StartupError ? error.logs : [];
    const where =
      kept === undefined
        ? ''
        : `; the logs are kept in ${kept}${logs.length > 0 ? ` (read ${logs.join(', ')})` : ''}`;
    throw new ClusterError(
      'STRATA_ERR_CLUSTER_UP',
      `Cluster "${plan.name}" did not come up: ${(error as Error).message}${where}`,
      { cause: error },
    );
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    process.off('SIGHUP', interrupt);
  }
  const flags = targetFlags(plan);
  out.write(
    `Cluster "${plan.name}" is up. Next:\n  strata get nodes -o wide${flags}\n  strata apply -f MANIFESTS${flags}\n  strata down${flags}\n`,
  );
  return startup.record;
}
