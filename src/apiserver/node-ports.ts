/**
 * NodePorts for Services, given by the API server from the node port range
 * (startApiServer's `serviceNodePortRange`, kube-apiserver's
 * --service-node-port-range, 30000-32767 by default) as kube-apiserver's
 * portallocator does (pkg/registry/core/service/portallocator and the
 * Service REST storage's initNodePorts/updateNodePorts):
 *
 * - at creation, each port of a NodePort Service without `nodePort` gets a
 *   free one (at random, from the range's upper band first); ports of one
 *   Service with the same `port` number (53/TCP and 53/UDP) share one. A
 *   port that names its nodePort gets it if it is in the range and free,
 *   else 422 on spec.ports[i].nodePort with upstream's "provided port is
 *   already allocated" or "provided port is not in the valid range. The
 *   range of valid ports is 30000-32767" (the configured range: validation
 *   does not check it, as upstream). 500 when the range is full.
 * - an update to a NodePort Service holds the ports it adds to the same
 *   rules and allocates ports left without one (keepNodePorts, run from
 *   prepareForUpdate, first gives them the ones they had: upstream's
 *   patchAllocatedValues, by port name); one that turns a NodePort Service
 *   into a ClusterIP one clears its nodePorts (dropTypeDependentFields).
 *
 * The allocator keys by number, shared across protocols; one Service may
 * use its own number for several ports. Which number is whose is rebuilt
 * from the stored Services at start and kept by a store watch, so a stored
 * update that drops ports and every deletion (a DELETE, a namespace's
 * cascade) frees them. Owners are uids. A write that fails releases what it
 * reserved (Reservation, as service-ips.ts).
 */
import { randomInt } from 'node:crypto';
import { nodePortRange } from '../api/validation/service.js';
import type { FieldError, KubeObject } from '../api/types.js';
import type { Store, Watch } from '../store/store.js';
import { isJsonObject } from './json-value.js';
import { internalError, invalid } from './status.js';
import { decodeObject, listObjects, storagePrefix } from './storage.js';

/** Inclusive bounds of the node port range. */
export interface PortRange {
  min: number;
  max: number;
}

/** Numbers held for one Service while its write is made; release() frees the ones it did not keep. */
export interface PortReservation {
  release(kept?: readonly number[]): void;
}

const services = { group: '', kind: 'Service', plural: 'services', namespaced: true };

const nothingReserved: PortReservation = { release: () => undefined };

/** utilnet.PortRange.String: `30000-32767`. */
export function formatPortRange(range: PortRange): string {
  return `${range.min}-${range.max}`;
}

/**
 * utilnet.ParsePortRange: `30000-32767`, `30000+2767` or one port; else
 * why not.
 */
export function parsePortRange(text: string): PortRange | string {
  const match = /^\s*(\d{1,5})(?:([-+])(\d{1,5}))?\s*$/.exec(text);
  if (!match) return 'expected first-last (or first+count, or one port)';
  const min = Number(match[1]);
  const other = match[3] === undefined ? min : Number(match[3]);
  const max = match[2] === '+' ? min + other : other;
  if (min < 1 || max > 65535) return 'its ports must be within 1-65535';
  if (max < min) return 'the last port is below the first';
  return { min, max };
}

/** The port objects of a Service's spec (the same objects: changing them changes the spec). */
function portList(spec: Record<string, unknown> | undefined): Record<string, unknown>[] {
  const ports: unknown = spec?.ports;
  return Array.isArray(ports) ? ports.filter(isJsonObject) : [];
}

function numberOf(value: unknown): number {
  return typeof value === 'number' && Number.isInteger(value) ? value : 0;
}

/** The Service's node ports (not 0). */
export function nodePorts(service: KubeObject): number[] {
  return portList(service.spec)
    .map((port) => numberOf(port.nodePort))
    .filter((n) => n !== 0);
}

/** upstream needsNodePort: the types that get node ports (an unset type is ClusterIP). */
function needsNodePorts(spec: Record<string, unknown>): boolean {
  return spec.type === 'NodePort' || spec.type === 'LoadBalancer';
}

function nodePortField(index: number): string {
  return `spec.ports[${index}].nodePort`;
}

/**
 * What an update of a Service does with the node ports it had, before
 * validation (upstream's patchAllocatedValues and dropTypeDependentFields):
 * a port left without one gets the one the port of the same name had, unless
 * another port now uses it; turning a NodePort Service into a ClusterIP one
 * clears them, unless the update adds node ports of its own (which
 * validation then refuses), and its externalTrafficPolicy if the update
 * left it as it was. `spec` is the incoming spec, changed in place.
 */
