/**
 * NetworkPolicy enforcement in this node's kernel: the policies, pods,
 * namespaces and nodes of the whole cluster, watched; the model
 * (src/policy/model.ts) rebuilt on each relevant change; this node's
 * nftables state compiled from it; and the difference from what the kernel
 * holds applied as one `nft -f -` transaction.
 *
 * Guarantees (issue 4):
 * - A pod is isolated from its first packet: the pod worker calls
 *   `admit()` with the pod's addresses after CNI ADD and before any
 *   container starts, and waits until the kernel holds its rules. The
 *   agent knows the addresses before the API does, so it does not wait for
 *   the pod's status to come back through the watch.
 * - No window after a restart: the table outlives the agent. A new agent
 *   seeds the addresses of its pods from their records (seed()), waits
 *   until every watch has listed, and only then replaces the whole table in
 *   one transaction; until then the old rules stay in force.
 * - A failed incremental change falls back to a whole reload, after
 *   listing what the table holds.
 */
import type { KubeObject } from '../api/types.js';
import { messageChain } from '../cni/errors.js';
import {
  type ApiClient,
  type Informer,
  type InformerHandlers,
  type SharedInformers,
} from '../client/index.js';
import { resourceForKind } from '../api/registry.js';
import type { ResourceType } from '../api/types.js';
import { NftRunner } from '../kernel/libnftables.js';
import { runAsync, CommandError } from '../kernel/command.js';
import {
  NodePolicyCompiler,
  type PolicyObjects,
  type PolicyState,
  policyTable,
  renderPolicyChange,
  renderPolicyRuleset,
} from '../policy/compile.js';
import { policyNamespace, policyNode, policyPod, networkPolicy } from '../policy/input.js';
import type { PolicyPod } from '../policy/types.js';
import { SerialRuns } from './serial-runs.js';

const resources = {
  policies: resourceForKind('networking.k8s.io/v1', 'NetworkPolicy') as ResourceType,
  pods: resourceForKind('v1', 'Pod') as ResourceType,
  namespaces: resourceForKind('v1', 'Namespace') as ResourceType,
  nodes: resourceForKind('v1', 'Node') as ResourceType,
};

export interface NetworkPolicyOptions {
  client: ApiClient;
  /** The agent's informers, shared with its other parts; their owner stops them. */
  informers: SharedInformers;
  nodeName: string;
  log: (line: string) => void;
  /** NFLOG group drops are logged to; no logging when absent. */
  logGroup?: number;
}

/** What about an object the model reads: a change to anything else is ignored. */
function relevantView(kind: keyof typeof resources, object: KubeObject): string {
  switch (kind) {
    case 'policies':
      return JSON.stringify([object.metadata.labels, object.spec]);
    case 'pods':
      return JSON.stringify(policyPod(object) ?? null);
    case 'namespaces':
      return JSON.stringify(policyNamespace(object));
    case 'nodes':
      return JSON.stringify(policyNode(object).ips);
  }
}

/** The names of the objects in this namespace's policy table; empty when there is no table. */
async function listTableObjects(): Promise<PolicyObjects> {
  let stdout: string;
  try {
    ({ stdout } = await runAsync('nft', ['-t', '-j', 'list', 'table', 'inet', policyTable]));
  } catch (error) {
    if (error instanceof CommandError && /No such file or directory/.test(error.stderr)) {
      return { chains: [], sets: [], counters: [] };
    }
    throw error;
  }
  const out: PolicyObjects = { chains: [], sets: [], counters: [] };
  const items = (JSON.parse(stdout) as { nftables?: Record<string, { name?: string }>[] }).nftables;
  for (const item of items ?? []) {
    if (item.chain?.name) out.chains.push(item.chain.name);
    if (item.set?.name) out.sets.push(item.set.name);
    if (item.counter?.name) out.counters.push(item.counter.name);
  }
  return out;
}

export class NetworkPolicyEnforcer {
  readonly #informers: Record<keyof typeof resources, Informer>;
  /** This node's pods' addresses by uid, known before the API has them; [] once released. */
  readonly #local = new Map<string, { pod: KubeObject; ips: string[] }>();
  readonly #compiler: NodePolicyCompiler;
  readonly #nft: NftRunner;
  #applied: PolicyState | undefined;
  #started = false;
  #stopped = false;
  readonly #runs = new SerialRuns(() => this.#sync());
  #retry: NodeJS.Timeout | undefined;
  /** Pod addresses of the last compilation, for naming the peers of logged drops. */
  #owners = new Map<string, string>();

