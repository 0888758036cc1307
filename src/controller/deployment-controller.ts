/**
 * Deployments → Pods. strata has no ReplicaSet kind, so this is upstream's
 * deployment and replicaset controllers in one: a Deployment owns its pods
 * directly (a controller ownerReference), each named
 * `<deployment>-<pod-template-hash>-<5 random>` and labelled with the
 * template's labels plus `pod-template-hash`. Each sync takes one step of
 * the rollout (deployment-rollout.ts) and writes the status
 * (deployment-status.ts).
 *
 * Like the replicaset controller it keeps "expectations": after creating or
 * deleting pods it does not act on that Deployment again until the cache
 * has seen those changes (or 5 minutes pass), so a lagging cache never
 * makes it create or delete twice. It also does the garbage collector's
 * part for pods: a pod whose controlling Deployment is gone (checked with a
 * live read, not the cache) is deleted.
 */
import type { KubeObject } from '../api/types.js';
import { type ApiClient, isNotFound } from '../client/index.js';
import {
  desiredReplicas,
  isPodAvailable,
  planRollout,
  readySince,
  resolveStrategy,
} from './deployment-rollout.js';
import { countPods, deploymentStatus } from './deployment-status.js';
import { type Informer, objectKey, splitKey } from '../client/informer.js';
import { canonicalJson, objectHash } from './object-hash.js';
import {
  controllerOf,
  controllerReference,
  isPodActive,
  isPodReady,
  isPodTerminal,
  isTerminating,
  messageOf,
} from './object-state.js';
import { deployments, pods } from './resources.js';
import { type ReconcileResult, WorkQueue } from './work-queue.js';
import { deleteIfPresent, writeWithRetry } from './writes.js';

export const podTemplateHashLabel = 'pod-template-hash';

/** controller.ExpectationsTimeout. */
const expectationsTimeoutMs = 5 * 60_000;

interface Expectations {
  adds: Set<string>;
  deletes: Set<string>;
  since: number;
}

/** The key of the Deployment controlling the pod, if one does. */
function owningDeployment(pod: KubeObject): string | undefined {
  const ref = controllerOf(pod);
  if (ref?.kind !== 'Deployment' || ref.apiVersion !== 'apps/v1') return undefined;
  return `${pod.metadata.namespace ?? ''}/${ref.name}`;
}

/** The template's pod-template-hash (controller.ComputeHash, without collisionCount). */
export function podTemplateHash(deployment: KubeObject): string {
  return objectHash(deployment.spec?.template ?? {});
}

export class DeploymentController {
  readonly name = 'deployment';
  readonly queue = new WorkQueue();
  readonly #expectations = new Map<string, Expectations>();

  constructor(
    private readonly client: ApiClient,
    private readonly deploymentInformer: Informer,
    private readonly podInformer: Informer,
    private readonly log: (line: string) => void,
  ) {
    deploymentInformer.on({
      added: (deployment) => {
        this.queue.add(objectKey(deployment));
      },
      updated: (_old, deployment) => {
        this.queue.add(objectKey(deployment));
      },
      deleted: (deployment) => {
        this.#expectations.delete(objectKey(deployment));
        this.queue.add(objectKey(deployment));
      },
    });
    podInformer.on({
      added: (pod) => {
        this.#observe(pod, 'adds');
        if (isTerminating(pod)) this.#observe(pod, 'deletes');
      },
      updated: (old, pod) => {
        if (isTerminating(pod) && !isTerminating(old)) this.#observe(pod, 'deletes');
        else this.#observe(pod, undefined);
        const oldOwner = owningDeployment(old);
        if (oldOwner !== undefined && oldOwner !== owningDeployment(pod)) this.queue.add(oldOwner);
      },
      deleted: (pod) => {
        this.#observe(pod, 'deletes');
      },
    });
  }

