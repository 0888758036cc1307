// A cluster for controller tests: a real API server over a MemoryStore on a
// temp unix socket, the controller in-process (stopped and started again at
// will), manifests the tests build, a wait-for-condition helper, a pod
// recorder that keeps every state a set of pods went through, in watch order,
// and a stand-in for the node agents.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeObject } from '../../src/api/types.js';
import { type RunningApiServer, startApiServer } from '../../src/apiserver/server.js';
import { ApiClient, isNotFound } from '../../src/client/index.js';
import {
  type Controller,
  type ControllerOptions,
  runController,
} from '../../src/controller/index.js';
import { isPodReady } from '../../src/controller/object-state.js';
import { pods } from '../../src/controller/resources.js';
import { writeWithRetry } from '../../src/controller/writes.js';
import { MemoryStore } from '../../src/store/memory.js';

export class TestCluster {
  readonly logs: string[] = [];
  readonly #dir = mkdtempSync(join(tmpdir(), 'strata-controller-'));
  readonly socket = join(this.#dir, 'api.sock');
  readonly client = new ApiClient(this.socket);
  #server: RunningApiServer | undefined;
  #controller: Controller | undefined;

  constructor(private readonly options: Omit<ControllerOptions, 'api' | 'log'>) {}

  async startApi(): Promise<void> {
    this.#server = await startApiServer({
      store: new MemoryStore(),
      listen: { socketPath: this.socket },
    });
  }

  async startController(): Promise<void> {
    this.#controller = await runController({
      ...this.options,
      api: this.socket,
      log: (line) => {
        this.logs.push(line);
        // STRATA_TEST_LOGS=file keeps the controller's log lines for a look after the run.
        const file = process.env.STRATA_TEST_LOGS;
        if (file) appendFileSync(file, `${line}\n`);
      },
    });
  }

  async stopController(): Promise<void> {
    await this.#controller?.stop();
    this.#controller = undefined;
  }

  async stop(): Promise<void> {
    try {
      await this.stopController();
    } finally {
      this.client.close();
      await this.#server?.close();
      rmSync(this.#dir, { recursive: true, force: true });
    }
  }
}

