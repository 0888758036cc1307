/**
 * Which identities a node may obtain certificates for: istiod's node
 * authorizer for ztunnel (security/pkg/server/ca/node_auth.go,
 * ClusterNodeAuthorizer.authenticateImpersonation). A node proxy asks for
 * the identities of the workloads it serves, so the CA signs an identity for
 * a node only while some pod bound to that node runs as that namespace and
 * service account. A node can then never obtain another node's workloads'
 * identities. strata is a little stricter than istiod, which counts every
 * pod bound to the node: pods that finished (Succeeded, Failed) or are being
 * deleted no longer count.
 */
import { formatSpiffeId, spiffeIdProblem, type SpiffeId } from './spiffe.js';

/** What the authorizer needs of a pod: where it is bound and whom it runs as. */
export interface PodBinding {
  namespace: string;
  /** spec.serviceAccountName ("default" when the pod names none). */
  serviceAccount: string;
  /** spec.nodeName: unset until the pod is scheduled. */
  nodeName?: string;
  /** status.phase */
  phase?: string;
  /** Whether metadata.deletionTimestamp is set. */
  deleted?: boolean;
}

export type IssueDecision = { allowed: true } | { allowed: false; reason: string };

const terminalPhases = new Set(['Succeeded', 'Failed']);

/** Whether `node` may obtain a certificate for `identity`, given the cluster's pods. */
export function mayIssue(
  node: string,
  identity: SpiffeId,
  pods: Iterable<PodBinding>,
  trustDomain: string,
): IssueDecision {
  if (node === '') return { allowed: false, reason: 'The request names no node' };
  const problem = spiffeIdProblem(identity);
  if (problem !== undefined) {
    return { allowed: false, reason: `The identity is not valid: ${problem}` };
  }
  const id = formatSpiffeId(identity);
  if (identity.trustDomain !== trustDomain) {
    return {
      allowed: false,
      reason: `${id} is outside trust domain "${trustDomain}", the only one this CA signs for`,
    };
  }
  let finished = 0;
  let deleting = 0;
  const elsewhere = new Set<string>();
  for (const pod of pods) {
    if (pod.namespace !== identity.namespace || pod.serviceAccount !== identity.serviceAccount) {
      continue;
    }
    if (pod.nodeName !== node) {
      if (pod.nodeName !== undefined && pod.nodeName !== '') elsewhere.add(pod.nodeName);
      continue;
    }
    if (pod.deleted === true) deleting++;
    else if (pod.phase !== undefined && terminalPhases.has(pod.phase)) finished++;
    else return { allowed: true };
  }
  const subject = `service account "${identity.serviceAccount}" in namespace "${identity.namespace}"`;
  if (finished + deleting > 0) {
    const states = [
      finished > 0 ? `${finished} finished` : '',
      deleting > 0 ? `${deleting} being deleted` : '',
    ]
      .filter((s) => s !== '')
      .join(' and ');
    return {
      allowed: false,
      reason: `Node "${node}" may not obtain ${id}: its only pods running as ${subject} are ${states}`,
    };
  }
  if (elsewhere.size > 0) {
    const nodes = [...elsewhere]
      .sort()
      .map((n) => `"${n}"`)
      .join(', ');
    return {
      allowed: false,
      reason: `Node "${node}" may not obtain ${id}: pods running as ${subject} are bound to other nodes (${nodes}), not to it`,
    };
  }
  return {
    allowed: false,
    reason: `Node "${node}" may not obtain ${id}: no pod bound to it runs as ${subject}`,
  };
}
