/**
 * The node proxy's workload index, pure: API objects (Pods, Namespaces,
 * PeerAuthentications, AuthorizationPolicies) in, one record per pod IP out,
 * with what the proxy needs to route, authorize and label a connection:
 * who the pod is, the SPIFFE ID it runs as, the node it runs on and whether
 * ambient mode captures it. This is strata's stand-in for istiod's workload
 * xDS (docs/mesh.md, "Next: the node proxy"); the later L7 half reads the
 * same index.
 *
 * Patched object by object, as informers report changes: a namespace change
 * recomputes the enrollment of that namespace's pods only. Pods that have
 * finished (Succeeded, Failed), are being deleted without an address, or use
 * the host's network have no entry: their address is not theirs alone.
 */
import type { KubeObject } from '../../api/types.js';
import { defaultTrustDomain } from '../identity/ca.js';
import type { SpiffeId } from '../identity/spiffe.js';
import {
  isEnrolled,
  meshAuthorizationPolicy,
  meshNamespace,
  meshPeerAuthentication,
  meshPod,
  type EnrollmentOptions,
  type MeshAuthorizationPolicy,
  type MeshNamespace,
  type MeshPeerAuthentication,
} from '../policy/index.js';
import { workloadLabels, type WorkloadLabels } from '../telemetry/workload-labels.js';

/** One pod address as the proxy sees it. */
export interface Workload {
  ip: string;
  namespace: string;
  name: string;
  serviceAccount: string;
  identity: SpiffeId;
  /** spec.nodeName; '' while unscheduled. */
  nodeName: string;
  /** status.hostIP: the node's address; '' when not reported yet. */
  hostIP: string;
  labels: Readonly<Record<string, string>>;
  enrolled: boolean;
  /** Names for the metrics and the access log. */
  telemetry: WorkloadLabels;
}

export interface WorkloadIndexOptions extends EnrollmentOptions {
  /** `cluster.local` by default. */
  trustDomain?: string;
}

/** `namespace/name`. */
function objectKey(object: KubeObject): string {
  return `${object.metadata.namespace ?? 'default'}/${object.metadata.name ?? ''}`;
}

/** The pod's addresses (status.podIPs, else status.podIP), de-duplicated. */
export function podAddresses(pod: KubeObject): string[] {
  const status = (pod.status ?? {}) as { podIP?: unknown; podIPs?: unknown };
  const out: string[] = [];
  if (Array.isArray(status.podIPs)) {
    for (const entry of status.podIPs as unknown[]) {
      const ip = (entry as { ip?: unknown } | null)?.ip;
      if (typeof ip === 'string' && ip !== '' && !out.includes(ip)) out.push(ip);
    }
  }
  if (typeof status.podIP === 'string' && status.podIP !== '' && !out.includes(status.podIP)) {
    out.push(status.podIP);
  }
  return out;
}

