/**
 * What a Deployment's next step is, as a pure function of its pods: the
 * deployment controller's rolling.go and recreate.go with the ReplicaSet
 * layer folded away (strata's Deployments own their pods directly; a pod's
 * `pod-template-hash` label says which template it runs). One step per
 * sync, as upstream: scale up, or scale down, then wait for the cache to
 * show it.
 */
import type { KubeObject } from '../api/types.js';
import { findCondition, isPodReady, isTerminating, nodeNameOf, podPhase } from './object-state.js';

export type Strategy =
  { type: 'Recreate' } | { type: 'RollingUpdate'; maxSurge: number; maxUnavailable: number };

/** intstr.GetScaledValueFromIntOrPercent: a percentage of `total`, rounded up or down. */
export function scaledValue(value: unknown, total: number, roundUp: boolean): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^[0-9]+%$/.test(value)) {
    const scaled = (Number(value.slice(0, -1)) * total) / 100;
    return roundUp ? Math.ceil(scaled) : Math.floor(scaled);
  }
  return 0;
}

export function desiredReplicas(deployment: KubeObject): number {
  const replicas = deployment.spec?.replicas;
  return typeof replicas === 'number' ? replicas : 1;
}

/**
 * The strategy with maxSurge and maxUnavailable resolved against the
 * replica count (ResolveFenceposts: surge rounds up, unavailability down,
 * and both 0 means 1 unavailable).
 */
export function resolveStrategy(deployment: KubeObject): Strategy {
  const strategy = (deployment.spec?.strategy ?? {}) as {
    type?: string;
    rollingUpdate?: { maxSurge?: unknown; maxUnavailable?: unknown };
  };
  if (strategy.type === 'Recreate') return { type: 'Recreate' };
  const replicas = desiredReplicas(deployment);
  const maxSurge = scaledValue(strategy.rollingUpdate?.maxSurge ?? '25%', replicas, true);
  let maxUnavailable = scaledValue(
    strategy.rollingUpdate?.maxUnavailable ?? '25%',
    replicas,
    false,
  );
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  return { type: 'RollingUpdate', maxSurge, maxUnavailable };
}

/** deploymentutil.MaxUnavailable: how many pods may be unavailable and the Deployment still Available. */
export function maxUnavailable(deployment: KubeObject): number {
  const strategy = resolveStrategy(deployment);
  const replicas = desiredReplicas(deployment);
  if (strategy.type !== 'RollingUpdate' || replicas === 0) return 0;
  return Math.min(strategy.maxUnavailable, replicas);
}

/** When the pod turned Ready, in ms since the epoch (0 when unknown). */
export function readySince(pod: KubeObject): number {
  const time = findCondition(pod, 'Ready')?.lastTransitionTime;
  const parsed = time === undefined ? Number.NaN : Date.parse(time);
  return Number.isNaN(parsed) ? 0 : parsed;
}

/** podutil.IsPodAvailable: Ready for at least minReadySeconds. */
export function isPodAvailable(pod: KubeObject, minReadySeconds: number, now: number): boolean {
  if (!isPodReady(pod) || isTerminating(pod)) return false;
  return minReadySeconds === 0 || readySince(pod) + minReadySeconds * 1000 <= now;
}

const phaseOrdinal: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

function restarts(pod: KubeObject): number {
  const statuses = pod.status?.containerStatuses;
  if (!Array.isArray(statuses)) return 0;
  return Math.max(
    0,
    ...statuses.map((s: { restartCount?: unknown }) => Number(s.restartCount) || 0),
  );
}

function deletionCost(pod: KubeObject): number {
  const cost = Number(pod.metadata.annotations?.['controller.kubernetes.io/pod-deletion-cost']);
  return Number.isFinite(cost) ? cost : 0;
}

function created(pod: KubeObject): number {
  const time = pod.metadata.creationTimestamp;
  return time === undefined ? 0 : Date.parse(time) || 0;
}

/**
 * The `count` pods to delete first, by ActivePodsWithRanks: unscheduled,
 * then pending before running, not ready before ready, lower deletion cost,
 * doubled up on a node with more of `related`, ready for less time, more
 * restarts, and newer first.
 */
