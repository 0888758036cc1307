/**
 * A pod's status as kubelet reports it (pkg/kubelet/kubelet_pods.go:
 * generateAPIPodStatus, getPhase; pkg/kubelet/status/generate.go), computed
 * from what the agent knows of the pod's network and containers. Pure: the
 * caller sends it with updateStatus.
 */
import type { KubeObject } from '../api/types.js';
import type { Termination } from './state.js';

/** One container's state, in the shape of Kubernetes' ContainerState. */
export type ContainerState =
  | { kind: 'waiting'; reason: string; message?: string }
  | { kind: 'running'; startedAt: string; containerID: string }
  | ({ kind: 'terminated' } & Termination);

export interface ContainerView {
  name: string;
  image: string;
  state: ContainerState;
  lastTerminated?: Termination;
  restartCount: number;
  ready: boolean;
  /** The startup probe passed (or there is none) and the container runs. */
  started: boolean;
}

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

export interface PodStatusInput {
  restartPolicy: RestartPolicy;
  hostIP: string;
  podIPs: readonly string[];
  startTime: string;
  /** The network is attached (PodReadyToStartContainers). */
  sandboxReady: boolean;
  containers: readonly ContainerView[];
  /** The status last sent: conditions keep their lastTransitionTime while they hold. */
  previous?: Record<string, unknown>;
  now: string;
}

export function restartPolicyOf(pod: KubeObject): RestartPolicy {
  const policy = pod.spec?.restartPolicy;
  return policy === 'OnFailure' || policy === 'Never' ? policy : 'Always';
}

/** getPhase, for pods without init containers. */
export function podPhase(policy: RestartPolicy, containers: readonly ContainerView[]): string {
  let waiting = 0;
  let running = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const c of containers) {
    if (c.state.kind === 'running') running++;
    else if (c.state.kind === 'terminated') {
      stopped++;
      if (c.state.exitCode === 0) succeeded++;
    } else if (c.lastTerminated) stopped++;
    else waiting++;
  }
  if (waiting > 0) return 'Pending';
  if (running > 0) return 'Running';
  if (stopped > 0) {
    // All containers stopped: restarting (Always, or OnFailure after a failure), or done.
    if (policy === 'Always') return 'Running';
    if (stopped === succeeded) return 'Succeeded';
    if (policy === 'Never') return 'Failed';
    return 'Running';
  }
  return 'Pending';
}

function stateObject(state: ContainerState): Record<string, unknown> {
  switch (state.kind) {
    case 'waiting':
      return {
        waiting: { reason: state.reason, ...(state.message ? { message: state.message } : {}) },
      };
    case 'running':
      return { running: { startedAt: state.startedAt } };
    case 'terminated':
      return { terminated: terminationObject(state) };
  }
}

function terminationObject(t: Termination): Record<string, unknown> {
  const out: Record<string, unknown> = { exitCode: t.exitCode };
  if (t.signal !== undefined) out.signal = t.signal;
  out.reason = t.reason;
  if (t.message) out.message = t.message;
  if (t.startedAt) out.startedAt = t.startedAt;
  out.finishedAt = t.finishedAt;
  if (t.containerID) out.containerID = t.containerID;
  return out;
}

function containerIdOf(c: ContainerView): string | undefined {
  if (c.state.kind === 'running') return c.state.containerID;
  if (c.state.kind === 'terminated') return c.state.containerID;
  return c.lastTerminated?.containerID;
}

/** v1 ContainerStatus. */
export function containerStatus(c: ContainerView): Record<string, unknown> {
  const status: Record<string, unknown> = {
    name: c.name,
    state: stateObject(c.state),
    lastState: c.lastTerminated ? { terminated: terminationObject(c.lastTerminated) } : {},
    ready: c.ready,
    restartCount: c.restartCount,
    image: c.image,
    imageID: '',
    started: c.started,
  };
  const id = containerIdOf(c);
  if (id) status.containerID = id;
  return status;
}

interface Condition {
  type: string;
  status: 'True' | 'False';
  reason?: string;
  message?: string;
}

function previousConditions(
  previous: Record<string, unknown> | undefined,
): Map<string, Record<string, unknown>> {
  const list = Array.isArray(previous?.conditions) ? previous.conditions : [];
  const out = new Map<string, Record<string, unknown>>();
  for (const item of list as Record<string, unknown>[]) {
    if (typeof item.type === 'string') out.set(item.type, item);
  }
  return out;
}

/** v1 PodStatus. */
export function compilePodStatus(input: PodStatusInput): Record<string, unknown> {
  const phase = podPhase(input.restartPolicy, input.containers);
  const terminal = phase === 'Succeeded' || phase === 'Failed';
  const notReady = input.containers.filter((c) => !c.ready).map((c) => c.name);
  const containersReady: Condition =
    notReady.length === 0 && input.containers.length > 0
      ? { type: 'ContainersReady', status: 'True' }
      : {
          type: 'ContainersReady',
          status: 'False',
          reason: terminal ? 'PodCompleted' : 'ContainersNotReady',
          ...(terminal
            ? {}
            : { message: `containers with unready status: [${notReady.join(' ')}]` }),
        };
  const conditions: Condition[] = [
    {
      type: 'PodReadyToStartContainers',
      status: input.sandboxReady && !terminal ? 'True' : 'False',
    },
    { type: 'Initialized', status: 'True' },
    { ...containersReady, type: 'Ready' },
    containersReady,
    { type: 'PodScheduled', status: 'True' },
  ];
  const before = previousConditions(input.previous);
  const status: Record<string, unknown> = {
    phase,
    conditions: conditions.map((c) => {
      const old = before.get(c.type);
      const since =
        old?.status === c.status && typeof old.lastTransitionTime === 'string'
          ? old.lastTransitionTime
          : input.now;
      return { ...c, lastProbeTime: null, lastTransitionTime: since };
    }),
    hostIP: input.hostIP,
    hostIPs: [{ ip: input.hostIP }],
    startTime: input.startTime,
    containerStatuses: input.containers.map(containerStatus),
  };
  if (input.podIPs.length > 0) {
    status.podIP = input.podIPs[0];
    status.podIPs = input.podIPs.map((ip) => ({ ip }));
  }
  return status;
}
