/**
 * SPIFFE IDs of Kubernetes workloads, in Istio's form:
 * `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
 *
 * Parsing is strict, as the SPIFFE ID specification (spiffe/spiffe
 * standards/SPIFFE-ID.md) asks of a verifier: the scheme and trust domain in
 * lowercase, trust domain characters `a-z 0-9 . - _`, path segments of
 * `a-z A-Z 0-9 . - _` that are neither empty nor `.`/`..`, no port, user info,
 * query or fragment, at most 2048 bytes. On top of that the path must be
 * exactly Istio's `/ns/<namespace>/sa/<service account>` (istio/istio
 * pkg/spiffe ParseIdentity), so a workload cannot claim some other shape.
 */
import { IdentityError } from './errors.js';

/** A workload's identity: who it runs as, in which trust domain. */
export interface SpiffeId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

const scheme = 'spiffe://';
const trustDomainPattern = /^[a-z0-9._-]+$/;
const segmentPattern = /^[a-zA-Z0-9._-]+$/;
// SPIFFE-ID.md 2.1 and 2.3: a trust domain is at most 255 bytes, the whole ID at most 2048.
const maxTrustDomainLength = 255;
const maxIdLength = 2048;

/** Why a trust domain is not valid, or undefined when it is. */
export function trustDomainProblem(trustDomain: string): string | undefined {
  if (trustDomain === '') return 'trustDomain must not be empty';
  if (trustDomain.length > maxTrustDomainLength) {
    return `trustDomain must be at most ${maxTrustDomainLength} characters: got ${trustDomain.length}`;
  }
  if (!trustDomainPattern.test(trustDomain)) {
    return `trustDomain must be lowercase letters, digits, ".", "-" or "_": got ${JSON.stringify(trustDomain)}`;
  }
  return undefined;
}

function segmentProblem(field: string, value: string): string | undefined {
  if (value === '') return `${field} must not be empty`;
  if (value === '.' || value === '..') return `${field} must not be "." or "..": got "${value}"`;
  if (!segmentPattern.test(value)) {
    return `${field} must be letters, digits, ".", "-" or "_": got ${JSON.stringify(value)}`;
  }
  return undefined;
}

/** Why an identity cannot be written as a SPIFFE ID, or undefined when it can. */
export function spiffeIdProblem(id: SpiffeId): string | undefined {
  const problem =
    trustDomainProblem(id.trustDomain) ??
    segmentProblem('namespace', id.namespace) ??
    segmentProblem('serviceAccount', id.serviceAccount);
  if (problem !== undefined) return problem;
  const length =
    scheme.length + id.trustDomain.length + id.namespace.length + id.serviceAccount.length + 8;
  if (length > maxIdLength) {
    return `a SPIFFE ID must be at most ${maxIdLength} bytes: this one would be ${length}`;
  }
  return undefined;
}

/** `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`; throws STRATA_ERR_SPIFFE_ID for an invalid part. */
export function formatSpiffeId(id: SpiffeId): string {
  const problem = spiffeIdProblem(id);
  if (problem !== undefined) {
    throw new IdentityError('STRATA_ERR_SPIFFE_ID', `Cannot make a SPIFFE ID: ${problem}`);
  }
  return `${scheme}${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/** The identity in a SPIFFE ID of Istio's shape, or undefined when `uri` is anything else. */
export function parseSpiffeId(uri: string): SpiffeId | undefined {
  if (uri.length > maxIdLength || !uri.startsWith(scheme)) return undefined;
  // Every character outside the allowed sets (":", "@", "?", "#", "%", upper case
  // in the trust domain) fails the patterns below, so ports, user info, queries,
  // fragments and percent-encoding are all refused without parsing them as a URL.
  const parts = uri.slice(scheme.length).split('/');
  if (parts.length !== 5) return undefined;
  const [trustDomain, ns, namespace, sa, serviceAccount] = parts as [
    string,
    string,
    string,
    string,
    string,
  ];
  if (ns !== 'ns' || sa !== 'sa') return undefined;
  const id = { trustDomain, namespace, serviceAccount };
  return spiffeIdProblem(id) === undefined ? id : undefined;
}

/** Whether two identities are the same workload identity. */
export function sameSpiffeId(a: SpiffeId, b: SpiffeId): boolean {
  return (
    a.trustDomain === b.trustDomain &&
    a.namespace === b.namespace &&
    a.serviceAccount === b.serviceAccount
  );
}