export function podsToDelete(
  pods: readonly KubeObject[],
  count: number,
  related: readonly KubeObject[],
): KubeObject[] {
  if (count <= 0) return [];
  const perNode = new Map<string, number>();
  for (const pod of related) {
    const node = nodeNameOf(pod);
    if (node !== '') perNode.set(node, (perNode.get(node) ?? 0) + 1);
  }
  const rank = (pod: KubeObject): number => perNode.get(nodeNameOf(pod)) ?? 0;
  const sorted = [...pods].sort((a, b) => {
    const assignedA = nodeNameOf(a) !== '';
    const assignedB = nodeNameOf(b) !== '';
    if (assignedA !== assignedB) return assignedA ? 1 : -1;
    const phase = (phaseOrdinal[podPhase(a)] ?? 0) - (phaseOrdinal[podPhase(b)] ?? 0);
    if (phase !== 0) return phase;
    if (isPodReady(a) !== isPodReady(b)) return isPodReady(a) ? 1 : -1;
    const cost = deletionCost(a) - deletionCost(b);
    if (cost !== 0) return cost;
    if (rank(a) !== rank(b)) return rank(b) - rank(a);
    if (isPodReady(a) && readySince(a) !== readySince(b)) return readySince(b) - readySince(a);
    if (restarts(a) !== restarts(b)) return restarts(b) - restarts(a);
    return created(b) - created(a);
  });
  return sorted.slice(0, count);
}

export interface RolloutInput {
  replicas: number;
  strategy: Strategy;
  /** Active pods (not terminating, not terminal) of the current template. */
  newPods: readonly KubeObject[];
  /** Active pods of earlier templates. */
  oldPods: readonly KubeObject[];
  /** Whether any pod of an earlier template still runs, terminating ones included (Recreate waits). */
  oldPodsRunning: boolean;
  available(pod: KubeObject): boolean;
}

export interface RolloutStep {
  create: number;
  delete: KubeObject[];
}

const nothing: RolloutStep = { create: 0, delete: [] };

/** The next step towards `replicas` pods of the current template. */
export function planRollout(input: RolloutInput): RolloutStep {
  const { replicas, newPods, oldPods } = input;
  const all = [...newPods, ...oldPods];
  if (newPods.length > replicas) {
    return { create: 0, delete: podsToDelete(newPods, newPods.length - replicas, all) };
  }
  if (input.strategy.type === 'Recreate') {
    // recreate.go: every old pod goes, and only once none runs do new ones start.
    if (oldPods.length > 0) return { create: 0, delete: [...oldPods] };
    if (input.oldPodsRunning) return nothing;
    return { create: replicas - newPods.length, delete: [] };
  }
  const { maxSurge, maxUnavailable } = input.strategy;
  // reconcileNewReplicaSet / NewRSNewReplicas: at most replicas + maxSurge pods in all.
  if (newPods.length < replicas) {
    const scaleUp = Math.min(replicas + maxSurge - all.length, replicas - newPods.length);
    if (scaleUp > 0) return { create: scaleUp, delete: [] };
  }
  if (oldPods.length === 0) return nothing;
  // reconcileOldReplicaSets: keep at least replicas - maxUnavailable available.
  const minAvailable = replicas - maxUnavailable;
  const newUnavailable = newPods.filter((p) => !input.available(p)).length;
  const maxScaledDown = all.length - minAvailable - newUnavailable;
  if (maxScaledDown <= 0) return nothing;
  // cleanupUnhealthyReplicas: old pods that are not available go first, they cost nothing.
  const unhealthy = oldPods.filter((p) => !input.available(p));
  const cleanup = podsToDelete(unhealthy, Math.min(maxScaledDown, unhealthy.length), all);
  // scaleDownOldReplicaSetsForRollingUpdate: then healthy ones, down to minAvailable.
  const availableCount = all.filter((p) => input.available(p)).length;
  const healthy = oldPods.filter((p) => input.available(p));
  const scaleDown = Math.min(availableCount - minAvailable, healthy.length);
  return { create: 0, delete: [...cleanup, ...podsToDelete(healthy, scaleDown, all)] };
}