export function keepNodePorts(spec: Record<string, unknown>, was: Record<string, unknown>): void {
  const ports: unknown = spec.ports;
  if (Array.isArray(ports))
    spec.ports = ports.map((p: unknown) => (isJsonObject(p) ? { ...p } : p));
  const mine = portList(spec);
  const old = portList(was);
  const oldNumbers = new Set(old.map((p) => numberOf(p.nodePort)).filter((n) => n !== 0));
  const newNumbers = new Set(mine.map((p) => numberOf(p.nodePort)).filter((n) => n !== 0));
  if (needsNodePorts(was) && needsNodePorts(spec)) {
    const used = new Set([...newNumbers].filter((n) => oldNumbers.has(n)));
    const byName = new Map(old.map((p) => [typeof p.name === 'string' ? p.name : '', p.nodePort]));
    for (const port of mine) {
      if (numberOf(port.nodePort) !== 0) continue;
      const had = numberOf(byName.get(typeof port.name === 'string' ? port.name : ''));
      if (had !== 0 && !used.has(had)) port.nodePort = had;
    }
  } else if (needsNodePorts(was) && !needsNodePorts(spec)) {
    if ([...newNumbers].every((n) => oldNumbers.has(n))) {
      for (const port of mine) delete port.nodePort;
    }
    if (spec.externalTrafficPolicy === was.externalTrafficPolicy) delete spec.externalTrafficPolicy;
  }
}

export class NodePorts {
  readonly range: PortRange;
  /** Who (a Service's uid) holds each number. */
  readonly #owners = new Map<number, string>();
  /** What each stored Service (by uid) holds: a failed write never frees these. */
  readonly #stored = new Map<string, Set<number>>();
  /** How many numbers at the bottom of the range are handed out only once the rest are gone. */
  readonly #offset: number;
  readonly #watch: Watch;

  private constructor(store: Store, range: PortRange, items: KubeObject[], revision: number) {
    this.range = range;
    this.#offset = rangeOffset(range.max - range.min + 1);
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

  /** The allocator for `range` (kube-apiserver's default without one), filled from the store. */
  static async start(store: Store, range: PortRange = nodePortRange): Promise<NodePorts> {
    const { min, max } = range;
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 65535 || max < min) {
      throw new Error(
        `invalid service node port range ${formatPortRange(range)}: expected a-b within 1-65535`,
      );
    }
    const listed = await listObjects(store, services);
    return new NodePorts(store, { min, max }, listed.items, listed.revision);
  }

  close(): void {
    this.#watch.cancel();
  }

