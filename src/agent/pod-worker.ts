/**
 * One pod on this node, synced one step at a time as kubelet's pod workers
 * do (pkg/kubelet/pod_workers.go): every event, container exit, probe
 * result and back-off timer asks for a sync, and syncs never overlap.
 *
 * A sync brings the pod to where it should be: its sandbox (network
 * namespace and CNI attachment) set up, its containers started or
 * restarted, its record written, its status sent. A pod whose containers
 * have all finished for good releases its network and stays Succeeded or
 * Failed. A pod marked for deletion (or deleted outright) is stopped:
 * SIGTERM, SIGKILL after its grace period, CNI DEL, namespace removed,
 * record removed, and finally the DELETE with gracePeriodSeconds=0 that
 * lets the API server remove it. As in kubelet, the grace period of a stop
 * under way only ever shrinks: a later DELETE with a shorter one brings
 * SIGKILL closer, and a pod removed from the API outright (a DELETE with
 * gracePeriodSeconds=0, or gone without an event) is killed at once —
 * nothing waits for it any more, and its name may already be reused.
 */
import { readFileSync } from 'node:fs';
import { resourceForKind } from '../api/registry.js';
import type { KubeObject, ResourceType } from '../api/types.js';
import { messageChain } from '../cni/errors.js';
import { type ApiClient, isConflict, isInvalid, isNotFound } from '../client/index.js';
import { type ContainerContext, ContainerRunner } from './containers.js';
import { containersOf } from './launch.js';
import { podNetnsName, writePodResolvConf } from './netns.js';
import { formatResolvConf, podResolvConf } from './resolv-conf.js';
import { timestamp } from '../api/time.js';
import type { AgentSettings } from './options.js';
import { readProcessStat } from './processes.js';
import type { PodIdentity, PodNetwork } from './sandbox.js';
import type { PodRecord, PodStateStore } from './state.js';
import { compilePodStatus, restartPolicyOf } from './status.js';

export const podResource = resourceForKind('v1', 'Pod') as ResourceType;

export interface PodWorkerContext {
  settings: AgentSettings;
  client: ApiClient;
  network: PodNetwork;
  store: PodStateStore;
  /** `ip`'s absolute path: containers start under `ip netns exec`. */
  ip: string;
  /** The worker is done: the pod is gone from the node. */
  onFinished: (uid: string) => void;
  /** NetworkPolicy enforcement (network-policy.ts): told of the pod's addresses before its containers start. */
  policy?: PodPolicyHooks;
}

export interface PodPolicyHooks {
  /** Resolves once the kernel enforces the pod's policies at `ips`; rejects when it cannot. */
  admit(pod: KubeObject, ips: readonly string[]): Promise<void>;
  /** The pod's addresses are released (CNI DEL). */
  release(uid: string): void;
}

function isTerminalPhase(pod: KubeObject): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

/** kubelet's minimumGracePeriodInSeconds: even a forced deletion gives SIGTERM this long. */
const minimumGracePeriodSeconds = 2;

/** How long a pod's containers get between SIGTERM and SIGKILL. */
export function gracePeriodOf(pod: KubeObject): number {
  const fromDelete = pod.metadata.deletionGracePeriodSeconds;
  const fromSpec = pod.spec?.terminationGracePeriodSeconds;
  const period =
    typeof fromDelete === 'number' ? fromDelete : typeof fromSpec === 'number' ? fromSpec : 30;
  return Math.max(minimumGracePeriodSeconds, period);
}

export class PodWorker {
  readonly uid: string;
  /** When the agent first knew of the pod (housekeeping compares it with list times). */
  readonly firstSeen = Date.now();
  #pod: KubeObject;
  #record: PodRecord;
  #runners = new Map<string, ContainerRunner>();
  #sandboxReady = false;
  #networkReleased = false;
  /** The addresses NetworkPolicy was last told of (network-policy.ts). */
  #policyAdmitted: string | undefined;
  /** The record came from an earlier agent: stray processes in the namespace are removed once. */
  #adopting: boolean;
  #gone = false;
  /** The grace period of the stop under way, once the pod is being stopped. */
  #stopGrace: number | undefined;
  #containersStopped = false;
  #finished = false;
  #syncing = false;
  #again = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #lastRecord = '';
  #lastStatus: Record<string, unknown> | undefined;
  #lastStatusText = '';
  /** Why the API server last refused the status as invalid, logged once. */
  #statusRefused: string | undefined;

