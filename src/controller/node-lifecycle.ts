/**
 * Node lifecycle, as kube-controller-manager's node lifecycle controller
 * (pkg/controller/nodelifecycle) watches kubelets. The agent renews its
 * Node's Ready condition (lastHeartbeatTime) every 10 s; a Node whose
 * heartbeat has not been renewed for the grace period
 * (--node-monitor-grace-period, 40 s) has Ready, and whichever of kubelet's
 * MemoryPressure, DiskPressure and PIDPressure it carries, set to Unknown,
 * reason NodeStatusUnknown (NodeStatusNeverUpdated for a Node that never had
 * a Ready condition), through the status subresource and merged by
 * condition type, so others' conditions stay as they are. As upstream, a
 * renewal is timed by this controller's clock when it sees lastHeartbeatTime
 * change, never by the timestamp itself (no clock skew), so after a restart
 * every Node gets a whole grace period; every Node is checked each
 * --node-monitor-period (5 s), so a dead agent's Node turns Unknown between
 * grace and grace + period after its last heartbeat.
 *
 * A Node whose Ready is Unknown gets the taint
 * node.kubernetes.io/unreachable:NoSchedule (upstream's
 * doNoScheduleTaintingPass), removed once Ready is anything else: the agent
 * merging its Ready condition back. Upstream also adds
 * node.kubernetes.io/unreachable:NoExecute (taint-based eviction), for its
 * taint eviction controller to delete the pods that do not tolerate it
 * after their tolerationSeconds (300 s, from the DefaultTolerationSeconds
 * admission plugin). Strata has neither and does not evict: a NoExecute
 * taint would promise evictions nobody performs, so it is not added. A dead
 * agent's pods stay bound to its Node (and count for their Deployment), but
 * not ready.
 *
 * Every pod on a Node whose Ready is not True that has a Ready condition
 * not already False gets Ready=False, reason NodeNotReady (upstream's
 * MarkPodsNotReady, for the Node's pods when it stops being Ready and for a
 * pod that turns up on such a Node), so the EndpointSlice controller takes
 * it out of the ready endpoints. Restoring a pod's readiness is its agent's
 * business, as it is kubelet's.
 */
import type { KubeObject } from '../api/types.js';
import type { ApiClient } from '../client/index.js';
import type { NodeLifecycleSettings } from './config.js';
import { type Informer, objectKey } from '../client/informer.js';
import {
  type Condition,
  conditionsOf,
  findCondition,
  nodeNameOf,
  withCondition,
} from './object-state.js';
import { timestamp } from '../api/time.js';
import { nodes, pods } from './resources.js';
import { type ReconcileResult, WorkQueue } from './work-queue.js';
import { writeWithRetry } from './writes.js';

export const unreachableTaintKey = 'node.kubernetes.io/unreachable';
export const nodeStatusUnknown = 'NodeStatusUnknown';
export const nodeStatusNeverUpdated = 'NodeStatusNeverUpdated';
export const stoppedPostingMessage = 'The strata agent stopped posting node status.';
export const neverPostedMessage = 'The strata agent never posted node status.';
export const nodeNotReady = 'NodeNotReady';

/** The conditions kubelet posts with its heartbeat; strata's agent posts Ready only. */
const agentConditionTypes = ['Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure'];

interface Taint {
  key?: string;
  value?: string;
  effect?: string;
  timeAdded?: string;
}

function taintsOf(node: KubeObject): Taint[] {
  const taints = node.spec?.taints;
  return Array.isArray(taints) ? (taints as Taint[]) : [];
}

function isUnreachableTaint(taint: Taint): boolean {
  return taint.key === unreachableTaintKey && taint.effect === 'NoSchedule';
}

/** What a renewal changes: the Ready condition's lastHeartbeatTime (undefined without Ready). */
function heartbeatOf(node: KubeObject): string | undefined {
  const ready = findCondition(node, 'Ready');
  if (!ready) return undefined;
  return typeof ready.lastHeartbeatTime === 'string' ? ready.lastHeartbeatTime : '';
}

/** A pod upstream's MarkPodsNotReady would change: it has a Ready condition, not False. */
function readyToMark(pod: KubeObject): boolean {
  const ready = findCondition(pod, 'Ready');
  return ready !== undefined && ready.status !== 'False';
}

/** nodeHealthData: the heartbeat last seen and when (this process's clock). */
interface NodeHealth {
  heartbeat: string | undefined;
  probeMs: number;
}

