/**
 * The scheduler, kube-scheduler cut to what a strata cluster needs: each pod
 * without `spec.nodeName` (and for the default scheduler) is bound to the
 * feasible node running the fewest non-terminated pods, ties going to the
 * first name. Feasible, as upstream's filter plugins: the node is Ready, its
 * network is not unavailable, it is not cordoned (NodeUnschedulable), it
 * matches `spec.nodeSelector` (NodeAffinity), and the pod tolerates its
 * NoSchedule and NoExecute taints (TaintToleration).
 *
 * Binding goes through the pods/<name>/binding subresource, as
 * kube-scheduler's: the API server sets spec.nodeName (which no pod update
 * may change) and PodScheduled=True in one write, for this pod's uid only,
 * and answers 409 when the pod was bound or marked for deletion meanwhile,
 * which leaves nothing to do. A pod that fits nowhere stays Pending with PodScheduled=False,
 * reason Unschedulable and upstream's "0/N nodes are available" message, and
 * is retried when a node changes. Pods just bound are "assumed" on their
 * node until the cache shows the binding, so back-to-back pods spread.
 */
import type { KubeObject } from '../api/types.js';
import { type ApiClient, isConflict, isNotFound } from '../client/index.js';
import { type Informer, objectKey } from '../client/informer.js';
import {
  findCondition,
  isConditionTrue,
  isPodTerminal,
  isTerminating,
  nodeNameOf,
  setCondition,
} from './object-state.js';
import { pods } from './resources.js';
import { type ReconcileResult, WorkQueue } from './work-queue.js';
import { writeWithRetry } from './writes.js';

export const defaultSchedulerName = 'default-scheduler';

/** How often a pod that fits nowhere is looked at again without any node changing. */
const unschedulableRetryMs = 60_000;

interface Taint {
  key?: string;
  value?: string;
  effect?: string;
}

interface Toleration {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
}

/** A pod the scheduler should place. */
export function needsScheduling(pod: KubeObject): boolean {
  const schedulerName = pod.spec?.schedulerName;
  return (
    nodeNameOf(pod) === '' &&
    !isTerminating(pod) &&
    !isPodTerminal(pod) &&
    (schedulerName === undefined || schedulerName === defaultSchedulerName)
  );
}

/** v1.Toleration.ToleratesTaint. */
function tolerates(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  if (toleration.key && toleration.key !== taint.key) return false;
  switch (toleration.operator ?? 'Equal') {
    case 'Equal':
      return (toleration.value ?? '') === (taint.value ?? '');
    case 'Exists':
      return true;
    default:
      return false;
  }
}

function listOf<T>(value: unknown): T[] {
  return Array.isArray(value) ? (value as T[]) : [];
}

