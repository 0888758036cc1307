/**
 * Cluster IPs for Services (with --service-cidr): what kube-apiserver's
 * ipallocator does at creation, done here because strata's API server knows
 * no service range. A ClusterIP or NodePort Service without `spec.clusterIP`
 * gets a free address of the service CIDR (of each family its ipFamilies or
 * ipFamilyPolicy asks for): not the network address (nor, for IPv4, the
 * broadcast one), and first from the range's upper band, as upstream's
 * static/dynamic split (KEP-3070) leaves the lower band to addresses users
 * choose. Addresses Services already have are read back from them after a
 * restart; a Service's deletion frees its addresses.
 */
import type { KubeObject } from '../api/types.js';
import type { ApiClient } from '../client/index.js';
import { familyOf } from '../netaddr/ip.js';
import { type Informer, objectKey } from '../client/informer.js';
import { services } from './resources.js';
import type { SubnetAllocator } from './subnet-allocator.js';
import { type ReconcileResult, WorkQueue } from './work-queue.js';
import { writeWithRetry } from './writes.js';

type Family = 'IPv4' | 'IPv6';

function familyName(allocator: SubnetAllocator): Family {
  return allocator.prefix.address.family === 4 ? 'IPv4' : 'IPv6';
}

/** calculateRangeOffset: where the dynamic (upper) band of a range of `size` addresses starts. */
export function upperBandStart(size: number): number {
  if (size < 16) return 0;
  return Math.max(16, Math.min(256, Math.floor(size / 16)));
}

export function clusterIpsOf(service: KubeObject): string[] {
  const list = service.spec?.clusterIPs;
  const ips = Array.isArray(list) ? list.filter((ip): ip is string => typeof ip === 'string') : [];
  const single = service.spec?.clusterIP;
  if (ips.length === 0 && typeof single === 'string' && single !== '') ips.push(single);
  return ips.filter((ip) => ip !== '' && ip !== 'None');
}

function needsClusterIp(service: KubeObject): boolean {
  const type = service.spec?.type ?? 'ClusterIP';
  const clusterIp = service.spec?.clusterIP;
  return (
    (type === 'ClusterIP' || type === 'NodePort') &&
    (clusterIp === undefined || clusterIp === '') &&
    service.metadata.deletionTimestamp === undefined
  );
}

export class ServiceIpController {
  readonly name = 'service-ip';
  readonly queue = new WorkQueue();
  readonly #waiting = new Set<string>();

  constructor(
    private readonly client: ApiClient,
    private readonly serviceInformer: Informer,
    private readonly allocators: readonly SubnetAllocator[],
    private readonly log: (line: string) => void,
  ) {
    const seen = (service: KubeObject): void => {
      this.#occupy(service);
      if (needsClusterIp(service)) this.queue.add(objectKey(service));
    };
    serviceInformer.on({
      added: seen,
      updated: (_old, service) => {
        seen(service);
      },
      deleted: (service) => {
        this.#waiting.delete(objectKey(service));
        this.#release(objectKey(service), clusterIpsOf(service));
      },
    });
  }

  #occupy(service: KubeObject): void {
    const key = objectKey(service);
    for (const ip of clusterIpsOf(service)) {
      for (const allocator of this.allocators) {
        const claimed = allocator.occupy(ip, key);
        if (claimed.result === 'taken') {
          this.log(
            `${this.name}: Service "${key}" has cluster IP ${ip}, which Service "${claimed.owner}" also has`,
          );
        }
      }
    }
  }

  #release(key: string, ips: readonly string[]): void {
    let freed = false;
    for (const ip of ips) for (const a of this.allocators) freed = a.release(ip, key) || freed;
    if (freed) for (const waiting of this.#waiting) this.queue.add(waiting);
  }

  /** The allocators for the families the Service asks for, primary first. */
  #familiesFor(service: KubeObject): SubnetAllocator[] | string {
    const asked = service.spec?.ipFamilies;
    const policy = service.spec?.ipFamilyPolicy ?? 'SingleStack';
    const byFamily = (family: unknown): SubnetAllocator | undefined =>
      this.allocators.find((a) => familyName(a) === family);
    if (Array.isArray(asked) && asked.length > 0) {
      const found = asked.map(byFamily);
      const missing = asked.filter((_, i) => !found[i]);
      if (missing.length > 0 && (policy !== 'PreferDualStack' || !found[0])) {
        return `spec.ipFamilies asks for ${missing.join(', ')}, which the service CIDR does not have`;
      }
      return found.filter((a): a is SubnetAllocator => a !== undefined);
    }
    if (policy === 'RequireDualStack' && this.allocators.length < 2) {
      return 'spec.ipFamilyPolicy is RequireDualStack but the service CIDR is single-stack';
    }
    return policy === 'SingleStack' ? this.allocators.slice(0, 1) : [...this.allocators];
  }

  async reconcile(key: string): Promise<ReconcileResult | undefined> {
    const service = this.serviceInformer.get(key);
    if (!service || !needsClusterIp(service)) return undefined;
    const families = this.#familiesFor(service);
    if (typeof families === 'string') {
      this.log(`${this.name}: Service "${key}" gets no cluster IP: ${families}`);
      return undefined;
    }
    const ips: string[] = [];
    for (const allocator of families) {
      const ip = allocator.allocate(key);
      if (ip === undefined) {
        // Quietly: freeing an address just taken must not wake the waiting Services (a loop).
        for (const taken of ips) for (const a of this.allocators) a.release(taken, key);
        if (!this.#waiting.has(key)) {
          this.log(
            `${this.name}: Service "${key}" gets no cluster IP: service CIDR ${allocator.toString()} is full`,
          );
        }
        this.#waiting.add(key);
        return undefined;
      }
      ips.push(ip);
    }
    let written: KubeObject | undefined;
    try {
      written = await writeWithRetry(this.client, services, service, (current) => {
        if (!needsClusterIp(current)) return undefined;
        current.spec = {
          ...current.spec,
          clusterIP: ips[0],
          clusterIPs: ips,
          ipFamilies: ips.map((ip) => (familyOf(ip) === 6 ? 'IPv6' : 'IPv4')),
          ipFamilyPolicy: current.spec?.ipFamilyPolicy ?? 'SingleStack',
        };
        return current;
      });
    } catch (error) {
      this.#release(key, ips);
      throw error;
    }
    const assigned = written ? clusterIpsOf(written) : [];
    if (assigned.join(',') !== ips.join(',')) {
      this.#release(key, ips);
      if (written) this.#occupy(written);
      return undefined;
    }
    this.#waiting.delete(key);
    this.log(`${this.name}: Service "${key}" gets cluster IP ${ips.join(', ')}`);
    return undefined;
  }
}