/** Polls `probe` until it returns something other than undefined/false; fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 5000,
  /** What to add to the failure: the state that was not right. */
  explain?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      let why = lastError instanceof Error ? `: ${lastError.message}` : '';
      if (explain) why += `; found ${await explain().catch((e: unknown) => String(e))}`;
      assert.fail(`Timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(15);
  }
}

export function node(
  name: string,
  options: {
    ready?: boolean;
    labels?: Record<string, string>;
    spec?: Record<string, unknown>;
  } = {},
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: options.labels ?? {} },
    spec: options.spec ?? {},
    status: {
      conditions: [{ type: 'Ready', status: (options.ready ?? true) ? 'True' : 'False' }],
    },
  };
}

export function pod(
  name: string,
  labels: Record<string, string> = {},
  spec: Record<string, unknown> = {},
  metadata: Record<string, unknown> = {},
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', labels, ...metadata },
    spec: { containers: [{ name: 'c', image: 'i' }], ...spec },
  };
}

export function deployment(
  name: string,
  replicas: number,
  strategy: Record<string, unknown> = {},
): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'default' },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      strategy,
      template: {
        metadata: { labels: { app: name, tier: 'web' } },
        spec: { containers: [{ name: 'c', image: 'i:1' }] },
      },
    },
  };
}

export function service(
  name: string,
  selector: Record<string, string> | undefined,
  ports: Record<string, unknown>[],
  spec: Record<string, unknown> = {},
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', labels: { team: 'shop' } },
    spec: { ...(selector ? { selector } : {}), ports, ...spec },
  };
}

/** What the recorder keeps of a pod. */
export interface PodState {
  name: string;
  hash: string;
  ready: boolean;
  terminating: boolean;
}

/**
 * Every state of the pods matching `labelSelector` from now on, one
 * snapshot per watch event (the first is the state when it started).
 */
export class PodRecorder {
  readonly snapshots: PodState[][] = [];
  readonly #pods = new Map<string, PodState>();
  #watch: ReturnType<ApiClient['watch']> | undefined;
  #loop: Promise<void> | undefined;

  constructor(
    private readonly client: ApiClient,
    private readonly labelSelector: Record<string, string>,
  ) {}

  static state(object: KubeObject): PodState {
    return {
      name: object.metadata.name ?? '',
      hash: object.metadata.labels?.['pod-template-hash'] ?? '',
      ready: isPodReady(object),
      terminating: object.metadata.deletionTimestamp !== undefined,
    };
  }

  async start(): Promise<void> {
    const list = await this.client.list(pods, { labelSelector: this.labelSelector });
    for (const item of list.items)
      this.#pods.set(item.metadata.name ?? '', PodRecorder.state(item));
    this.snapshots.push([...this.#pods.values()]);
    const watch = this.client.watch(pods, {
      labelSelector: this.labelSelector,
      resourceVersion: list.metadata.resourceVersion,
    });
    this.#watch = watch;
    this.#loop = (async () => {
      for await (const event of watch) {
        const name = event.object.metadata.name ?? '';
        if (event.type === 'DELETED') this.#pods.delete(name);
        else this.#pods.set(name, PodRecorder.state(event.object));
        this.snapshots.push([...this.#pods.values()]);
      }
    })();
  }

  get latest(): PodState[] {
    return this.snapshots.at(-1) ?? [];
  }

  async stop(): Promise<void> {
    this.#watch?.close();
    await this.#loop;
  }
}

// FakeAgent: a stand-in for the node agents (no root, no pods run). It
// watches pods and plays kubelet's part of their lifecycle through the API —
// a pod bound to a node becomes Running and Ready with an address, a pod
// marked for deletion is removed after its "containers stop" — with small
// delays, so the controller sees the interleavings a real cluster has.

export interface FakeAgentOptions {
  /** How long after binding a pod turns Running and Ready. */
  readyDelayMs?: number;
  /** How long a pod marked for deletion takes to go. */
  deleteDelayMs?: number;
  /** Which pods it looks after (default: all). */
  manages?: (pod: KubeObject) => boolean;
}

function key(pod: KubeObject): string {
  return `${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}/${pod.metadata.uid ?? ''}`;
}

/** Conditions without those of `types`, plus the given ones. */
function replaceConditions(pod: KubeObject, next: Record<string, unknown>[]): unknown[] {
  const current = Array.isArray(pod.status?.conditions) ? pod.status.conditions : [];
  const types = new Set(next.map((c) => c.type));
  return [...(current as { type: string }[]).filter((c) => !types.has(c.type)), ...next];
}

export class FakeAgent {
  /** Writes that failed other than with 404 (the test may assert there are none). */
  readonly errors: unknown[] = [];
  readonly #started = new Set<string>();
  readonly #deleting = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #work = new Set<Promise<void>>();
  readonly #watch: ReturnType<ApiClient['watch']>;
  readonly #loop: Promise<void>;
  #nextIp = 1;

  constructor(
    private readonly client: ApiClient,
    private readonly options: FakeAgentOptions = {},
  ) {
    const watch = client.watch(pods);
    this.#watch = watch;
    this.#loop = (async () => {
      for await (const event of watch) {
        if (event.type === 'ADDED' || event.type === 'MODIFIED') this.#seen(event.object);
      }
    })();
  }

  #later(delayMs: number, task: () => Promise<void>): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      const work = task().catch((error: unknown) => {
        if (!isNotFound(error)) this.errors.push(error);
      });
      this.#work.add(work);
      void work.finally(() => this.#work.delete(work));
    }, delayMs);
    this.#timers.add(timer);
  }

  #seen(pod: KubeObject): void {
    if (this.options.manages && !this.options.manages(pod)) return;
    const id = key(pod);
    if (pod.metadata.deletionTimestamp !== undefined) {
      if (this.#deleting.has(id)) return;
      this.#deleting.add(id);
      this.#later(this.options.deleteDelayMs ?? 20, async () => {
        await this.client.delete(pods, pod.metadata.name ?? '', {
          namespace: pod.metadata.namespace,
          gracePeriodSeconds: 0,
        });
      });
      return;
    }
    if (typeof pod.spec?.nodeName !== 'string' || this.#started.has(id)) return;
    this.#started.add(id);
    const n = this.#nextIp++;
    const ip = `10.250.${Math.floor(n / 250)}.${(n % 250) + 1}`;
    this.#later(this.options.readyDelayMs ?? 20, async () => {
      await writeWithRetry(
        this.client,
        pods,
        pod,
        (current) => {
          if (current.metadata.deletionTimestamp !== undefined) return undefined;
          const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
          current.status = {
            ...current.status,
            phase: 'Running',
            podIP: ip,
            podIPs: [{ ip }],
            startTime: now,
            conditions: replaceConditions(current, [
              { type: 'Initialized', status: 'True', lastTransitionTime: now },
              { type: 'ContainersReady', status: 'True', lastTransitionTime: now },
              { type: 'Ready', status: 'True', lastTransitionTime: now },
            ]),
          };
          return current;
        },
        'status',
      );
    });
  }

  async stop(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#watch.close();
    await this.#loop;
    await Promise.allSettled([...this.#work]);
  }
}

/** Sets the pod's Ready condition (and ContainersReady) as a kubelet would after a probe. */
export async function setPodReady(
  client: ApiClient,
  pod: KubeObject,
  ready: boolean,
): Promise<KubeObject | undefined> {
  return writeWithRetry(
    client,
    pods,
    pod,
    (current) => {
      const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
      const status = ready ? 'True' : 'False';
      current.status = {
        ...current.status,
        conditions: replaceConditions(current, [
          { type: 'ContainersReady', status, lastTransitionTime: now },
          { type: 'Ready', status, lastTransitionTime: now },
        ]),
      };
      return current;
    },
    'status',
  );
}
