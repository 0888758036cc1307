/**
 * Services → EndpointSlices: keeps each Service's slices (endpoint-slices.ts
 * says which) in the API, as upstream's EndpointSlice controller. A Service
 * is synced when it changes, when a pod it selects (before or after a change)
 * changes in a way its endpoints show, and when one of its slices changes
 * under it. New and changed slices are written before stale ones are
 * deleted, so a Service never loses all its endpoints in between. Only
 * slices labelled as managed by this controller are touched; a Service that
 * is deleted or loses its selector loses them.
 */
import type { KubeObject } from '../api/types.js';
import { type ApiClient, isAlreadyExists } from '../client/index.js';
import {
  desiredSlices,
  managedBy,
  managedByLabel,
  selectsPod,
  serviceNameLabel,
} from './endpoint-slices.js';
import { type Informer, objectKey, splitKey } from '../client/informer.js';
import { canonicalJson } from './object-hash.js';
import { findCondition, nodeNameOf, podIps } from './object-state.js';
import { endpointSlices } from './resources.js';
import { type ReconcileResult, WorkQueue } from './work-queue.js';
import { deleteIfPresent, writeWithRetry } from './writes.js';

/** What of a pod its endpoints show: a change elsewhere needs no sync. */
function endpointInputs(pod: KubeObject): string {
  return canonicalJson([
    pod.metadata.labels,
    pod.metadata.deletionTimestamp,
    podIps(pod),
    pod.status?.phase,
    findCondition(pod, 'Ready')?.status,
    nodeNameOf(pod),
    pod.spec?.hostname,
    pod.spec?.subdomain,
    pod.spec?.containers,
  ]);
}

/** The parts of a slice this controller decides. */
function sliceContent(slice: KubeObject): string {
  return canonicalJson([
    slice.metadata.labels,
    slice.metadata.ownerReferences,
    slice.addressType,
    slice.endpoints ?? [],
    slice.ports ?? [],
  ]);
}

function isManaged(slice: KubeObject): boolean {
  return slice.metadata.labels?.[managedByLabel] === managedBy;
}

export class EndpointSliceController {
  readonly name = 'endpointslice';
  readonly queue = new WorkQueue();

  constructor(
    private readonly client: ApiClient,
    private readonly serviceInformer: Informer,
    private readonly podInformer: Informer,
    private readonly sliceInformer: Informer,
    private readonly log: (line: string) => void,
  ) {
    const queueService = (service: KubeObject): void => {
      this.queue.add(objectKey(service));
    };
    serviceInformer.on({
      added: queueService,
      updated: (_old, service) => {
        queueService(service);
      },
      deleted: queueService,
    });
    podInformer.on({
      added: (pod) => {
        this.#queueServicesOf(pod);
      },
      updated: (old, pod) => {
        if (endpointInputs(old) === endpointInputs(pod)) return;
        this.#queueServicesOf(old);
        this.#queueServicesOf(pod);
      },
      deleted: (pod) => {
        this.#queueServicesOf(pod);
      },
    });
    const queueOwner = (slice: KubeObject): void => {
      const service = slice.metadata.labels?.[serviceNameLabel];
      if (isManaged(slice) && service) {
        this.queue.add(`${slice.metadata.namespace ?? ''}/${service}`);
      }
    };
    sliceInformer.on({
      added: queueOwner,
      updated: (_old, slice) => {
        queueOwner(slice);
      },
      deleted: queueOwner,
    });
  }

  #queueServicesOf(pod: KubeObject): void {
    for (const service of this.serviceInformer.list(pod.metadata.namespace ?? '')) {
      if (selectsPod(service, pod)) this.queue.add(objectKey(service));
    }
  }

  async reconcile(key: string): Promise<ReconcileResult | undefined> {
    const { namespace = '', name } = splitKey(key);
    const service = this.serviceInformer.get(key);
    const existing = this.sliceInformer
      .list(namespace)
      .filter((s) => isManaged(s) && s.metadata.labels?.[serviceNameLabel] === name);
    const desired = service ? desiredSlices(service, this.podInformer.list(namespace)) : [];
    const byName = new Map(existing.map((s) => [s.metadata.name ?? '', s]));
    for (const want of desired) {
      const have = byName.get(want.metadata.name ?? '');
      if (have && sliceContent(have) === sliceContent(want)) continue;
      await this.#write(want, have);
    }
    const wanted = new Set(desired.map((s) => s.metadata.name ?? ''));
    for (const stale of existing) {
      if (wanted.has(stale.metadata.name ?? '')) continue;
      await deleteIfPresent(this.client, endpointSlices, stale);
      this.log(
        `${this.name}: Service "${key}": deleted EndpointSlice "${stale.metadata.name ?? ''}"`,
      );
    }
    return undefined;
  }

  /** Creates the slice, or updates the one there (from a fresh read when the cache is behind). */
  async #write(want: KubeObject, have: KubeObject | undefined): Promise<void> {
    const sliceName = want.metadata.name ?? '';
    let current = have;
    if (!current) {
      try {
        await this.client.create(want);
        this.log(`${this.name}: created EndpointSlice "${objectKey(want)}"`);
        return;
      } catch (error) {
        if (!isAlreadyExists(error)) throw error;
      }
      current = await this.client.get(endpointSlices, sliceName, {
        namespace: want.metadata.namespace,
      });
      const owner = current.metadata.labels?.[serviceNameLabel];
      if (!isManaged(current) || owner !== want.metadata.labels?.[serviceNameLabel]) {
        throw new Error(
          `EndpointSlice "${objectKey(want)}" exists and belongs to ${isManaged(current) ? `Service "${owner ?? ''}"` : `another manager than ${managedBy}`}: not overwriting it`,
        );
      }
    }
    await writeWithRetry(this.client, endpointSlices, current, (fresh) => {
      if (sliceContent(fresh) === sliceContent(want)) return undefined;
      return {
        ...want,
        metadata: {
          ...fresh.metadata,
          labels: want.metadata.labels,
          ownerReferences: want.metadata.ownerReferences,
        },
      };
    });
  }
}