  /** Notes a pod change its Deployment was waiting for, and queues the Deployment. */
  #observe(pod: KubeObject, what: 'adds' | 'deletes' | undefined): void {
    const owner = owningDeployment(pod);
    if (owner === undefined) return;
    if (what) this.#expectations.get(owner)?.[what].delete(pod.metadata.name ?? '');
    this.queue.add(owner);
  }

  #expect(key: string, what: 'adds' | 'deletes', podName: string): void {
    let expectations = this.#expectations.get(key);
    if (!expectations) {
      expectations = { adds: new Set(), deletes: new Set(), since: Date.now() };
      this.#expectations.set(key, expectations);
    }
    if (expectations.adds.size === 0 && expectations.deletes.size === 0) {
      expectations.since = Date.now();
    }
    expectations[what].add(podName);
  }

  /** Milliseconds until the expectations expire, or 0 when they are met. */
  #pendingFor(key: string): number {
    const expectations = this.#expectations.get(key);
    if (!expectations || (expectations.adds.size === 0 && expectations.deletes.size === 0))
      return 0;
    const left = expectations.since + expectationsTimeoutMs - Date.now();
    if (left > 0) return left;
    this.#expectations.delete(key);
    return 0;
  }

  async reconcile(key: string): Promise<ReconcileResult | undefined> {
    const { namespace = '', name } = splitKey(key);
    const deployment = this.deploymentInformer.get(key);
    const controlled = this.podInformer
      .list(namespace)
      .filter((pod) => owningDeployment(pod) === key);
    const uid = deployment?.metadata.uid;
    const foreign = controlled.filter(
      (pod) => controllerOf(pod)?.uid !== uid && !isTerminating(pod),
    );
    if (foreign.length > 0) await this.#collectGarbage(namespace, name, foreign);
    if (!deployment || isTerminating(deployment)) return undefined;
    const pending = this.#pendingFor(key);
    if (pending > 0) return { requeueAfterMs: pending };

    const ours = controlled.filter((pod) => controllerOf(pod)?.uid === uid);
    const hash = podTemplateHash(deployment);
    const now = Date.now();
    const minReadySeconds = Number(deployment.spec?.minReadySeconds ?? 0) || 0;
    const available = (pod: KubeObject): boolean => isPodAvailable(pod, minReadySeconds, now);
    const active = ours.filter(isPodActive);
    const isNew = (pod: KubeObject): boolean =>
      pod.metadata.labels?.[podTemplateHashLabel] === hash;
    const step = planRollout({
      replicas: desiredReplicas(deployment),
      strategy: resolveStrategy(deployment),
      newPods: active.filter(isNew),
      oldPods: active.filter((pod) => !isNew(pod)),
      oldPodsRunning: ours.some((pod) => !isNew(pod) && !isPodTerminal(pod)),
      available,
    });
    if (step.create > 0) await this.#createPods(deployment, hash, step.create);
    else if (step.delete.length > 0) await this.#deletePods(key, step.delete);

    const computed = deploymentStatus(deployment, countPods(deployment, ours, hash, now), now);
    if (canonicalJson(computed.status) !== canonicalJson(deployment.status ?? {})) {
      await writeWithRetry(
        this.client,
        deployments,
        deployment,
        (current) => {
          current.status = computed.status;
          return current;
        },
        'status',
      );
    }
    // A pod Ready but not yet for minReadySeconds becomes available later.
    const becomesAvailable = active
      .filter((pod) => isPodReady(pod) && !available(pod))
      .map((pod) => readySince(pod) + minReadySeconds * 1000 - now + 100);
    const recheck = [...becomesAvailable, computed.recheckAfterMs ?? Infinity];
    const soonest = Math.min(...recheck);
    return Number.isFinite(soonest) ? { requeueAfterMs: Math.max(soonest, 0) } : undefined;
  }

  /** Creates pods in slow-start batches (1, 2, 4, ...) as upstream, stopping at the first failure. */
  async #createPods(deployment: KubeObject, hash: string, count: number): Promise<void> {
    const key = objectKey(deployment);
    const template = (deployment.spec?.template ?? {}) as {
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec?: Record<string, unknown>;
    };
    const name = deployment.metadata.name ?? '';
    const namespace = deployment.metadata.namespace;
    const pod = (): KubeObject => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: `${name}-${hash}-`,
        namespace,
        labels: { ...template.metadata?.labels, [podTemplateHashLabel]: hash },
        ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
        ownerReferences: [controllerReference(deployment)],
      },
      spec: structuredClone(template.spec ?? {}),
    });
    let remaining = count;
    for (let batch = 1; remaining > 0; batch *= 2) {
      const size = Math.min(batch, remaining);
      remaining -= size;
      const results = await Promise.allSettled(
        Array.from({ length: size }, async () => {
          const created = await this.client.create(pod());
          const podName = created.metadata.name ?? '';
          // The watch may have shown it already; only expect what it has not.
          if (!this.podInformer.get(objectKey(created))) this.#expect(key, 'adds', podName);
          return podName;
        }),
      );
      const failure = results.find((r) => r.status === 'rejected');
      const made = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      if (made.length > 0) this.log(`${this.name}: Deployment "${key}" created ${made.join(', ')}`);
      if (failure) throw failure.reason as Error;
    }
  }

  async #deletePods(key: string, victims: readonly KubeObject[]): Promise<void> {
    const results = await Promise.allSettled(
      victims.map(async (pod) => {
        await deleteIfPresent(this.client, pods, pod);
        const cached = this.podInformer.get(objectKey(pod));
        if (cached && !isTerminating(cached)) this.#expect(key, 'deletes', pod.metadata.name ?? '');
        return pod.metadata.name ?? '';
      }),
    );
    const deleted = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (deleted.length > 0)
      this.log(`${this.name}: Deployment "${key}" deleted ${deleted.join(', ')}`);
    const failure = results.find((r) => r.status === 'rejected');
    if (failure) throw failure.reason as Error;
  }

  /**
   * The garbage collector's work for pods: delete those whose controlling
   * Deployment no longer exists (a live read decides, not the cache).
   */
  async #collectGarbage(namespace: string, name: string, candidates: KubeObject[]): Promise<void> {
    let liveUid: string | undefined;
    try {
      const live = await this.client.get(deployments, name, { namespace });
      liveUid = live.metadata.uid;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const orphans = candidates.filter((pod) => controllerOf(pod)?.uid !== liveUid);
    for (const pod of orphans) {
      try {
        await deleteIfPresent(this.client, pods, pod);
        this.log(
          `${this.name}: deleted Pod "${objectKey(pod)}": its Deployment "${namespace}/${name}" is gone`,
        );
      } catch (error) {
        throw new Error(`Cannot delete orphaned Pod "${objectKey(pod)}": ${messageOf(error)}`, {
          cause: error,
        });
      }
    }
  }
}