  #inRange(port: number): boolean {
    return port >= this.range.min && port <= this.range.max;
  }

  #occupy(service: KubeObject): void {
    const uid = service.metadata.uid ?? '';
    const ports = new Set(nodePorts(service));
    const before = this.#stored.get(uid);
    if (ports.size > 0) this.#stored.set(uid, ports);
    else this.#stored.delete(uid);
    for (const port of before ?? []) {
      if (!ports.has(port)) this.#release(port, uid);
    }
    for (const port of ports) {
      if (this.#inRange(port) && !this.#owners.has(port)) this.#owners.set(port, uid);
    }
  }

  #free(service: KubeObject): void {
    const uid = service.metadata.uid ?? '';
    const ports = new Set([...nodePorts(service), ...(this.#stored.get(uid) ?? [])]);
    this.#stored.delete(uid);
    for (const port of ports) this.#release(port, uid);
  }

  /** Frees `port` if `uid` holds it; another stored Service with the same number (stored before the allocator) takes it over. */
  #release(port: number, uid: string): void {
    if (this.#owners.get(port) !== uid) return;
    this.#owners.delete(port);
    for (const [other, held] of this.#stored) {
      if (held.has(port)) {
        this.#owners.set(port, other);
        return;
      }
    }
  }

  #releaser(uid: string, taken: number[]): PortReservation {
    return {
      release: (kept = []) => {
        for (const port of taken) {
          if (kept.includes(port) || this.#stored.get(uid)?.has(port)) continue;
          this.#release(port, uid);
        }
      },
    };
  }

  /** Takes `port` for `uid`: undefined when it is now theirs, else why not (portallocator's errors). */
  #claim(port: number, uid: string): string | undefined {
    if (!this.#inRange(port)) {
      return `provided port is not in the valid range. The range of valid ports is ${formatPortRange(this.range)}`;
    }
    const owner = this.#owners.get(port);
    if (owner !== undefined && owner !== uid) return 'provided port is already allocated';
    this.#owners.set(port, uid);
    return undefined;
  }

  /** bitmap's randomScanStrategyWithOffset: a free number of the upper band, else of the lower one. */
  #next(uid: string): number | undefined {
    const size = this.range.max - this.range.min + 1;
    const bands: [number, number][] = [
      [this.#offset, size - this.#offset],
      [0, this.#offset],
    ];
    for (const [first, count] of bands) {
      if (count <= 0) continue;
      const start = randomInt(count);
      for (let i = 0; i < count; i++) {
        const port = this.range.min + first + ((start + i) % count);
        if (this.#owners.has(port)) continue;
        this.#owners.set(port, uid);
        return port;
      }
    }
    return undefined;
  }

  #refuse(service: KubeObject, reservation: PortReservation, errors: FieldError[]): never {
    reservation.release();
    if (errors.length > 0) throw invalid(services, service.metadata.name ?? '', errors);
    throw internalError('failed to allocate a nodePort: range is full');
  }

  /**
   * Gives a Service being created its node ports (in place). Throws 422 for
   * numbers it cannot have, 500 when the range is full.
   */
  allocate(service: KubeObject): PortReservation {
    const spec = service.spec ?? {};
    if (!needsNodePorts(spec)) return nothingReserved;
    const uid = service.metadata.uid ?? '';
    const ports = portList(service.spec);
    const taken: number[] = [];
    const reservation = this.#releaser(uid, taken);
    const errors: FieldError[] = [];
    const claim = (port: number, index: number): void => {
      const problem = this.#claim(port, uid);
      if (problem === undefined) taken.push(port);
      else
        errors.push({ field: nodePortField(index), type: 'Invalid', value: port, detail: problem });
    };
    // initNodePorts: one node port per service port number, the one asked for if any.
    const byNumber = new Map<number, number>();
    let full = false;
    ports.forEach((port, i) => {
      const number = numberOf(port.port);
      const wanted = numberOf(port.nodePort);
      const given = byNumber.get(number);
      if (given !== undefined) {
        if (wanted === 0) port.nodePort = given;
        else if (wanted !== given) claim(wanted, i);
        return;
      }
      const asking =
        wanted !== 0
          ? i
          : ports.findIndex(
              (p, j) => j > i && numberOf(p.port) === number && numberOf(p.nodePort) !== 0,
            );
      if (asking >= 0) {
        const requested = numberOf(ports[asking]?.nodePort);
        claim(requested, asking);
        port.nodePort = requested;
        byNumber.set(number, requested);
        return;
      }
      const next = this.#next(uid);
      if (next === undefined) {
        full = true;
        return;
      }
      taken.push(next);
      port.nodePort = next;
      byNumber.set(number, next);
    });
    if (errors.length > 0 || full) this.#refuse(service, reservation, errors);
    return reservation;
  }

  /**
   * Holds the node ports an update gives a NodePort Service that it did not
   * have, and allocates the ones its ports still lack (in place);
   * updateNodePorts. 422 or 500 as allocate().
   */
  reserveUpdate(service: KubeObject, old: KubeObject): PortReservation {
    if (!needsNodePorts(service.spec ?? {})) return nothingReserved;
    const uid = service.metadata.uid ?? '';
    const before = new Set(nodePorts(old));
    const taken: number[] = [];
    const reservation = this.#releaser(uid, taken);
    const errors: FieldError[] = [];
    let full = false;
    portList(service.spec).forEach((port, i) => {
      const wanted = numberOf(port.nodePort);
      if (wanted === 0) {
        const next = this.#next(uid);
        if (next === undefined) full = true;
        else {
          taken.push(next);
          port.nodePort = next;
        }
        return;
      }
      if (before.has(wanted) || taken.includes(wanted)) return;
      const problem = this.#claim(wanted, uid);
      if (problem === undefined) taken.push(wanted);
      else
        errors.push({ field: nodePortField(i), type: 'Invalid', value: wanted, detail: problem });
    });
    if (errors.length > 0 || full) this.#refuse(service, reservation, errors);
    return reservation;
  }
}

/** portallocator's calculateRangeOffset: min(max(16, size/32), 128), 0 for ranges of 16 or less. */
function rangeOffset(size: number): number {
  if (size <= 16) return 0;
  return Math.min(Math.max(16, Math.floor(size / 32)), 128);
}