/** Why the pod cannot go to the node (upstream's wording), or undefined when it can. */
export function unfitReason(node: KubeObject, pod: KubeObject): string | undefined {
  if (!isConditionTrue(node, 'Ready')) return 'node(s) were not ready';
  if (isConditionTrue(node, 'NetworkUnavailable')) return 'node(s) had an unavailable network';
  const tolerations = listOf<Toleration>(pod.spec?.tolerations);
  const tolerated = (taint: Taint): boolean => tolerations.some((t) => tolerates(t, taint));
  if (
    node.spec?.unschedulable === true &&
    !tolerated({ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' })
  ) {
    return 'node(s) were unschedulable';
  }
  const selector = pod.spec?.nodeSelector;
  const labels = node.metadata.labels ?? {};
  if (selector && typeof selector === 'object') {
    for (const [key, value] of Object.entries(selector as Record<string, unknown>)) {
      if (labels[key] !== value) return "node(s) didn't match Pod's node affinity/selector";
    }
  }
  for (const taint of listOf<Taint>(node.spec?.taints)) {
    if (taint.effect !== 'NoSchedule' && taint.effect !== 'NoExecute') continue;
    if (!tolerated(taint)) {
      return `node(s) had untolerated taint {${taint.key ?? ''}: ${taint.value ?? ''}}`;
    }
  }
  return undefined;
}

/** FitError's message: `0/3 nodes are available: 1 node(s) were not ready, 2 ...`. */
function unschedulableMessage(total: number, reasons: Map<string, number>): string {
  if (total === 0) return 'no nodes available to schedule pods';
  const parts = [...reasons].map(([reason, count]) => `${count} ${reason}`).sort();
  return `0/${total} nodes are available: ${parts.join(', ')}.`;
}

/** Nodes whose change may let a pending pod fit. */
function schedulingInputsChanged(old: KubeObject, node: KubeObject): boolean {
  const inputs = (n: KubeObject): string =>
    JSON.stringify([
      findCondition(n, 'Ready')?.status,
      findCondition(n, 'NetworkUnavailable')?.status,
      n.spec?.unschedulable,
      n.spec?.taints,
      n.metadata.labels,
    ]);
  return inputs(old) !== inputs(node);
}

export class Scheduler {
  readonly name = 'scheduler';
  readonly queue = new WorkQueue();
  /** Pods bound by this scheduler that the cache does not show bound yet: pod key → node. */
  readonly #assumed = new Map<string, string>();

  constructor(
    private readonly client: ApiClient,
    private readonly podInformer: Informer,
    private readonly nodeInformer: Informer,
    private readonly log: (line: string) => void,
  ) {
    podInformer.on({
      added: (pod) => {
        if (needsScheduling(pod)) this.queue.add(objectKey(pod));
      },
      updated: (_old, pod) => {
        if (nodeNameOf(pod) !== '') this.#assumed.delete(objectKey(pod));
        else if (needsScheduling(pod)) this.queue.add(objectKey(pod));
      },
      deleted: (pod) => {
        this.#assumed.delete(objectKey(pod));
      },
    });
    nodeInformer.on({
      added: () => {
        this.#retryPending();
      },
      updated: (old, node) => {
        if (schedulingInputsChanged(old, node)) this.#retryPending();
      },
    });
  }

  #retryPending(): void {
    for (const pod of this.podInformer.list()) {
      if (needsScheduling(pod)) this.queue.add(objectKey(pod));
    }
  }

  /** Non-terminated pods per node, counting assumed bindings. */
  #podsPerNode(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const pod of this.podInformer.list()) {
      const node = nodeNameOf(pod);
      if (node !== '' && !isPodTerminal(pod)) counts.set(node, (counts.get(node) ?? 0) + 1);
    }
    for (const [key, node] of this.#assumed) {
      const cached = this.podInformer.get(key);
      if (cached && nodeNameOf(cached) === '') counts.set(node, (counts.get(node) ?? 0) + 1);
    }
    return counts;
  }

  async reconcile(key: string): Promise<ReconcileResult | undefined> {
    const pod = this.podInformer.get(key);
    if (!pod || !needsScheduling(pod) || this.#assumed.has(key)) return undefined;
    const candidates = this.nodeInformer.list();
    const reasons = new Map<string, number>();
    const feasible: string[] = [];
    for (const node of candidates) {
      const reason = unfitReason(node, pod);
      if (reason === undefined) feasible.push(node.metadata.name ?? '');
      else reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    if (feasible.length === 0) {
      await this.#markUnschedulable(pod, unschedulableMessage(candidates.length, reasons));
      return { requeueAfterMs: unschedulableRetryMs };
    }
    const load = this.#podsPerNode();
    feasible.sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || a.localeCompare(b));
    const chosen = feasible[0] ?? '';
    this.#assumed.set(key, chosen);
    try {
      await this.client.bind(pod.metadata.name ?? '', chosen, {
        namespace: pod.metadata.namespace,
        uid: pod.metadata.uid,
      });
    } catch (error) {
      this.#assumed.delete(key);
      // Gone, bound or being deleted meanwhile, or another pod under its name now.
      if (isNotFound(error) || isConflict(error)) return undefined;
      throw error;
    }
    this.log(`${this.name}: bound Pod "${key}" to Node "${chosen}"`);
    return undefined;
  }

  async #markUnschedulable(pod: KubeObject, message: string): Promise<void> {
    const condition = {
      type: 'PodScheduled',
      status: 'False',
      reason: 'Unschedulable',
      message,
    } as const;
    const current = findCondition(pod, 'PodScheduled');
    if (current?.reason === condition.reason && current.message === message) return;
    this.log(`${this.name}: Pod "${objectKey(pod)}" is unschedulable: ${message}`);
    await writeWithRetry(
      this.client,
      pods,
      pod,
      (fresh) => (needsScheduling(fresh) ? setCondition(fresh, condition) : undefined),
      'status',
    );
  }
}
