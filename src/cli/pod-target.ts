/**
 * The pod (and container) `strata logs` and `strata exec` act on: read from
 * the API, with kubectl's choice of container when none is named, and the
 * places on this machine the node agent keeps for it (docs/cluster.md).
 */
import { join } from 'node:path';
import { resourceForKind } from '../api/registry.js';
import type { KubeObject } from '../api/types.js';
import { statePaths } from '../cluster/index.js';
import { CommandError } from './args.js';
import type { Connection } from './connect.js';
import type { Output } from './io.js';
import { podNetnsName } from '../agent/netns.js';

export interface ContainerSpec {
  name: string;
  workingDir?: string;
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath?: string } } }[];
}

export interface PodTarget {
  pod: KubeObject;
  name: string;
  namespace: string;
  container: ContainerSpec;
}

const defaultContainerAnnotation = 'kubectl.kubernetes.io/default-container';

function podResource(): NonNullable<ReturnType<typeof resourceForKind>> {
  const resource = resourceForKind('v1', 'Pod');
  if (!resource) throw new Error('the registry has no v1 Pod');
  return resource;
}

/** The pod's phase, `Pending` before it has one. */
export function podPhase(pod: KubeObject): string {
  const phase = pod.status?.phase;
  return typeof phase === 'string' && phase !== '' ? phase : 'Pending';
}

/** A string field of the pod's spec or status, '' when unset. */
export function podField(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** `web` or `pod/web`: the pod's name. */
export function podName(arg: string): string {
  const slash = arg.indexOf('/');
  if (slash < 0) return arg;
  const kind = arg.slice(0, slash);
  if (!['pod', 'pods', 'po'].includes(kind.toLowerCase())) {
    throw new CommandError(`only pods are supported here: got ${JSON.stringify(arg)}`);
  }
  return arg.slice(slash + 1);
}

/** The container named by -c, or kubectl's default (the annotation's, else the first), noted on `err`. */
export function chooseContainer(
  pod: KubeObject,
  requested: string | undefined,
  err: Output,
): ContainerSpec {
  const containers = (pod.spec?.containers ?? []) as ContainerSpec[];
  const names = containers.map((c) => c.name);
  const podName = pod.metadata.name ?? '';
  if (requested !== undefined) {
    const found = containers.find((c) => c.name === requested);
    if (!found) {
      throw new CommandError(
        `container ${requested} is not valid for pod ${podName}: choose one of ${names.join(', ')}`,
      );
    }
    return found;
  }
  const annotated = pod.metadata.annotations?.[defaultContainerAnnotation];
  const chosen = containers.find((c) => c.name === annotated) ?? containers[0];
  if (!chosen) throw new CommandError(`pod ${podName} has no containers`);
  if (containers.length > 1 && annotated === undefined) {
    err.write(`Defaulted container "${chosen.name}" out of: ${names.join(', ')}\n`);
  }
  return chosen;
}

/** Reads the pod and picks its container. */
export async function findPod(
  connection: Connection,
  arg: string,
  namespace: string | undefined,
  container: string | undefined,
  err: Output,
): Promise<PodTarget> {
  const name = podName(arg);
  const ns = namespace ?? 'default';
  const pod = await connection.client.get(podResource(), name, { namespace: ns });
  return { pod, name, namespace: ns, container: chooseContainer(pod, container, err) };
}

/** `<state>/nodes/<node>/pods/<uid>/<container>.log`, where the agent writes a container's output. */
export function containerLogPath(stateDir: string, pod: KubeObject, container: string): string {
  const node = pod.spec?.nodeName;
  if (typeof node !== 'string' || node === '') {
    throw new CommandError(
      `pod ${pod.metadata.name ?? ''} is not on a node yet (phase ${podPhase(pod)}): it has no logs`,
    );
  }
  return join(statePaths(stateDir).nodes, node, 'pods', pod.metadata.uid ?? '', `${container}.log`);
}

/** The pod's network namespace, as the agent names it. */
export function podNetns(cluster: string, pod: KubeObject): string {
  return podNetnsName(cluster, pod.metadata.uid ?? '');
}
