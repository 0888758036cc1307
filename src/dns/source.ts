/**
 * Where the DNS server's Services and EndpointSlices come from: the small
 * interface DnsServer reads (objects now, a signal when they change,
 * whether the first listing is in), a static source for tests and fixed
 * zones, and the informer-backed source `strata dns` runs with.
 */
import { resourceForKind } from '../api/registry.js';
import type { KubeObject, ResourceType } from '../api/types.js';
import { type ApiClient, Informer } from '../client/index.js';
import { type ClusterObjects, serviceNameLabel } from './records.js';

export interface DnsRecordSource {
  /** Every Service and EndpointSlice the source holds now. */
  objects(): ClusterObjects;
  /** Calls `listener` after each change (possibly many times for one burst); returns an unsubscribe. */
  subscribe(listener: () => void): () => void;
  /** Whether the first complete listing is in: before it, names in the zone are SERVFAIL. */
  synced(): boolean;
}

/** Objects handed over by the caller; synced from the start. */
export class StaticRecordSource implements DnsRecordSource {
  #objects: ClusterObjects;
  readonly #listeners = new Set<() => void>();

  constructor(objects: ClusterObjects = { services: [], endpointSlices: [] }) {
    this.#objects = objects;
  }

  objects(): ClusterObjects {
    return this.#objects;
  }

  /** Replaces every object; the server answers from them from its next query on. */
  replace(objects: ClusterObjects): void {
    this.#objects = objects;
    for (const listener of this.#listeners) listener();
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  synced(): boolean {
    return true;
  }
}

function registered(apiVersion: string, kind: string): ResourceType {
  const resource = resourceForKind(apiVersion, kind);
  if (!resource) throw new Error(`The API registry has no ${apiVersion} ${kind}`);
  return resource;
}

/** What of an object the zone reads: a change to anything else (status, managedFields) is ignored. */
function dnsView(object: KubeObject): string {
  if (object.kind === 'Service') {
    const spec = object.spec ?? {};
    return JSON.stringify([
      spec.type,
      spec.clusterIP,
      spec.clusterIPs,
      spec.externalName,
      spec.ports,
    ]);
  }
  return JSON.stringify([
    object.metadata.labels?.[serviceNameLabel],
    object.endpoints,
    object.ports,
  ]);
}

/** Services and EndpointSlices of every namespace, listed and watched from the API server. */
export class InformerRecordSource implements DnsRecordSource {
  readonly #services: Informer;
  readonly #slices: Informer;
  readonly #listeners = new Set<() => void>();
  #synced = false;

  constructor(client: ApiClient, log: (line: string) => void) {
    this.#services = new Informer(client, registered('v1', 'Service'), log);
    this.#slices = new Informer(client, registered('discovery.k8s.io/v1', 'EndpointSlice'), log);
    for (const informer of [this.#services, this.#slices]) {
      informer.on({
        added: () => {
          this.#changed();
        },
        deleted: () => {
          this.#changed();
        },
        updated: (old, object) => {
          if (dnsView(old) !== dnsView(object)) this.#changed();
        },
      });
    }
  }

  /** Lists and watches both kinds; resolves once both have listed. */
  async start(): Promise<void> {
    await Promise.all([this.#services.start(), this.#slices.start()]);
    this.#synced = true;
    this.#changed();
  }

  async stop(): Promise<void> {
    await Promise.all([this.#services.stop(), this.#slices.stop()]);
  }

  objects(): ClusterObjects {
    return { services: this.#services.list(), endpointSlices: this.#slices.list() };
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  synced(): boolean {
    return this.#synced;
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}
