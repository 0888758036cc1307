/**
 * A Deployment's status from its pods, as the deployment controller's
 * calculateStatus and syncRolloutStatus (sync.go, progress.go): replica
 * counts (zero counts left out, as upstream's omitempty), the Available
 * condition (at least replicas - maxUnavailable available) and the
 * Progressing condition (NewReplicaSetAvailable once complete,
 * ReplicaSetUpdated while progress is seen, ProgressDeadlineExceeded when
 * none was for progressDeadlineSeconds). Upstream's reason names are kept
 * so tools that read them (kubectl rollout status) work.
 */
import type { KubeObject } from '../api/types.js';
import { desiredReplicas, isPodAvailable, maxUnavailable } from './deployment-rollout.js';
import { type Condition, conditionsOf, isPodActive, isPodReady } from './object-state.js';
import { timestamp } from '../api/time.js';

export interface DeploymentCounts {
  replicas: number;
  updatedReplicas: number;
  readyReplicas: number;
  availableReplicas: number;
  unavailableReplicas: number;
}

export const newReplicaSetAvailable = 'NewReplicaSetAvailable';
export const replicaSetUpdated = 'ReplicaSetUpdated';
export const progressDeadlineExceeded = 'ProgressDeadlineExceeded';

function countsOf(status: Record<string, unknown> | undefined): DeploymentCounts {
  const n = (field: string): number => {
    const value = status?.[field];
    return typeof value === 'number' ? value : 0;
  };
  return {
    replicas: n('replicas'),
    updatedReplicas: n('updatedReplicas'),
    readyReplicas: n('readyReplicas'),
    availableReplicas: n('availableReplicas'),
    unavailableReplicas: n('unavailableReplicas'),
  };
}

/** The counts of a Deployment's pods (all of them, any template) against the current template hash. */
export function countPods(
  deployment: KubeObject,
  pods: readonly KubeObject[],
  hash: string,
  now: number,
): DeploymentCounts {
  const minReadySeconds = Number(deployment.spec?.minReadySeconds ?? 0) || 0;
  const active = pods.filter(isPodActive);
  const availableReplicas = active.filter((p) => isPodAvailable(p, minReadySeconds, now)).length;
  const total = Math.max(desiredReplicas(deployment), active.length);
  return {
    replicas: active.length,
    updatedReplicas: active.filter((p) => p.metadata.labels?.['pod-template-hash'] === hash).length,
    readyReplicas: active.filter(isPodReady).length,
    availableReplicas,
    unavailableReplicas: Math.max(0, total - availableReplicas),
  };
}

function setDeploymentCondition(conditions: Condition[], next: Condition): Condition[] {
  const current = conditions.find((c) => c.type === next.type);
  // SetDeploymentCondition: the same status and reason is no change at all.
  if (current?.status === next.status && current.reason === next.reason) return conditions;
  const merged = { ...next };
  if (current?.status === next.status && current.lastTransitionTime) {
    merged.lastTransitionTime = current.lastTransitionTime;
  }
  return [...conditions.filter((c) => c.type !== next.type), merged];
}

export interface ComputedStatus {
  status: Record<string, unknown>;
  /** When the progress deadline would pass, so the caller checks again then. */
  recheckAfterMs?: number;
}

/** The status to write, given the counts now and the status the Deployment has. */
export function deploymentStatus(
  deployment: KubeObject,
  counts: DeploymentCounts,
  now: number,
): ComputedStatus {
  const name = deployment.metadata.name ?? '';
  const replicas = desiredReplicas(deployment);
  const previous = countsOf(deployment.status);
  const stamp = timestamp(new Date(now));
  const condition = (type: string, status: 'True' | 'False', reason: string, message: string) => ({
    type,
    status,
    lastUpdateTime: stamp,
    lastTransitionTime: stamp,
    reason,
    message,
  });
  let conditions = conditionsOf(deployment);
  conditions = setDeploymentCondition(
    conditions,
    counts.availableReplicas >= replicas - maxUnavailable(deployment)
      ? condition(
          'Available',
          'True',
          'MinimumReplicasAvailable',
          'Deployment has minimum availability.',
        )
      : condition(
          'Available',
          'False',
          'MinimumReplicasUnavailable',
          'Deployment does not have minimum availability.',
        ),
  );
  const deadlineSeconds = deployment.spec?.progressDeadlineSeconds;
  const generation = deployment.metadata.generation ?? 0;
  let recheckAfterMs: number | undefined;
  if (typeof deadlineSeconds !== 'number') {
    conditions = conditions.filter((c) => c.type !== 'Progressing');
  } else {
    const current = conditions.find((c) => c.type === 'Progressing');
    const complete =
      counts.replicas === counts.updatedReplicas && current?.reason === newReplicaSetAvailable;
    if (!complete) {
      if (
        counts.updatedReplicas === replicas &&
        counts.replicas === replicas &&
        counts.availableReplicas === replicas
      ) {
        conditions = setDeploymentCondition(
          conditions,
          condition(
            'Progressing',
            'True',
            newReplicaSetAvailable,
            `Deployment "${name}" has successfully progressed.`,
          ),
        );
      } else if (
        counts.updatedReplicas > previous.updatedReplicas ||
        counts.replicas - counts.updatedReplicas < previous.replicas - previous.updatedReplicas ||
        counts.readyReplicas > previous.readyReplicas ||
        counts.availableReplicas > previous.availableReplicas ||
        current === undefined
      ) {
        // Progress: lastUpdateTime moves, lastTransitionTime only if it was not True.
        const next = condition(
          'Progressing',
          'True',
          replicaSetUpdated,
          `Deployment "${name}" is progressing.`,
        );
        if (current?.status === 'True' && current.lastTransitionTime) {
          next.lastTransitionTime = current.lastTransitionTime;
        }
        conditions = [...conditions.filter((c) => c.type !== 'Progressing'), next];
        recheckAfterMs = deadlineSeconds * 1000 + 1000;
      } else if (current?.reason !== progressDeadlineExceeded) {
        const since = Date.parse(current.lastUpdateTime ?? current.lastTransitionTime ?? '');
        const due = (Number.isNaN(since) ? now : since) + deadlineSeconds * 1000;
        if (due <= now) {
          conditions = setDeploymentCondition(
            conditions,
            condition(
              'Progressing',
              'False',
              progressDeadlineExceeded,
              `Deployment "${name}" has timed out progressing.`,
            ),
          );
        } else {
          recheckAfterMs = due - now + 1000;
        }
      }
    }
  }
  const status: Record<string, unknown> = { observedGeneration: generation };
  for (const [field, value] of Object.entries(counts)) if (value !== 0) status[field] = value;
  if (conditions.length > 0) status.conditions = conditions;
  return { status, recheckAfterMs };
}