export class NodeLifecycleController {
  readonly name = 'node-lifecycle';
  readonly queue = new WorkQueue();
  readonly #health = new Map<string, NodeHealth>();
  /** Pod keys by the Node they are bound to. */
  readonly #podsByNode = new Map<string, Set<string>>();
  readonly #nodeOfPod = new Map<string, string>();
  #ticker: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: ApiClient,
    private readonly nodeInformer: Informer,
    private readonly podInformer: Informer,
    private readonly settings: NodeLifecycleSettings,
    private readonly log: (line: string) => void,
  ) {
    nodeInformer.on({
      added: (node) => {
        this.#observe(node);
      },
      updated: (_old, node) => {
        this.#observe(node);
      },
      deleted: (node) => {
        this.#health.delete(node.metadata.name ?? '');
      },
    });
    const podChanged = (pod: KubeObject): void => {
      this.#indexPod(pod);
      const nodeName = nodeNameOf(pod);
      if (nodeName !== '' && readyToMark(pod) && this.#nodeNotReady(nodeName)) {
        this.queue.add(nodeName);
      }
    };
    podInformer.on({
      added: podChanged,
      updated: (_old, pod) => {
        podChanged(pod);
      },
      deleted: (pod) => {
        this.#unindexPod(objectKey(pod));
      },
    });
  }

  /** monitorNodeHealth's loop: every Node is looked at each monitor period. */
  start(): void {
    this.#ticker ??= setInterval(() => {
      for (const node of this.nodeInformer.list()) this.queue.add(node.metadata.name ?? '');
    }, this.settings.monitorPeriodMs);
    this.#ticker.unref();
  }

  stop(): void {
    clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  /** Notes a renewed heartbeat (or a Node first seen) at this process's now. */
  #observe(node: KubeObject): void {
    const name = node.metadata.name ?? '';
    const heartbeat = heartbeatOf(node);
    const known = this.#health.get(name);
    if (!known || known.heartbeat !== heartbeat) {
      this.#health.set(name, { heartbeat, probeMs: Date.now() });
    }
    this.queue.add(name);
  }

  #indexPod(pod: KubeObject): void {
    const key = objectKey(pod);
    const nodeName = nodeNameOf(pod);
    if (this.#nodeOfPod.get(key) === nodeName) return;
    this.#unindexPod(key);
    if (nodeName === '') return;
    this.#nodeOfPod.set(key, nodeName);
    let keys = this.#podsByNode.get(nodeName);
    if (!keys) {
      keys = new Set();
      this.#podsByNode.set(nodeName, keys);
    }
    keys.add(key);
  }

  #unindexPod(key: string): void {
    const nodeName = this.#nodeOfPod.get(key);
    if (nodeName === undefined) return;
    this.#nodeOfPod.delete(key);
    const keys = this.#podsByNode.get(nodeName);
    keys?.delete(key);
    if (keys?.size === 0) this.#podsByNode.delete(nodeName);
  }

  /** The cached Node has a Ready condition that is not True. */
  #nodeNotReady(nodeName: string): boolean {
    const node = this.nodeInformer.get(nodeName);
    const ready = node ? findCondition(node, 'Ready') : undefined;
    return ready !== undefined && ready.status !== 'True';
  }

  async reconcile(name: string): Promise<ReconcileResult | undefined> {
    let node = this.nodeInformer.get(name);
    if (!node) return undefined;
    let health = this.#health.get(name);
    if (!health) {
      health = { heartbeat: heartbeatOf(node), probeMs: Date.now() };
      this.#health.set(name, health);
    }
    if (Date.now() - health.probeMs >= this.settings.gracePeriodMs) {
      node = await this.#markUnknown(node, health.heartbeat);
      if (!node) return undefined;
    }
    const ready = findCondition(node, 'Ready');
    node = await this.#syncTaint(node);
    if (!node) return undefined;
    if (ready !== undefined && ready.status !== 'True') await this.#markPodsNotReady(name);
    return undefined;
  }

  /** tryUpdateNodeHealth: the agent's conditions to Unknown, unless it posted meanwhile. */
  async #markUnknown(
    node: KubeObject,
    heartbeat: string | undefined,
  ): Promise<KubeObject | undefined> {
    const name = node.metadata.name ?? '';
    let marked: string[] = [];
    const written = await writeWithRetry(
      this.client,
      nodes,
      node,
      (current) => {
        marked = [];
        // A heartbeat the cache had not shown yet: the agent is alive.
        if (heartbeatOf(current) !== heartbeat) return undefined;
        const now = timestamp();
        let conditions = conditionsOf(current);
        for (const type of agentConditionTypes) {
          const found = findCondition(current, type);
          if (found?.status === 'Unknown' || (!found && type !== 'Ready')) continue;
          const next: Condition = found
            ? {
                ...found,
                status: 'Unknown',
                reason: nodeStatusUnknown,
                message: stoppedPostingMessage,
              }
            : {
                type,
                status: 'Unknown',
                reason: nodeStatusNeverUpdated,
                message: neverPostedMessage,
              };
          conditions = withCondition(conditions, { ...next, lastTransitionTime: now });
          marked.push(type);
        }
        if (marked.length === 0) return undefined;
        current.status = { ...current.status, conditions };
        return current;
      },
      'status',
    );
    if (written && marked.length > 0) {
      const seconds = this.settings.gracePeriodMs / 1000;
      this.log(
        `${this.name}: Node "${name}" posted no status for ${seconds}s: ${marked.join(', ')} Unknown`,
      );
    }
    return written;
  }

  /** The unreachable NoSchedule taint while Ready is Unknown, and not otherwise. */
  async #syncTaint(node: KubeObject): Promise<KubeObject | undefined> {
    const wanted = (object: KubeObject): boolean =>
      findCondition(object, 'Ready')?.status === 'Unknown';
    const tainted = (object: KubeObject): boolean => taintsOf(object).some(isUnreachableTaint);
    if (wanted(node) === tainted(node)) return node;
    let change: 'added' | 'removed' | undefined;
    const written = await writeWithRetry(this.client, nodes, node, (current) => {
      // Decided again on what was read: the agent may have posted meanwhile.
      change = undefined;
      const add = wanted(current);
      if (add === tainted(current)) return undefined;
      const taints = add
        ? [...taintsOf(current), { key: unreachableTaintKey, effect: 'NoSchedule' }]
        : taintsOf(current).filter((t) => !isUnreachableTaint(t));
      const spec: Record<string, unknown> = { ...current.spec, taints };
      if (taints.length === 0) delete spec.taints;
      current.spec = spec;
      change = add ? 'added' : 'removed';
      return current;
    });
    if (written && change) {
      const why = change === 'added' ? 'its Ready is Unknown' : 'its agent posts status again';
      this.log(
        `${this.name}: Node "${node.metadata.name ?? ''}": ${change} taint ${unreachableTaintKey}:NoSchedule (${why})`,
      );
    }
    return written;
  }

  /** MarkPodsNotReady: Ready=False, reason NodeNotReady, for the Node's pods. */
  async #markPodsNotReady(nodeName: string): Promise<void> {
    const targets = [...(this.#podsByNode.get(nodeName) ?? [])]
      .map((key) => this.podInformer.get(key))
      .filter((p): p is KubeObject => p !== undefined && readyToMark(p));
    if (targets.length === 0) return;
    const markOne = async (pod: KubeObject): Promise<string | undefined> => {
      let changed = false;
      const written = await writeWithRetry(
        this.client,
        pods,
        pod,
        (current) => {
          changed = false;
          const ready = findCondition(current, 'Ready');
          if (nodeNameOf(current) !== nodeName || !ready || ready.status === 'False') {
            return undefined;
          }
          // The Node came back while this ran: its pods are the agent's again.
          if (!this.#nodeNotReady(nodeName)) return undefined;
          current.status = {
            ...current.status,
            conditions: withCondition(conditionsOf(current), {
              ...ready,
              status: 'False',
              reason: nodeNotReady,
              message: `Node "${nodeName}" is not ready`,
              lastTransitionTime: timestamp(),
            }),
          };
          changed = true;
          return current;
        },
        'status',
      );
      return written && changed ? objectKey(written) : undefined;
    };
    const results = await Promise.allSettled(targets.map(markOne));
    const marked = results
      .map((r) => (r.status === 'fulfilled' ? r.value : undefined))
      .filter((key): key is string => key !== undefined)
      .sort();
    if (marked.length > 0) {
      this.log(
        `${this.name}: Node "${nodeName}" is not ready: marked ${marked.length} pod(s) not ready (${marked.join(', ')})`,
      );
    }
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    }
  }
}