function finished(pod: KubeObject): boolean {
  const phase = (pod.status as { phase?: unknown } | undefined)?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

export class WorkloadIndex {
  readonly trustDomain: string;
  readonly #enrollment: EnrollmentOptions;
  readonly #pods = new Map<string, KubeObject>();
  readonly #namespaces = new Map<string, MeshNamespace>();
  readonly #peerAuthentications = new Map<string, MeshPeerAuthentication>();
  readonly #authorizationPolicies = new Map<string, MeshAuthorizationPolicy>();
  /** Pod key → its workloads (one per address). */
  readonly #byPod = new Map<string, Workload[]>();
  readonly #byIp = new Map<string, Workload>();
  #generation = 0;

  constructor(options: WorkloadIndexOptions = {}) {
    this.trustDomain = options.trustDomain ?? defaultTrustDomain;
    this.#enrollment =
      options.excludeNamespaces === undefined
        ? {}
        : { excludeNamespaces: options.excludeNamespaces };
  }

  /** Bumped by every change that may alter a lookup, for callers that cache. */
  get generation(): number {
    return this.#generation;
  }

  /** An index of these objects at once. */
  static from(
    objects: {
      pods?: readonly KubeObject[];
      namespaces?: readonly KubeObject[];
      peerAuthentications?: readonly KubeObject[];
      authorizationPolicies?: readonly KubeObject[];
    },
    options: WorkloadIndexOptions = {},
  ): WorkloadIndex {
    const index = new WorkloadIndex(options);
    for (const ns of objects.namespaces ?? []) index.upsertNamespace(ns);
    for (const pa of objects.peerAuthentications ?? []) index.upsertPeerAuthentication(pa);
    for (const ap of objects.authorizationPolicies ?? []) index.upsertAuthorizationPolicy(ap);
    for (const pod of objects.pods ?? []) index.upsertPod(pod);
    return index;
  }

  upsertPod(pod: KubeObject): void {
    const key = objectKey(pod);
    this.#pods.set(key, pod);
    this.#reindexPod(key);
  }

  deletePod(pod: KubeObject | string): void {
    const key = typeof pod === 'string' ? pod : objectKey(pod);
    this.#pods.delete(key);
    this.#reindexPod(key);
  }

  upsertNamespace(namespace: KubeObject): void {
    const ns = meshNamespace(namespace);
    this.#namespaces.set(ns.name, ns);
    this.#reindexNamespace(ns.name);
  }

  deleteNamespace(namespace: KubeObject | string): void {
    const name = typeof namespace === 'string' ? namespace : (namespace.metadata.name ?? '');
    this.#namespaces.delete(name);
    this.#reindexNamespace(name);
  }

  upsertPeerAuthentication(object: KubeObject): void {
    this.#peerAuthentications.set(objectKey(object), meshPeerAuthentication(object));
    this.#generation += 1;
  }

  deletePeerAuthentication(object: KubeObject | string): void {
    this.#peerAuthentications.delete(typeof object === 'string' ? object : objectKey(object));
    this.#generation += 1;
  }

  upsertAuthorizationPolicy(object: KubeObject): void {
    this.#authorizationPolicies.set(objectKey(object), meshAuthorizationPolicy(object));
    this.#generation += 1;
  }

  deleteAuthorizationPolicy(object: KubeObject | string): void {
    this.#authorizationPolicies.delete(typeof object === 'string' ? object : objectKey(object));
    this.#generation += 1;
  }

  /** The workload at `ip`, or undefined when no running pod has it. */
  byIp(ip: string): Workload | undefined {
    return this.#byIp.get(ip);
  }

  /** Every indexed workload (one per pod address). */
  workloads(): Workload[] {
    return [...this.#byIp.values()];
  }

  /** The enrolled workloads on `nodeName`: what the node captures and holds certificates for. */
  enrolledOn(nodeName: string): Workload[] {
    return this.workloads().filter((w) => w.enrolled && w.nodeName === nodeName);
  }

  peerAuthentications(): MeshPeerAuthentication[] {
    return [...this.#peerAuthentications.values()];
  }

  authorizationPolicies(): MeshAuthorizationPolicy[] {
    return [...this.#authorizationPolicies.values()];
  }

  #reindexNamespace(name: string): void {
    for (const [key, pod] of this.#pods) {
      if ((pod.metadata.namespace ?? 'default') === name) this.#reindexPod(key);
    }
    this.#generation += 1;
  }

  #reindexPod(key: string): void {
    for (const old of this.#byPod.get(key) ?? []) {
      if (this.#byIp.get(old.ip) === old) this.#byIp.delete(old.ip);
    }
    this.#byPod.delete(key);
    this.#generation += 1;
    const pod = this.#pods.get(key);
    if (pod === undefined || finished(pod)) return;
    const mesh = meshPod(pod);
    if (mesh.hostNetwork) return;
    const ips = podAddresses(pod);
    if (ips.length === 0) return;
    const enrolled = isEnrolled(mesh, this.#namespaces.get(mesh.namespace), this.#enrollment);
    const spec = pod.spec ?? {};
    const status = (pod.status ?? {}) as { hostIP?: unknown };
    const entries = ips.map((ip): Workload => ({
      ip,
      namespace: mesh.namespace,
      name: mesh.name,
      serviceAccount: mesh.serviceAccount,
      identity: {
        trustDomain: this.trustDomain,
        namespace: mesh.namespace,
        serviceAccount: mesh.serviceAccount,
      },
      nodeName: typeof spec.nodeName === 'string' ? spec.nodeName : '',
      hostIP: typeof status.hostIP === 'string' ? status.hostIP : '',
      labels: mesh.labels,
      enrolled: enrolled.enrolled,
      telemetry: workloadLabels(pod),
    }));
    this.#byPod.set(key, entries);
    for (const entry of entries) this.#byIp.set(entry.ip, entry);
  }
}