  /**
   * `leftovers`: the pod has a directory but no readable record, so an
   * earlier agent may have left processes in its namespace; they are
   * removed as strays before its containers start.
   */
  constructor(
    pod: KubeObject,
    record: PodRecord | undefined,
    private readonly ctx: PodWorkerContext,
    leftovers = false,
  ) {
    this.uid = pod.metadata.uid ?? '';
    this.#pod = pod;
    this.#adopting = record !== undefined || leftovers;
    this.#record = record ?? {
      uid: this.uid,
      namespace: pod.metadata.namespace ?? 'default',
      name: pod.metadata.name ?? '',
      netns: podNetnsName(ctx.settings.cluster, this.uid),
      // An earlier agent whose state is lost may have started it already.
      startTime: typeof pod.status?.startTime === 'string' ? pod.status.startTime : timestamp(),
      containers: {},
    };
    const status = pod.status;
    if (status && typeof status.startTime === 'string') this.#lastStatus = status;
    // Adopted processes are tracked at once, so a deletion can stop them even before the first sync.
    if (record?.podIPs) this.#ensureRunners();
  }

  get identity(): PodIdentity {
    return { uid: this.uid, namespace: this.#record.namespace, name: this.#record.name };
  }

  get record(): PodRecord {
    return this.#record;
  }

  #log(line: string): void {
    this.ctx.settings.log(
      `pod ${this.#record.namespace}/${this.#record.name} (${this.uid}): ${line}`,
    );
  }

  /** A newer version of the pod from the API. */
  update(pod: KubeObject): void {
    this.#pod = pod;
    this.#shortenStop();
    this.schedule();
  }

  /** The pod was deleted from the API without waiting for this node. */
  removed(pod?: KubeObject): void {
    if (pod) this.#pod = pod;
    this.#gone = true;
    this.#shortenStop();
    this.schedule();
  }

  /** The grace period a stop gets now: none once the API no longer has the pod. */
  #gracePeriod(): number {
    return this.#gone ? 0 : gracePeriodOf(this.#pod);
  }

  /** A stop under way (it awaits its containers, so no sync runs) takes a shorter grace period at once. */
  #shortenStop(): void {
    if (this.#stopGrace === undefined || this.#containersStopped || this.#finished) return;
    const grace = this.#gracePeriod();
    if (grace >= this.#stopGrace) return;
    this.#log(
      this.#gone
        ? 'removed from the API while stopping: killing its containers now'
        : `grace period shortened to ${grace}s`,
    );
    this.#stopGrace = grace;
    for (const runner of this.#runners.values()) runner.shortenGracePeriod(grace);
  }

  /** Asks for a sync; one that is running gets another after it. */
  schedule(): void {
    if (this.#finished) return;
    if (this.#syncing) {
      this.#again = true;
      return;
    }
    this.#syncing = true;
    void (async () => {
      do {
        this.#again = false;
        try {
          await this.#sync();
          this.#failures = 0;
        } catch (error) {
          this.#failures++;
          const delay = Math.min(30_000, 1000 * 2 ** Math.min(5, this.#failures - 1));
          this.#log(`sync failed (retrying in ${delay / 1000}s): ${messageChain(error)}`);
          clearTimeout(this.#retryTimer);
          this.#retryTimer = setTimeout(() => {
            this.schedule();
          }, delay);
        }
      } while (this.#again && !this.#finished);
      this.#syncing = false;
    })();
  }

  #containerContext(): ContainerContext {
    const spec = this.#pod.spec ?? {};
    const grace = spec.terminationGracePeriodSeconds;
    return {
      facts: {
        name: this.#record.name,
        namespace: this.#record.namespace,
        nodeName: this.ctx.settings.nodeName,
        podIP: this.#record.podIPs?.[0] ?? '',
      },
      restartPolicy: restartPolicyOf(this.#pod),
      terminationGracePeriodSeconds: typeof grace === 'number' ? grace : 30,
      enter: [this.ctx.ip, 'netns', 'exec', this.#record.netns],
      logPath: this.ctx.store.logPath(this.uid, ''),
      log: (line) => {
        this.#log(line);
      },
      onChange: () => {
        this.schedule();
      },
    };
  }

  #ensureRunners(): void {
    const base = this.#containerContext();
    for (const spec of containersOf(this.#pod)) {
      if (this.#runners.has(spec.name)) continue;
      const ctx = { ...base, logPath: this.ctx.store.logPath(this.uid, spec.name) };
      this.#runners.set(
        spec.name,
        new ContainerRunner(spec, ctx, this.#record.containers[spec.name]),
      );
    }
  }

  async #sync(): Promise<void> {
    if (this.#finished) return;
    if (this.#gone || this.#pod.metadata.deletionTimestamp !== undefined) {
      await this.#terminate();
      return;
    }
    // A finished pod is never run again, whoever finished it.
    if (this.#record.terminal || (isTerminalPhase(this.#pod) && this.#runners.size === 0)) {
      await this.#releaseNetwork();
      return;
    }
    if (!this.#sandboxReady) {
      this.ctx.store.ensureDir(this.uid);
      this.#writeRecord();
      if (!this.#adopting) await this.#sendStatus();
      const before = this.#record.podIPs?.join(' ');
      this.#record.podIPs = await this.ctx.network.setUp(this.identity, this.#record.netns);
      const resolv = podResolvConf(this.#pod, this.ctx.settings, () =>
        readFileSync('/etc/resolv.conf', 'utf8'),
      );
      writePodResolvConf(this.#record.netns, resolv && formatResolvConf(resolv));
      this.#sandboxReady = true;
      if (before !== undefined && before !== this.#record.podIPs.join(' ')) {
        // A new attachment (the old namespace was gone): containers start again with the new address.
        for (const [name, runner] of this.#runners) {
          if (runner.running) continue;
          this.#record.containers[name] = runner.record;
          runner.dispose();
          this.#runners.delete(name);
        }
      }
      this.#writeRecord();
      if (this.#adopting) await this.#removeStrays();
      this.#adopting = false;
    }
    // Isolated from the first packet: the pod's rules are in the kernel before any container runs.
    if (this.ctx.policy && this.#policyAdmitted !== this.#record.podIPs?.join(' ')) {
      await this.ctx.policy.admit(this.#pod, this.#record.podIPs ?? []);
      this.#policyAdmitted = this.#record.podIPs?.join(' ');
    }
    this.#ensureRunners();
    for (const runner of this.#runners.values()) runner.reconcile();
    if ([...this.#runners.values()].every((r) => r.done)) {
      this.#record.terminal = true;
      this.#log('every container has finished: releasing its network');
      await this.#releaseNetwork();
    }
    this.#writeRecord();
    await this.#sendStatus();
  }

  /**
   * Containers an earlier agent started but was killed before it wrote
   * them down: session leaders in the pod's namespace (as every container
   * is) that no adopted container accounts for. Whatever else runs there
   * (a `strata exec` shell) is left alone.
   */
  async #removeStrays(): Promise<void> {
    const known = new Set<number>();
    for (const runner of this.#runners.values()) {
      const id = runner.running;
      if (id) known.add(id.pid);
    }
    for (const pid of await this.ctx.network.namespaces.pids(this.#record.netns)) {
      if (known.has(pid) || readProcessStat(pid)?.session !== pid) continue;
      this.#log(
        `killing process ${pid} and its session: it runs in the pod's namespace but is no container's`,
      );
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
  }

  /** CNI DEL and the namespace, once; the pod keeps its record (and status) until it is deleted. */
  async #releaseNetwork(): Promise<void> {
    if (this.#networkReleased) return;
    await this.ctx.network.tearDown(this.identity, this.#record.netns);
    this.ctx.policy?.release(this.uid);
    this.#policyAdmitted = undefined;
    this.#sandboxReady = false;
    this.#networkReleased = true;
  }

  #writeRecord(): void {
    for (const [name, runner] of this.#runners) this.#record.containers[name] = runner.record;
    const text = JSON.stringify(this.#record);
    if (text === this.#lastRecord) return;
    this.ctx.store.write(this.#record);
    this.#lastRecord = text;
  }

  async #terminate(): Promise<void> {
    // A retried stop keeps the shortest grace period it was given.
    const grace = Math.min(this.#stopGrace ?? Infinity, this.#gracePeriod());
    this.#stopGrace = grace;
    this.#log(`stopping (grace period ${grace}s)`);
    await Promise.all([...this.#runners.values()].map((runner) => runner.stop(grace)));
    this.#containersStopped = true;
    for (const pid of await this.ctx.network.namespaces.pids(this.#record.netns)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    await this.ctx.network.tearDown(this.identity, this.#record.netns);
    this.ctx.store.remove(this.uid);
    if (!this.#gone) {
      try {
        await this.ctx.client.delete(podResource, this.#record.name, {
          namespace: this.#record.namespace,
          gracePeriodSeconds: 0,
          preconditions: { uid: this.uid },
        });
      } catch (error) {
        if (!isNotFound(error) && !isConflict(error)) throw error;
      }
    }
    this.#log('removed');
    this.#finish();
  }

  #finish(): void {
    this.#finished = true;
    clearTimeout(this.#retryTimer);
    for (const runner of this.#runners.values()) runner.dispose();
    this.ctx.onFinished(this.uid);
  }

  /** Sends the pod's status when it differs from what was last sent (kubelet's status manager). */
  async #sendStatus(): Promise<void> {
    const status = compilePodStatus({
      restartPolicy: restartPolicyOf(this.#pod),
      hostIP: this.ctx.settings.nodeIpText,
      podIPs: this.#record.podIPs ?? [],
      startTime: this.#record.startTime,
      sandboxReady: this.#sandboxReady,
      containers: containersOf(this.#pod).map(
        (spec) =>
          this.#runners.get(spec.name)?.view ?? {
            name: spec.name,
            image: spec.image ?? '',
            state: { kind: 'waiting', reason: 'ContainerCreating' },
            restartCount: 0,
            ready: false,
            started: false,
          },
      ),
      previous: this.#lastStatus,
      now: timestamp(),
    });
    const text = JSON.stringify(status);
    if (text === this.#lastStatusText) return;
    for (let attempt = 0; ; attempt++) {
      let current: KubeObject;
      try {
        current = await this.ctx.client.get(podResource, this.#record.name, {
          namespace: this.#record.namespace,
        });
      } catch (error) {
        if (isNotFound(error)) return;
        throw error;
      }
      // A pod of the same name made since is not this one.
      if (current.metadata.uid !== this.uid) return;
      try {
        await this.ctx.client.updateStatus({ ...current, status });
        break;
      } catch (error) {
        if (isNotFound(error)) return;
        if (isInvalid(error)) {
          // The pod itself is invalid now (admitted by a laxer server): retrying cannot help, and
          // must not stop the pod from running. Later syncs try again; the reason is logged once.
          const reason = messageChain(error);
          if (reason !== this.#statusRefused) this.#log(`status refused: ${reason}`);
          this.#statusRefused = reason;
          return;
        }
        if (!isConflict(error) || attempt >= 4) throw error;
      }
    }
    this.#statusRefused = undefined;
    this.#lastStatus = status;
    this.#lastStatusText = text;
  }

  /** The agent is stopping: timers go, processes keep running for the next agent. */
  dispose(): void {
    this.#finished = true;
    clearTimeout(this.#retryTimer);
    for (const runner of this.#runners.values()) runner.dispose();
  }
}
