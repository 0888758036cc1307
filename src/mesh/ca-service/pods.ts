/**
 * The pods the CA service authorizes against (mayIssue): the controller's
 * pod informer cache, and, before a refusal, a fresh listing of the node's
 * pods from the API server. The cache can be a moment behind the node: an
 * agent that sees a pod bound to it may ask for its identity before the
 * controller's watch has delivered the binding, and a refusal then would
 * fail a pod's start for nothing. A stale cache that still holds a deleted
 * pod errs the other way for the same moment, as istiod's does.
 */
import { resourceForKind } from '../../api/registry.js';
import type { KubeObject, ResourceType } from '../../api/types.js';
import type { ApiClient } from '../../client/index.js';
import type { PodBinding } from '../identity/authorize.js';

/** Where the service reads which pods run where. */
export interface PodSource {
  /** Every pod as last seen. */
  cached(): Iterable<PodBinding>;
  /** The pods bound to `node` now, read from the API server; consulted only before refusing. */
  boundTo?(node: string): Promise<Iterable<PodBinding>>;
}

/** What mayIssue reads of a pod: its namespace, service account, node, phase and deletion. */
export function podBinding(pod: KubeObject): PodBinding {
  const spec = pod.spec ?? {};
  // The API defaults serviceAccountName from the deprecated serviceAccount, then to "default".
  const account = spec.serviceAccountName ?? spec.serviceAccount;
  const binding: PodBinding = {
    namespace: pod.metadata.namespace ?? 'default',
    serviceAccount: typeof account === 'string' && account !== '' ? account : 'default',
    deleted:
      pod.metadata.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null,
  };
  if (typeof spec.nodeName === 'string' && spec.nodeName !== '') binding.nodeName = spec.nodeName;
  const phase = pod.status?.phase;
  if (typeof phase === 'string') binding.phase = phase;
  return binding;
}

function* bindings(pods: Iterable<KubeObject>): Generator<PodBinding> {
  for (const pod of pods) yield podBinding(pod);
}

/** Pods from an informer's cache, confirmed against the API server (`client`) before a refusal. */
export function informerPodSource(
  informer: { list(): KubeObject[] },
  client?: ApiClient,
): PodSource {
  const source: PodSource = { cached: () => bindings(informer.list()) };
  const podResource = resourceForKind('v1', 'Pod') as ResourceType;
  if (client !== undefined) {
    source.boundTo = async (node) => {
      const list = await client.list(podResource, { fieldSelector: { 'spec.nodeName': node } });
      return bindings(list.items);
    };
  }
  return source;
}
