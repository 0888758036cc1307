/**
 * Node IPAM, as kube-controller-manager's nodeipam range allocator: every
 * Node without a pod CIDR gets one from each cluster CIDR (`spec.podCIDRs`,
 * its first also `spec.podCIDR`), never one another Node holds. Assignments
 * live only in the Nodes: after a restart they are read back from the cache
 * before anything is allocated, and a Node's deletion frees its CIDRs.
 *
 * A full cluster CIDR is reported on the Node (no events in strata): a log
 * line and the condition NetworkUnavailable=True, reason CIDRNotAvailable
 * (upstream's event reason), which the scheduler honours. The Node gets a
 * CIDR when one is freed, and the condition turns False.
 */
import type { KubeObject } from '../api/types.js';
import type { ApiClient } from '../client/index.js';
import type { Informer } from '../client/informer.js';
import { findCondition, setCondition } from './object-state.js';
import { nodes } from './resources.js';
import type { SubnetAllocator } from './subnet-allocator.js';
import { WorkQueue, type ReconcileResult } from './work-queue.js';
import { writeWithRetry } from './writes.js';

export const cidrNotAvailable = 'CIDRNotAvailable';

export function podCidrsOf(node: KubeObject): string[] {
  const list = node.spec?.podCIDRs;
  if (Array.isArray(list) && list.length > 0) {
    return list.filter((c): c is string => typeof c === 'string' && c !== '');
  }
  const single = node.spec?.podCIDR;
  return typeof single === 'string' && single !== '' ? [single] : [];
}

export class NodeIpamController {
  readonly name = 'node-ipam';
  readonly queue = new WorkQueue();
  /** Nodes told the cluster CIDR is full: retried when a CIDR is freed. */
  readonly #waiting = new Set<string>();

  constructor(
    private readonly client: ApiClient,
    private readonly nodeInformer: Informer,
    private readonly allocators: readonly SubnetAllocator[],
    private readonly log: (line: string) => void,
  ) {
    nodeInformer.on({
      added: (node) => {
        this.#occupy(node);
        this.queue.add(node.metadata.name ?? '');
      },
      updated: (_old, node) => {
        this.#occupy(node);
        this.queue.add(node.metadata.name ?? '');
      },
      deleted: (node) => {
        this.#waiting.delete(node.metadata.name ?? '');
        this.#release(node.metadata.name ?? '', podCidrsOf(node));
      },
    });
  }

  /** Records a Node's CIDRs as taken (this is how a restart remembers them). */
  #occupy(node: KubeObject): void {
    const name = node.metadata.name ?? '';
    for (const cidr of podCidrsOf(node)) {
      for (const allocator of this.allocators) {
        const claimed = allocator.occupy(cidr, name);
        if (claimed.result === 'taken') {
          this.log(
            `${this.name}: Node "${name}" has pod CIDR ${cidr}, which Node "${claimed.owner}" also has`,
          );
        }
      }
    }
  }

  #release(name: string, cidrs: readonly string[]): void {
    let freed = false;
    for (const cidr of cidrs) {
      for (const allocator of this.allocators) {
        if (allocator.release(cidr, name)) {
          freed = true;
          this.log(`${this.name}: released pod CIDR ${cidr} of Node "${name}"`);
        }
      }
    }
    if (freed) for (const waiting of this.#waiting) this.queue.add(waiting);
  }

  async reconcile(name: string): Promise<ReconcileResult | undefined> {
    const node = this.nodeInformer.get(name);
    if (!node) return undefined;
    if (podCidrsOf(node).length > 0) {
      this.#waiting.delete(name);
      await this.#clearFullCondition(node, undefined);
      return undefined;
    }
    const cidrs: string[] = [];
    for (const allocator of this.allocators) {
      const cidr = allocator.allocate(name);
      if (cidr === undefined) {
        // Quietly: freeing a CIDR just taken must not wake the waiting Nodes (a loop).
        for (const taken of cidrs) for (const a of this.allocators) a.release(taken, name);
        await this.#reportFull(node, allocator);
        return undefined;
      }
      cidrs.push(cidr);
    }
    let written: KubeObject | undefined;
    try {
      written = await writeWithRetry(this.client, nodes, node, (current) => {
        if (podCidrsOf(current).length > 0) return undefined;
        current.spec = { ...current.spec, podCIDR: cidrs[0], podCIDRs: cidrs };
        return current;
      });
    } catch (error) {
      this.#release(name, cidrs);
      throw error;
    }
    const assigned = written ? podCidrsOf(written) : [];
    if (assigned.join(',') !== cidrs.join(',')) {
      // Gone, or someone else assigned it meanwhile: keep what the Node says.
      this.#release(name, cidrs);
      if (written) this.#occupy(written);
      return undefined;
    }
    this.#waiting.delete(name);
    this.log(`${this.name}: Node "${name}" gets pod CIDR ${cidrs.join(', ')}`);
    if (written) await this.#clearFullCondition(written, cidrs);
    return undefined;
  }

  async #reportFull(node: KubeObject, allocator: SubnetAllocator): Promise<void> {
    const name = node.metadata.name ?? '';
    const message = `no pod CIDR left: cluster CIDR ${allocator.toString()} is full (${allocator.used} of ${allocator.capacity} /${allocator.subnetLength} subnets allocated)`;
    if (!this.#waiting.has(name)) this.log(`${this.name}: Node "${name}": ${message}`);
    this.#waiting.add(name);
    await writeWithRetry(
      this.client,
      nodes,
      node,
      (current) =>
        setCondition(current, {
          type: 'NetworkUnavailable',
          status: 'True',
          reason: cidrNotAvailable,
          message: `Node ${message}`,
        }),
      'status',
    );
  }

  /** Turns a CIDRNotAvailable condition False once the Node has its CIDRs. */
  async #clearFullCondition(node: KubeObject, cidrs: string[] | undefined): Promise<void> {
    if (findCondition(node, 'NetworkUnavailable')?.reason !== cidrNotAvailable) return;
    const assigned = cidrs ?? podCidrsOf(node);
    await writeWithRetry(
      this.client,
      nodes,
      node,
      (current) => {
        if (findCondition(current, 'NetworkUnavailable')?.reason !== cidrNotAvailable) {
          return undefined;
        }
        return setCondition(current, {
          type: 'NetworkUnavailable',
          status: 'False',
          reason: 'CIDRAssigned',
          message: `Node was assigned pod CIDR ${assigned.join(', ')}`,
        });
      },
      'status',
    );
  }
}
