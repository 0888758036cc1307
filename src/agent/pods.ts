/**
 * The pods bound to this node: listed and watched with the field selector
 * `spec.nodeName=<node>` (kubelet's own pod source), one PodWorker each.
 *
 * On start the agent reconciles from its state directory before it runs
 * anything: pods whose records name a uid the API no longer has are torn
 * down (their processes killed by identity, CNI DEL, namespace removed),
 * CNI GC releases every attachment of a pod the API does not list, and
 * the remaining records are handed to their workers, which adopt the
 * processes that still run. Housekeeping lists the pods now and then and
 * removes any the watch did not report gone (kubelet's HandlePodCleanups).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeObject } from '../api/types.js';
import { messageChain } from '../cni/errors.js';
import type { ApiClient, ResourceWatch, WatchEvent } from '../client/index.js';
import { podNetnsName } from './netns.js';
import type { AgentSettings } from './options.js';
import {
  type PodPolicyHooks,
  PodWorker,
  type PodWorkerContext,
  podResource,
} from './pod-worker.js';
import { isRunning, signalContainer } from './processes.js';
import type { PodNetwork } from './sandbox.js';
import type { PodRecord, PodStateStore } from './state.js';

export interface PodManagerOptions {
  settings: AgentSettings;
  client: ApiClient;
  network: PodNetwork;
  store: PodStateStore;
  /** `ip`'s absolute path (PodWorkerContext.ip). */
  ip: string;
  policy?: PodPolicyHooks & { forget(uid: string): void };
}

export class PodManager {
  readonly #workers = new Map<string, PodWorker>();
  readonly #abort = new AbortController();
  readonly #ctx: PodWorkerContext;
  #housekeeping: NodeJS.Timeout | undefined;
  #watching: Promise<void> | undefined;

  constructor(private readonly options: PodManagerOptions) {
    this.#ctx = {
      settings: options.settings,
      client: options.client,
      network: options.network,
      store: options.store,
      ip: options.ip,
      ...(options.policy ? { policy: options.policy } : {}),
      onFinished: (uid) => {
        this.#workers.delete(uid);
        options.policy?.forget(uid);
      },
    };
  }

  #log(line: string): void {
    this.options.settings.log(line);
  }

  #listPods(): Promise<{ items: KubeObject[]; resourceVersion: string }> {
    return this.options.client
      .list(podResource, { fieldSelector: { 'spec.nodeName': this.options.settings.nodeName } })
      .then((list) => ({ items: list.items, resourceVersion: list.metadata.resourceVersion }));
  }

  /** Reconciles from the state directory, then watches. */
  async start(): Promise<void> {
    const { items, resourceVersion } = await this.#listPods();
    const listed = new Map(items.map((pod) => [pod.metadata.uid ?? '', pod]));
    const records = this.options.store.readAll();
    const { cluster } = this.options.settings;
    const inUse = new Set([...listed.keys()].map((uid) => podNetnsName(cluster, uid)));
    await Promise.all(
      records
        .filter(({ uid }) => !listed.has(uid))
        .map(({ uid, record }) => this.#tearDownOrphan(uid, record, inUse)),
    );
    await this.options.network.collectGarbage([...listed.keys()], (line) => {
      this.#log(line);
    });
    const recordOf = new Map(records.map(({ uid, record }) => [uid, record]));
    for (const pod of items) this.#handle({ type: 'ADDED', object: pod }, recordOf);
    this.#watching = this.#watch(resourceVersion);
    this.#housekeeping = setInterval(() => {
      void this.#cleanUp();
    }, this.options.settings.housekeepingIntervalMs);
  }

  /**
   * A pod of an earlier agent that the API no longer has: its processes,
   * attachment and namespace go. Without a readable record (a torn or
   * corrupt pod.json) the namespace is the one its uid names, unless a
   * listed pod's uid names the same one; CNI DEL finds the attachment by
   * the uid alone.
   */
  async #tearDownOrphan(
    uid: string,
    record: PodRecord | undefined,
    inUse: ReadonlySet<string>,
  ): Promise<void> {
    this.#log(
      `pod ${uid} is no longer bound to this node: removing what is left of it${record ? '' : ' (its record is unreadable)'}`,
    );
    try {
      for (const container of Object.values(record?.containers ?? {})) {
        const id = container.process;
        if (id && isRunning(id)) signalContainer(id, 'SIGKILL');
      }
      const netns = record?.netns ?? podNetnsName(this.options.settings.cluster, uid);
      if (record || !inUse.has(netns)) {
        const namespaces = this.options.network.namespaces;
        for (const pid of await namespaces.pids(netns)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Gone already.
          }
        }
        await this.options.network.tearDown(
          { uid, namespace: record?.namespace ?? '', name: record?.name ?? '' },
          netns,
        );
      }
      this.options.store.remove(uid);
    } catch (error) {
      this.#log(`cannot remove pod ${uid} (CNI GC will retry): ${messageChain(error)}`);
    }
  }

  async #watch(resourceVersion: string): Promise<void> {
    const signal = this.#abort.signal;
    let from: string | undefined = resourceVersion;
    while (!signal.aborted) {
      const watch: ResourceWatch = this.options.client.watch(podResource, {
        fieldSelector: { 'spec.nodeName': this.options.settings.nodeName },
        resourceVersion: from,
        signal,
      });
      try {
        for await (const event of watch) this.#handle(event);
      } catch (error) {
        if (signal.aborted) return;
        this.#log(`pod watch failed (restarting it): ${messageChain(error)}`);
      }
      from = watch.resourceVersion;
      try {
        await sleep(1000, undefined, { signal });
      } catch {
        return;
      }
    }
  }

  #handle(event: WatchEvent, records?: Map<string, PodRecord | undefined>): void {
    const pod = event.object;
    const uid = pod.metadata.uid;
    if (!uid) return;
    const worker = this.#workers.get(uid);
    if (event.type === 'DELETED') {
      worker?.removed(pod);
      return;
    }
    if (event.type !== 'ADDED' && event.type !== 'MODIFIED') return;
    if (worker) {
      worker.update(pod);
      return;
    }
    const record = records ? records.get(uid) : this.options.store.read(uid);
    // A directory without a readable record: whatever an earlier agent ran there is a stray.
    const leftovers = records?.has(uid) === true && record === undefined;
    const created = new PodWorker(pod, record, this.#ctx, leftovers);
    this.#workers.set(uid, created);
    created.schedule();
  }

  /** Pods the agent runs that a fresh list no longer has: deleted while the watch was away. */
  async #cleanUp(): Promise<void> {
    const listedAt = Date.now();
    let items: KubeObject[];
    try {
      ({ items } = await this.#listPods());
    } catch (error) {
      this.#log(`housekeeping cannot list pods: ${messageChain(error)}`);
      return;
    }
    const listed = new Set(items.map((pod) => pod.metadata.uid));
    for (const worker of this.#workers.values()) {
      if (!listed.has(worker.uid) && worker.firstSeen < listedAt) worker.removed();
    }
  }

  /** Stops watching; pods keep running for the next agent. */
  async stop(): Promise<void> {
    this.#abort.abort();
    clearInterval(this.#housekeeping);
    await this.#watching;
    for (const worker of this.#workers.values()) worker.dispose();
    this.#workers.clear();
  }
}
