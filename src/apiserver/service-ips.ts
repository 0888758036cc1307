/**
 * Cluster IPs for Services, given by the API server when it knows the
 * service CIDR (startApiServer's `serviceCidr`), as kube-apiserver's
 * ipallocator does at creation: a ClusterIP or NodePort Service without
 * `spec.clusterIP` gets a free address of each family its ipFamilies or
 * ipFamilyPolicy asks for (first from the range's upper band, as the
 * controller's allocator); one that names its addresses gets them if they
 * are in the range and free, else 422 on spec.clusterIP (spec.clusterIPs[1]
 * for the second family) with upstream's "failed to allocate IP ...:
 * provided IP is already allocated" or "... is not in the valid range". The
 * create response carries the addresses. An update that gives a Service
 * addresses it did not have is held to the same rules.
 *
 * Which address is whose is rebuilt from the stored Services at start and
 * kept by a store watch, so every deletion (a DELETE, a namespace's cascade,
 * a finalizer's release) frees its addresses. Owners are uids: a Service
 * recreated under the same name is another owner.
 *
 * Without a service CIDR the API server leaves cluster IPs alone, and the
 * controller's service-ip allocator (src/controller/service-ips.ts) gives
 * them instead.
 */
import type { FieldError, KubeObject, ResourceType } from '../api/types.js';
import { serviceIpAllocators } from '../controller/config.js';
import type { SubnetAllocator } from '../controller/subnet-allocator.js';
import { type IpAddress, ipEqual, lastAddress, networkAddress, parseIp } from '../netaddr/ip.js';
import type { Store, Watch } from '../store/store.js';
import { internalError, invalid } from './status.js';
import { decodeObject, listObjects, storagePrefix } from './storage.js';

type Family = 'IPv4' | 'IPv6';

const services = { group: '', kind: 'Service', plural: 'services', namespaced: true };

export function isService(resource: Pick<ResourceType, 'group' | 'kind'>): boolean {
  return resource.group === '' && resource.kind === 'Service';
}

/** Addresses held for one Service while its write is made; release() frees the ones it did not keep. */
export interface Reservation {
  release(kept?: readonly string[]): void;
}

const nothingReserved: Reservation = { release: () => undefined };

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** The Service's cluster IPs (not None). */
export function clusterIps(service: KubeObject): string[] {
  const ips = stringList(service.spec?.clusterIPs);
  const single = service.spec?.clusterIP;
  if (ips.length === 0 && typeof single === 'string') ips.push(single);
  return ips.filter((ip) => ip !== '' && ip !== 'None');
}

function familyName(address: IpAddress | SubnetAllocator): Family {
  const family = 'family' in address ? address.family : address.prefix.address.family;
  return family === 4 ? 'IPv4' : 'IPv6';
}

function ipField(index: number): string {
  return index === 0 ? 'spec.clusterIP' : `spec.clusterIPs[${index}]`;
}

export class ServiceIps {
  readonly #allocators: SubnetAllocator[];
  /** What each stored Service (by uid) holds: a failed write never frees these. */
  readonly #stored = new Map<string, Set<string>>();
  readonly #watch: Watch;

