/**
 * Service virtual IPs in this node's kernel, as kube-proxy's nftables mode
 * programs them: Services and EndpointSlices of the whole cluster watched,
 * the Services each change touches recompiled (src/services/compile.ts),
 * and the difference from what the kernel holds applied as one
 * transaction, in-process through libnftables.
 *
 * - At start the agent waits until both watches have listed and replaces
 *   the whole table in one transaction; until then a previous agent's
 *   table stays in force (connections keep their NAT either way: it lives
 *   in conntrack).
 * - After that, each change is the difference between the last applied
 *   state and the new one; a failed change falls back to replacing the
 *   whole table.
 */
import { resourceForKind } from '../api/registry.js';
import type { KubeObject, ResourceType } from '../api/types.js';
import { messageChain } from '../cni/errors.js';
import { type ApiClient, type Informer, type SharedInformers, objectKey } from '../client/index.js';
import { NftRunner } from '../kernel/libnftables.js';
import { CommandError, runAsync } from '../kernel/command.js';
import { NodeServiceCompiler, type ServiceNode, type UdpFlow } from '../services/compile.js';
import { endpointsOf, serviceInput, sliceServiceKey } from '../services/input.js';
import { renderTable, renderTableChange, type NftTableState } from '../services/nft-state.js';
import { SerialRuns } from './serial-runs.js';

const resources = {
  services: resourceForKind('v1', 'Service') as ResourceType,
  slices: resourceForKind('discovery.k8s.io/v1', 'EndpointSlice') as ResourceType,
};

export interface ServiceProxyOptions {
  client: ApiClient;
  /** The agent's informers, shared with its other parts; their owner stops them. */
  informers: SharedInformers;
  node: ServiceNode;
  log: (line: string) => void;
  /** Told how long each applied change took, from the first event it carries to the kernel's answer. */
  applied?: (change: { services: number; milliseconds: number; whole: boolean }) => void;
}

export class ServiceProxy {
  readonly #services: Informer;
  readonly #slices: Informer;
  readonly #compiler: NodeServiceCompiler;
  readonly #nft: NftRunner;
  readonly #runs = new SerialRuns(() => this.#sync());
  /** Services (`namespace/name`) changed since the last run, with when the first change came. */
  #dirty = new Set<string>();
  #dirtySince = 0;
  #applied: NftTableState | undefined;
  /** UDP flows no longer programmed, whose conntrack entries are still to be deleted. */
  #staleUdp: UdpFlow[] = [];
  #conntrackMissing = false;
  #started = false;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(private readonly options: ServiceProxyOptions) {
    this.#nft = new NftRunner(options.log);
    this.#compiler = new NodeServiceCompiler(options.node);
    this.#services = options.informers.informer(resources.services);
    this.#slices = options.informers.informer(resources.slices);
    const touch = (key: string | undefined): void => {
      if (key === undefined) return;
      if (this.#dirty.size === 0) this.#dirtySince = performance.now();
      this.#dirty.add(key);
      void this.schedule();
    };
    const service = (object: KubeObject): void => {
      touch(objectKey(object));
    };
    this.#services.on({
      added: service,
      deleted: service,
      updated: (old, object) => {
        if (JSON.stringify(old.spec) !== JSON.stringify(object.spec)) service(object);
      },
    });
    const slice = (object: KubeObject): void => {
      touch(sliceServiceKey(object));
    };
    this.#slices.on({
      added: slice,
      deleted: slice,
      updated: (old, object) => {
        // A slice moved to another Service changes both.
        if (sliceServiceKey(old) !== sliceServiceKey(object)) slice(old);
        slice(object);
      },
    });
  }

  /** Waits until both watches have listed, then makes the kernel's table whole. */
  async start(): Promise<void> {
    const { informers } = this.options;
    await Promise.all([informers.start(this.#services), informers.start(this.#slices)]);
    this.#started = true;
    await this.schedule(true);
  }

  /** Brings the kernel in step; `strict` makes the promise reject when the run failed. */
  schedule(strict = false): Promise<void> {
    if (!this.#started || this.#stopped) return Promise.resolve();
    const wait = this.#runs.request();
    if (strict) return wait;
    return wait.catch((error: unknown) => {
      this.options.log(`Services: applying the rules failed: ${messageChain(error)}`);
      clearTimeout(this.#retry);
      this.#retry = setTimeout(() => void this.schedule(), 2000);
      this.#retry.unref();
    });
  }

  /** The Service's current EndpointSlices. */
  #slicesOf(namespace: string, name: string): KubeObject[] {
    const key = `${namespace}/${name}`;
    return this.#slices.list(namespace).filter((slice) => sliceServiceKey(slice) === key);
  }

  async #sync(): Promise<void> {
    const dirty = this.#dirty;
    const since = this.#dirtySince;
    this.#dirty = new Set();
    for (const key of dirty) {
      const object = this.#services.get(key);
      const service = object ? serviceInput(object) : undefined;
      this.#compiler.setService(key, service);
      this.#compiler.setEndpoints(
        key,
        service
          ? endpointsOf(
              service.namespace,
              service.name,
              this.#slicesOf(service.namespace, service.name),
            )
          : undefined,
      );
    }
    const next = this.#compiler.build(this.#staleUdp);
    let whole = this.#applied === undefined;
    if (this.#applied) {
      const change = renderTableChange(this.#applied, next);
      if (change === '') return;
      try {
        await this.#nft.apply(change);
      } catch (error) {
        this.options.log(
          `Services: an incremental change failed, replacing the whole table: ${messageChain(error)}`,
        );
        whole = true;
      }
    }
    if (whole) await this.#nft.apply(renderTable(next));
    this.#applied = next;
    await this.#forgetUdpFlows();
    this.options.applied?.({
      services: dirty.size,
      milliseconds: dirty.size > 0 ? performance.now() - since : 0,
      whole,
    });
  }

  /**
   * Deletes the conntrack entries of UDP flows the table no longer DNATs
   * (kube-proxy's conntrack cleanup): without it a client that keeps its
   * source port would keep reaching a removed endpoint until the entry times
   * out. TCP needs none: a removed endpoint resets or times out its
   * connections, and new ones go through the new rules.
   */
  async #forgetUdpFlows(): Promise<void> {
    const flows = this.#staleUdp;
    this.#staleUdp = [];
    if (this.#conntrackMissing) return;
    for (const flow of flows) {
      const destination =
        'address' in flow.destination
          ? ['--orig-dst', flow.destination.address]
          : ['--orig-port-dst', String(flow.destination.nodePort)];
      try {
        await runAsync('conntrack', [
          '-D',
          '-p',
          'udp',
          ...destination,
          '--reply-src',
          flow.endpoint,
        ]);
      } catch (error) {
        // conntrack exits 1 when nothing matched, which is the usual case.
        if (error instanceof CommandError && /0 flow entries/.test(error.stderr)) continue;
        if (error instanceof CommandError && error.status === null && /ENOENT/.test(error.stderr)) {
          this.#conntrackMissing = true;
          this.options.log(
            'Services: conntrack is not installed; stale UDP flows are left to expire',
          );
          return;
        }
        this.options.log(`Services: deleting UDP conntrack entries failed: ${messageChain(error)}`);
      }
    }
  }

  /** Stops watching; the rules stay in force for the next agent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    await this.#runs.stop();
    await this.#nft.close();
  }
}
