/**
 * Every Node, watched: this node's pod CIDR (given by the controller, the
 * agent waits for it), and the peers other nodes' pods are reached through
 * — their InternalIP, pod CIDR and, for vxlan, their VTEP's MAC.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeObject } from '../api/types.js';
import { messageChain } from '../cni/errors.js';
import type { ApiClient, ResourceWatch } from '../client/index.js';
import { type IpPrefix, formatIp, networkAddress, parseIp, parsePrefix } from '../netaddr/ip.js';
import { nodeResource, vxlanMacAnnotation } from './node.js';
import type { AgentSettings } from './options.js';

export interface Peer {
  name: string;
  nodeIp: string;
  /** The peer's pod CIDR, host bits cleared. */
  podCidr: string;
  /** Its first address: the peer's VXLAN device address (Flannel's layout). */
  podNetwork: string;
  vxlanMac?: string;
}

const macPattern = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function internalIpOf(node: KubeObject): string | undefined {
  const addresses = node.status?.addresses;
  if (!Array.isArray(addresses)) return undefined;
  const found = (addresses as Record<string, unknown>[]).find((a) => a.type === 'InternalIP');
  const address = typeof found?.address === 'string' ? found.address : undefined;
  return address && parseIp(address)?.family === 4 ? address : undefined;
}

/** The node's IPv4 pod CIDR (spec.podCIDR), host bits cleared. */
export function podCidrOf(node: KubeObject): IpPrefix | undefined {
  const text = node.spec?.podCIDR;
  const prefix = typeof text === 'string' ? parsePrefix(text) : undefined;
  if (prefix?.address.family !== 4) return undefined;
  return { address: networkAddress(prefix), length: prefix.length };
}

/** The other nodes that can be routed to: with an InternalIP and a pod CIDR (and a MAC for vxlan). */
export function peersOf(nodes: Iterable<KubeObject>, self: string): Peer[] {
  const peers: Peer[] = [];
  for (const node of nodes) {
    const name = node.metadata.name ?? '';
    const nodeIp = internalIpOf(node);
    const cidr = podCidrOf(node);
    if (name === self || !nodeIp || !cidr) continue;
    const mac = node.metadata.annotations?.[vxlanMacAnnotation]?.toLowerCase();
    const network = formatIp(cidr.address);
    peers.push({
      name,
      nodeIp,
      podCidr: `${network}/${cidr.length}`,
      podNetwork: network,
      ...(mac && macPattern.test(mac) ? { vxlanMac: mac } : {}),
    });
  }
  return peers.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The Nodes, listed first and then watched from the list's resourceVersion,
 * so nothing acts on a partial view (a restarted agent must not remove a
 * route because it has not heard of that peer yet). A fresh list every
 * housekeeping interval replaces the view, catching a deletion a watch
 * that had to re-list (410 Gone) could not report.
 */
export class NodeWatch {
  #nodes = new Map<string, KubeObject>();
  readonly #abort = new AbortController();
  #watching: Promise<void> | undefined;
  #resync: NodeJS.Timeout | undefined;
  #changed: (() => void)[] = [];

  constructor(
    private readonly client: ApiClient,
    private readonly settings: AgentSettings,
    /** Called after every change of any Node. */
    private readonly onChange: () => void,
  ) {}

  /** Lists the Nodes (resolves then), and watches from there on. */
  async start(): Promise<void> {
    const resourceVersion = await this.#list();
    this.#watching = this.#run(resourceVersion);
    this.#resync = setInterval(() => {
      this.#list().catch((error: unknown) => {
        this.settings.log(`listing nodes failed: ${messageChain(error)}`);
      });
    }, this.settings.housekeepingIntervalMs);
  }

  async #list(): Promise<string> {
    const list = await this.client.list(nodeResource);
    this.#nodes = new Map(list.items.map((node) => [node.metadata.name ?? '', node]));
    this.#notify();
    return list.metadata.resourceVersion;
  }

  #notify(): void {
    for (const wake of this.#changed.splice(0)) wake();
    this.onChange();
  }

  async #run(resourceVersion: string): Promise<void> {
    const signal = this.#abort.signal;
    let from: string | undefined = resourceVersion;
    while (!signal.aborted) {
      const watch: ResourceWatch = this.client.watch(nodeResource, {
        resourceVersion: from,
        signal,
      });
      try {
        for await (const event of watch) {
          const name = event.object.metadata.name ?? '';
          if (event.type === 'DELETED') this.#nodes.delete(name);
          else if (event.type === 'ADDED' || event.type === 'MODIFIED') {
            this.#nodes.set(name, event.object);
          } else continue;
          this.#notify();
        }
      } catch (error) {
        if (signal.aborted) return;
        this.settings.log(`node watch failed (restarting it): ${messageChain(error)}`);
      }
      from = watch.resourceVersion;
      try {
        await sleep(1000, undefined, { signal });
      } catch {
        return;
      }
    }
  }

  /** This node's pod CIDR as the API has it now. */
  ownPodCidr(): IpPrefix | undefined {
    const self = this.#nodes.get(this.settings.nodeName);
    return self ? podCidrOf(self) : undefined;
  }

  /** Resolves once the controller has given this node a pod CIDR. */
  async waitForPodCidr(signal?: AbortSignal): Promise<IpPrefix> {
    let logged = false;
    for (;;) {
      const cidr = this.ownPodCidr();
      if (cidr) return cidr;
      if (!logged) this.settings.log('waiting for the controller to set spec.podCIDR of this node');
      logged = true;
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        this.#changed.push(resolve);
        signal?.addEventListener(
          'abort',
          () => {
            resolve();
          },
          { once: true },
        );
      });
    }
  }

  peers(): Peer[] {
    return peersOf(this.#nodes.values(), this.settings.nodeName);
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    clearInterval(this.#resync);
    for (const wake of this.#changed.splice(0)) wake();
    await this.#watching;
  }
}