  private constructor(
    store: Store,
    allocators: SubnetAllocator[],
    items: KubeObject[],
    revision: number,
  ) {
    this.#allocators = allocators;
    for (const service of items) this.#occupy(service);
    this.#watch = store.watch(storagePrefix(services), revision, (event) => {
      try {
        if (event.type === 'put') this.#occupy(decodeObject(event.kv));
        else this.#free(decodeObject(event.prev));
      } catch {
        // A value that is not an object is no Service's: nothing to hold or free.
      }
    });
  }

  /** The allocators for `serviceCidr` (`10.96.0.0/16`, or one CIDR per family), filled from the store. */
  static async start(store: Store, serviceCidr: string): Promise<ServiceIps> {
    const allocators = serviceIpAllocators(serviceCidr);
    const listed = await listObjects(store, services);
    return new ServiceIps(store, allocators, listed.items, listed.revision);
  }

  close(): void {
    this.#watch.cancel();
  }

  #allocatorFor(family: Family): SubnetAllocator | undefined {
    return this.#allocators.find((a) => familyName(a) === family);
  }

  #occupy(service: KubeObject): void {
    const uid = service.metadata.uid ?? '';
    const ips = clusterIps(service);
    this.#stored.set(uid, new Set(ips));
    for (const ip of ips) {
      for (const allocator of this.#allocators) allocator.occupy(ip, uid);
    }
  }

  #free(service: KubeObject): void {
    const uid = service.metadata.uid ?? '';
    this.#stored.delete(uid);
    for (const ip of clusterIps(service)) {
      for (const allocator of this.#allocators) allocator.release(ip, uid);
    }
  }

  #releaser(uid: string, taken: string[]): Reservation {
    return {
      release: (kept = []) => {
        for (const ip of taken) {
          if (kept.includes(ip) || this.#stored.get(uid)?.has(ip)) continue;
          for (const allocator of this.#allocators) allocator.release(ip, uid);
        }
      },
    };
  }

  /** Takes `ip` for `uid`: undefined when it is now theirs, else why not (ipallocator's errors). */
  #claim(ip: string, uid: string): string | undefined {
    const address = parseIp(ip);
    const allocator = address && this.#allocatorFor(familyName(address));
    const reserved =
      address !== undefined &&
      allocator !== undefined &&
      (ipEqual(address, networkAddress(allocator.prefix)) ||
        (address.family === 4 && ipEqual(address, lastAddress(allocator.prefix))));
    if (!address || !allocator || !allocator.contains(ip) || reserved) {
      const ranges = this.#allocators.map((a) => a.toString()).join(', ');
      return `the provided IP (${ip}) is not in the valid range. The range of valid IPs is ${ranges}`;
    }
    const claimed = allocator.occupy(ip, uid);
    return claimed.result === 'taken' ? 'provided IP is already allocated' : undefined;
  }

  /**
   * The families the Service gets addresses of, primary first, and its
   * ipFamilyPolicy (inferred as upstream when unset: RequireDualStack for
   * two families or addresses, else SingleStack); 422 for families the
   * cluster has not.
   */
  #families(service: KubeObject, requested: readonly string[]) {
    const spec = service.spec ?? {};
    const asked = stringList(spec.ipFamilies);
    const twoAsked = asked.length > 1 || requested.length > 1;
    const policy =
      typeof spec.ipFamilyPolicy === 'string'
        ? spec.ipFamilyPolicy
        : twoAsked
          ? 'RequireDualStack'
          : 'SingleStack';
    const configured = this.#allocators.map(familyName);
    const errors: FieldError[] = [];
    const problem = (field: string, value: unknown, detail: string): void => {
      errors.push({ field, type: 'Invalid', value, detail });
    };
    if (policy === 'RequireDualStack' && configured.length < 2) {
      problem(
        'spec.ipFamilyPolicy',
        policy,
        'this cluster is not configured for dual-stack services',
      );
    }
    if (policy === 'SingleStack' && twoAsked) {
      const field = requested.length > 1 ? 'spec.clusterIPs' : 'spec.ipFamilies';
      problem(
        field,
        requested.length > 1 ? requested : asked,
        'may hold only one entry when spec.ipFamilyPolicy is SingleStack',
      );
    }
    const families: Family[] = [];
    for (let i = 0; i < Math.max(asked.length, requested.length); i++) {
      const ip = requested[i];
      const address = ip === undefined ? undefined : parseIp(ip);
      const family = address ? familyName(address) : (asked[i] as Family);
      if (address && asked[i] !== undefined && asked[i] !== family) {
        problem(
          `spec.ipFamilies[${i}]`,
          asked[i],
          `must match the family of ${ipField(i)} (${ip ?? ''})`,
        );
      }
      if (!address && !configured.includes(family)) {
        // PreferDualStack takes a second family only where there is one.
        if (i === 0 || policy !== 'PreferDualStack') {
          problem(`spec.ipFamilies[${i}]`, family, 'not configured on this cluster');
        }
        continue;
      }
      families.push(family);
    }
    const primary = families[0] ?? configured[0] ?? 'IPv4';
    if (families.length === 0) families.push(primary);
    const secondary = configured.find((f) => f !== primary);
    if (policy !== 'SingleStack' && families.length === 1 && secondary) families.push(secondary);
    if (errors.length > 0) throw invalid(services, service.metadata.name ?? '', errors);
    return { families: families.slice(0, policy === 'SingleStack' ? 1 : 2), policy };
  }

  /**
   * Gives a Service being created its cluster IPs (in place: clusterIP,
   * clusterIPs, ipFamilies, ipFamilyPolicy). Throws 422 for addresses it
   * cannot have, 500 when a range is full.
   */
  allocate(service: KubeObject): Reservation {
    const spec = service.spec ?? {};
    if (spec.clusterIP === 'None' || stringList(spec.clusterIPs)[0] === 'None') {
      return nothingReserved;
    }
    const uid = service.metadata.uid ?? '';
    const requested = clusterIps(service);
    const { families, policy } = this.#families(service, requested);
    const taken: string[] = [];
    const reservation = this.#releaser(uid, taken);
    const errors: FieldError[] = [];
    let full = false;
    const ips = families.map((family, i) => {
      const wanted = requested[i];
      if (wanted !== undefined) {
        const problem = this.#claim(wanted, uid);
        if (problem === undefined) taken.push(wanted);
        else {
          errors.push({
            field: ipField(i),
            type: 'Invalid',
            value: wanted,
            detail: `failed to allocate IP ${wanted}: ${problem}`,
          });
        }
        return wanted;
      }
      const allocator = this.#allocatorFor(family);
      const ip = allocator?.allocate(uid);
      if (ip === undefined) {
        full = true;
        return '';
      }
      taken.push(ip);
      return ip;
    });
    if (errors.length > 0 || full) {
      reservation.release();
      if (errors.length > 0) throw invalid(services, service.metadata.name ?? '', errors);
      throw internalError('failed to allocate a serviceIP: range is full');
    }
    service.spec = {
      ...spec,
      clusterIP: ips[0],
      clusterIPs: ips,
      ipFamilies: ips.map((ip) => familyName(parseIp(ip) as IpAddress)),
      ipFamilyPolicy: policy,
    };
    return reservation;
  }

  /** Holds the addresses an update gives a Service that did not have them; 422 when it cannot. */
  reserveAdded(service: KubeObject, old: KubeObject): Reservation {
    const before = clusterIps(old);
    const uid = service.metadata.uid ?? '';
    const taken: string[] = [];
    const errors: FieldError[] = [];
    clusterIps(service).forEach((ip, i) => {
      if (before.includes(ip)) return;
      const problem = this.#claim(ip, uid);
      if (problem === undefined) taken.push(ip);
      else {
        errors.push({
          field: ipField(i),
          type: 'Invalid',
          value: ip,
          detail: `failed to allocate IP ${ip}: ${problem}`,
        });
      }
    });
    const reservation = this.#releaser(uid, taken);
    if (errors.length > 0) {
      reservation.release();
      throw invalid(services, service.metadata.name ?? '', errors);
    }
    return reservation;
  }
}
