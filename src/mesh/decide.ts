/**
 * The mesh layer of `strata explain`: for one connection between two
 * endpoints, what ambient mode does with it, computed from the same pure
 * model the node proxy will enforce (src/mesh/policy):
 *
 * - whether each pod is in the mesh (istio-cni's switches) and, if so, its
 *   identity (`spiffe://<trust domain>/ns/<ns>/sa/<service account>`);
 * - the enforcement point is the destination's node proxy: a destination
 *   outside the mesh leaves the mesh layer with nothing to say;
 * - the mTLS mode in force at the destination's port (PeerAuthentication):
 *   a source outside the mesh arrives in plaintext, which STRICT refuses;
 * - the L4 AuthorizationPolicy verdict and the policy that decided it.
 *
 * Only TCP is captured by the mesh; other protocols pass it by.
 */
import type { KubeObject } from '../api/types.js';
import { formatSpiffeId, type SpiffeId } from './identity/spiffe.js';
import {
  type AuthorizationDecision,
  authorize,
  type EffectiveMtls,
  effectiveMtls,
  type Enrollment,
  isEnrolled,
  meshAuthorizationPolicy,
  meshNamespace,
  meshPeerAuthentication,
  meshPod,
} from './policy/index.js';

export const defaultTrustDomain = 'cluster.local';

/** The objects the mesh layer reads, as the API serves them. */
export interface MeshObjects {
  pods: readonly KubeObject[];
  namespaces: readonly KubeObject[];
  peerAuthentications: readonly KubeObject[];
  authorizationPolicies: readonly KubeObject[];
}

/** One end of the connection as the mesh sees it. */
export interface MeshEndpoint {
  /** `namespace/name`, when the end is a pod. */
  pod?: string;
  address: string;
  enrollment?: Enrollment;
  /** The SPIFFE ID its certificate carries, when it is in the mesh. */
  identity?: string;
}

export type MeshDecision = {
  layer: 'mesh';
  verdict: 'allow' | 'deny';
  source: MeshEndpoint;
  destination: MeshEndpoint;
} & (
  | { reason: 'not-tcp' | 'destination-outside-mesh' }
  | {
      reason: 'plaintext-refused';
      mtls: EffectiveMtls;
    }
  | {
      reason: 'authorization';
      /** HBONE (mutual TLS) when the source is in the mesh, else plaintext into the destination's proxy. */
      transport: 'hbone' | 'plaintext';
      mtls: EffectiveMtls;
      authorization: AuthorizationDecision;
    }
);

export interface MeshQuery {
  /** `namespace/name` of the source pod, or undefined for a bare address. */
  sourcePod?: string;
  sourceAddress: string;
  destinationPod?: string;
  destinationAddress: string;
  protocol: string;
  port: number;
}

export interface MeshDecideOptions {
  trustDomain?: string;
  rootNamespace?: string;
}

function podByKey(objects: MeshObjects, key: string | undefined): KubeObject | undefined {
  if (key === undefined) return undefined;
  const slash = key.indexOf('/');
  const [namespace, name] = [key.slice(0, slash), key.slice(slash + 1)];
  return objects.pods.find(
    (p) => (p.metadata.namespace ?? 'default') === namespace && p.metadata.name === name,
  );
}

function endpointOf(
  objects: MeshObjects,
  key: string | undefined,
  address: string,
  trustDomain: string,
): { view: MeshEndpoint; identity?: SpiffeId; labels: Record<string, string> } {
  const object = podByKey(objects, key);
  if (!object || key === undefined) return { view: { address }, labels: {} };
  const pod = meshPod(object);
  const namespace = objects.namespaces.find((n) => n.metadata.name === pod.namespace);
  const enrollment = isEnrolled(pod, namespace ? meshNamespace(namespace) : undefined);
  const view: MeshEndpoint = { pod: key, address, enrollment };
  if (!enrollment.enrolled) return { view, labels: pod.labels };
  const identity = { trustDomain, namespace: pod.namespace, serviceAccount: pod.serviceAccount };
  view.identity = formatSpiffeId(identity);
  return { view, identity, labels: pod.labels };
}

/** What the mesh does with a connection from the query's source to its destination. */
export function decideMesh(
  objects: MeshObjects,
  query: MeshQuery,
  options: MeshDecideOptions = {},
): MeshDecision {
  const trustDomain = options.trustDomain ?? defaultTrustDomain;
  const policyOptions = options.rootNamespace ? { rootNamespace: options.rootNamespace } : {};
  const from = endpointOf(objects, query.sourcePod, query.sourceAddress, trustDomain);
  const to = endpointOf(objects, query.destinationPod, query.destinationAddress, trustDomain);
  const base = { layer: 'mesh' as const, source: from.view, destination: to.view };
  if (query.protocol !== 'TCP') return { ...base, verdict: 'allow', reason: 'not-tcp' };
  const destinationPod = podByKey(objects, query.destinationPod);
  if (!to.identity || !destinationPod) {
    return { ...base, verdict: 'allow', reason: 'destination-outside-mesh' };
  }
  const workload = meshPod(destinationPod);
  const mtls = effectiveMtls(
    { namespace: workload.namespace, labels: workload.labels },
    query.port,
    objects.peerAuthentications.map(meshPeerAuthentication),
    policyOptions,
  );
  if (!from.identity && !mtls.acceptsPlaintext) {
    return { ...base, verdict: 'deny', reason: 'plaintext-refused', mtls };
  }
  const authorization = authorize(
    {
      namespace: workload.namespace,
      labels: workload.labels,
      serviceAccount: workload.serviceAccount,
    },
    {
      ...(from.identity ? { sourceIdentity: from.identity } : {}),
      sourceIp: query.sourceAddress,
      destinationIp: query.destinationAddress,
      destinationPort: query.port,
    },
    objects.authorizationPolicies.map(meshAuthorizationPolicy),
    policyOptions,
  );
  return {
    ...base,
    verdict: authorization.verdict,
    reason: 'authorization',
    transport: from.identity ? 'hbone' : 'plaintext',
    mtls,
    authorization,
  };
}