  constructor(private readonly options: NetworkPolicyOptions) {
    this.#nft = new NftRunner(options.log);
    this.#compiler = new NodePolicyCompiler(
      options.nodeName,
      options.logGroup === undefined ? {} : { logGroup: options.logGroup },
    );
    const informer = (kind: keyof typeof resources): Informer => {
      const created = options.informers.informer(resources[kind]);
      const changed = (): void => {
        void this.schedule();
      };
      const handlers: InformerHandlers<KubeObject> = {
        added: changed,
        deleted: changed,
        updated: (old, object) => {
          if (relevantView(kind, old) !== relevantView(kind, object)) void this.schedule();
        },
      };
      created.on(handlers);
      return created;
    };
    this.#informers = {
      policies: informer('policies'),
      pods: informer('pods'),
      namespaces: informer('namespaces'),
      nodes: informer('nodes'),
    };
  }

  /** Addresses of pods an earlier agent ran here (their records), before start(). */
  seed(pod: KubeObject, ips: readonly string[]): void {
    const uid = pod.metadata.uid;
    if (uid && ips.length > 0) this.#local.set(uid, { pod, ips: [...ips] });
  }

  /** Waits until every watch has listed, then makes the kernel's table whole. */
  async start(): Promise<void> {
    await Promise.all(Object.values(this.#informers).map((i) => this.options.informers.start(i)));
    this.#started = true;
    await this.schedule();
  }

  /**
   * Enforces the pod's policies at `ips`; resolves once the kernel holds
   * them. Rejects when they could not be applied: the pod must not start.
   */
  async admit(pod: KubeObject, ips: readonly string[]): Promise<void> {
    const uid = pod.metadata.uid;
    if (!uid) return;
    const before = this.#local.get(uid);
    this.#local.set(uid, { pod, ips: [...ips] });
    if (before && before.ips.join(' ') === ips.join(' ') && this.#applied) return;
    await this.schedule(true);
  }

  /** The pod's network is gone: its addresses may be reused by another pod. */
  release(uid: string): void {
    const known = this.#local.get(uid);
    if (!known) return;
    this.#local.set(uid, { pod: known.pod, ips: [] });
    void this.schedule();
  }

  /** The pod's worker is finished with it. */
  forget(uid: string): void {
    if (this.#local.delete(uid)) void this.schedule();
  }

  /**
   * Brings the kernel in step; runs never overlap and changes that arrive
   * during a run are picked up by one more run. The promise resolves after
   * a run that started after this call; `strict` makes it reject when that
   * run failed.
   */
  schedule(strict = false): Promise<void> {
    if (!this.#started || this.#stopped) return Promise.resolve();
    const wait = this.#runs.request();
    if (strict) return wait;
    return wait.catch((error: unknown) => {
      this.options.log(`NetworkPolicy: applying the rules failed: ${messageChain(error)}`);
      clearTimeout(this.#retry);
      this.#retry = setTimeout(() => void this.schedule(), 2000);
      this.#retry.unref();
    });
  }

  #input() {
    const i = this.#informers;
    const pods: PolicyPod[] = [];
    const seen = new Set<string>();
    for (const object of i.pods.list()) {
      const uid = object.metadata.uid ?? '';
      seen.add(uid);
      const local = this.#local.get(uid);
      const pod = local ? policyPod(object, local.ips) : policyPod(object);
      if (pod) pods.push(pod);
    }
    // Pods this agent runs that its pod watch reported before this one did.
    for (const [uid, local] of this.#local) {
      if (seen.has(uid)) continue;
      const pod = policyPod(local.pod, local.ips);
      if (pod) pods.push(pod);
    }
    this.#owners = new Map(
      pods.flatMap((p) => p.ips.map((ip) => [ip, `${p.namespace}/${p.name}`])),
    );
    return {
      policies: i.policies.list().map(networkPolicy),
      pods,
      namespaces: i.namespaces.list().map(policyNamespace),
      nodes: i.nodes.list().map(policyNode),
    };
  }

  async #sync(): Promise<void> {
    const next = this.#compiler.compile(this.#input());
    if (this.#applied) {
      const change = renderPolicyChange(this.#applied, next);
      if (change === '') return;
      try {
        await this.#nft.apply(change);
        this.#applied = next;
        return;
      } catch (error) {
        this.options.log(
          `NetworkPolicy: an incremental change failed, reloading the whole table: ${messageChain(error)}`,
        );
        this.#applied = undefined;
      }
    }
    const existing = await listTableObjects();
    await this.#nft.apply(renderPolicyRuleset(next, existing));
    this.#applied = next;
  }

  /** The pod (`namespace/name`) that has `ip`, as of the last compilation. */
  podAt(ip: string): string | undefined {
    return this.#owners.get(ip);
  }

  /** Stops watching; the rules stay in force for the next agent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    await this.#runs.stop();
    await this.#nft.close();
  }
}
