/**
 * Reading and writing the state controllers share: status conditions
 * (metav1.Condition-shaped, with upstream's rule that lastTransitionTime
 * moves only when status does), pod phases and readiness
 * (k8s.io/kubernetes/pkg/api/v1/pod: IsPodReady, IsPodTerminal), and
 * controller owner references.
 */
import type { KubeObject, OwnerReference } from '../api/types.js';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  /** Deployments' conditions also carry when they were last updated. */
  lastUpdateTime?: string;
  lastProbeTime?: string | null;
  /** Nodes' agent-posted conditions also carry when they were last renewed. */
  lastHeartbeatTime?: string;
}

import { timestamp } from '../api/time.js';

export function conditionsOf(object: KubeObject): Condition[] {
  const conditions = object.status?.conditions;
  return Array.isArray(conditions) ? (conditions as Condition[]) : [];
}

export function findCondition(object: KubeObject, type: string): Condition | undefined {
  return conditionsOf(object).find((c) => c.type === type);
}

/**
 * The conditions with `next` in place of any of its type. An unchanged
 * status keeps its lastTransitionTime; an identical condition (status,
 * reason, message) is kept as it was.
 */
export function withCondition(conditions: readonly Condition[], next: Condition): Condition[] {
  const current = conditions.find((c) => c.type === next.type);
  if (
    current &&
    current.status === next.status &&
    current.reason === next.reason &&
    current.message === next.message
  ) {
    return [...conditions];
  }
  const merged: Condition = { ...next };
  if (current?.status === next.status && current.lastTransitionTime !== undefined) {
    merged.lastTransitionTime = current.lastTransitionTime;
  }
  merged.lastTransitionTime ??= timestamp();
  return current
    ? conditions.map((c) => (c.type === next.type ? merged : c))
    : [...conditions, merged];
}

/**
 * Sets the condition in the object's status (the object is changed in
 * place); undefined when it already has it with that status, reason and
 * message, so there is nothing to write.
 */
export function setCondition(object: KubeObject, condition: Condition): KubeObject | undefined {
  const current = findCondition(object, condition.type);
  if (
    current?.status === condition.status &&
    current.reason === condition.reason &&
    current.message === condition.message
  ) {
    return undefined;
  }
  object.status = { ...object.status, conditions: withCondition(conditionsOf(object), condition) };
  return object;
}

export function isConditionTrue(object: KubeObject, type: string): boolean {
  return findCondition(object, type)?.status === 'True';
}

/** IsPodReady: the Ready condition is True. */
export function isPodReady(pod: KubeObject): boolean {
  return isConditionTrue(pod, 'Ready');
}

export function isTerminating(object: KubeObject): boolean {
  return object.metadata.deletionTimestamp !== undefined;
}

export function podPhase(pod: KubeObject): string {
  const phase = pod.status?.phase;
  return typeof phase === 'string' ? phase : 'Pending';
}

/** Succeeded or Failed: its containers will not run again. */
export function isPodTerminal(pod: KubeObject): boolean {
  const phase = podPhase(pod);
  return phase === 'Succeeded' || phase === 'Failed';
}

/** controller.IsPodActive: not terminal and not being deleted. */
export function isPodActive(pod: KubeObject): boolean {
  return !isTerminating(pod) && !isPodTerminal(pod);
}

export function nodeNameOf(pod: KubeObject): string {
  const name = pod.spec?.nodeName;
  return typeof name === 'string' ? name : '';
}

/** The pod's addresses: status.podIPs, else status.podIP. */
export function podIps(pod: KubeObject): string[] {
  const list = pod.status?.podIPs;
  if (Array.isArray(list) && list.length > 0) {
    return (list as { ip?: unknown }[])
      .map((entry) => entry.ip)
      .filter((ip): ip is string => typeof ip === 'string' && ip !== '');
  }
  const single = pod.status?.podIP;
  return typeof single === 'string' && single !== '' ? [single] : [];
}

/** The owner reference with controller: true (metav1.GetControllerOf). */
export function controllerOf(object: KubeObject): OwnerReference | undefined {
  return object.metadata.ownerReferences?.find((ref) => ref.controller === true);
}

/** A controller owner reference to `owner`, blocking its deletion as upstream's controllers set it. */
export function controllerReference(owner: KubeObject): OwnerReference {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name ?? '',
    uid: owner.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
