/**
 * The CA service's wire contract, shared by the controller's server
 * (service.ts) and the node's client (src/mesh/certificates/): HTTP/1.1 over
 * a unix socket, JSON bodies, a node's bearer token in `Authorization`. The
 * shape follows istiod's IstioCertificateService.CreateCertificate (a CSR
 * and a requested lifetime in, a chain and the roots out), with the identity
 * named in the request, as ztunnel's impersonation request names it, since
 * the caller is a node and not the workload.
 *
 *   POST /v1/certificates   { csr, identity: { namespace, serviceAccount, trustDomain? }, ttlSeconds? }
 *                           → 200 { certChain, rootCert, notBefore, notAfter, spiffeId }
 *   GET  /v1/trust-bundle   → 200 { rootCert, trustDomain }
 *
 * Every failure is `{ code, message }` with one of the codes below.
 */
import type { IdentityErrorCode } from '../identity/errors.js';

export const certificatesPath = '/v1/certificates';
export const trustBundlePath = '/v1/trust-bundle';

/** The largest request body the service reads: a P-256 CSR is under 1 KiB. */
export const maxRequestBodyBytes = 64 * 1024;

/** The identity a request asks for; the trust domain is the CA's unless named. */
export interface RequestedIdentity {
  namespace: string;
  serviceAccount: string;
  trustDomain?: string;
}

/** The body of POST /v1/certificates. */
export interface CertificateRequestBody {
  /** A PEM PKCS#10 request over the workload's key. */
  csr: string;
  identity: RequestedIdentity;
  /** The lifetime asked for; the CA's default (24 h) when absent. */
  ttlSeconds?: number;
}

/** The body of a 200 answer to POST /v1/certificates. */
export interface CertificateResponseBody {
  /** PEM certificates, the workload's first, then any intermediates; never the root. */
  certChain: string[];
  /** PEM of the root(s) peers trust: the trust bundle. */
  rootCert: string;
  /** ISO 8601. */
  notBefore: string;
  /** ISO 8601. */
  notAfter: string;
  /** The identity issued, as the certificate's URI SAN holds it. */
  spiffeId: string;
}

/** The body of a 200 answer to GET /v1/trust-bundle. */
export interface TrustBundleResponseBody {
  rootCert: string;
  trustDomain: string;
}

/** The codes of the service's error answers. */
export type CaServiceErrorCode =
  /** 401: no `Authorization: Bearer` token, or one that is no node's. */
  | 'STRATA_ERR_CA_UNAUTHENTICATED'
  /** 403: the node may not obtain the identity (no pod bound to it runs as it). */
  | 'STRATA_ERR_CA_FORBIDDEN'
  /** 400: the body is not the JSON object above. */
  | 'STRATA_ERR_CA_BAD_REQUEST'
  /** 413: the body is larger than maxRequestBodyBytes. */
  | 'STRATA_ERR_CA_BODY_TOO_LARGE'
  /** 404: no such path. */
  | 'STRATA_ERR_CA_NOT_FOUND'
  /** 405: the path does not take this method (the answer's `Allow` says which it takes). */
  | 'STRATA_ERR_CA_METHOD_NOT_ALLOWED'
  /** 500: the service failed; its log says why. */
  | 'STRATA_ERR_CA_INTERNAL';

/** An error answer's body; 400 for a CSR the CA refuses carries the CA's own STRATA_ERR_CSR_REFUSED. */
export interface CaServiceErrorBody {
  code: CaServiceErrorCode | IdentityErrorCode;
  message: string;
}

export type ParsedCertificateRequest =
  { ok: true; request: CertificateRequestBody } | { ok: false; message: string };

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `a string`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringField(
  record: Record<string, unknown>,
  field: string,
  path: string,
): string | { problem: string } {
  const value = record[field];
  if (typeof value === 'string' && value !== '') return value;
  if (value === undefined) return { problem: `${path} is required` };
  return {
    problem: `${path} must be a non-empty string: got ${value === '' ? 'an empty string' : describe(value)}`,
  };
}

/** The body of POST /v1/certificates checked field by field; the CA checks the CSR itself. */
export function parseCertificateRequest(text: string): ParsedCertificateRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return { ok: false, message: `The request body is not JSON: ${why}` };
  }
  if (!isRecord(body)) {
    return {
      ok: false,
      message: `The request body must be a JSON object with "csr" and "identity": got ${describe(body)}`,
    };
  }
  const csr = stringField(body, 'csr', 'csr');
  if (typeof csr !== 'string') return { ok: false, message: csr.problem };
  if (!isRecord(body.identity)) {
    return {
      ok: false,
      message:
        body.identity === undefined
          ? 'identity is required: { "namespace": ..., "serviceAccount": ... }'
          : `identity must be an object with "namespace" and "serviceAccount": got ${describe(body.identity)}`,
    };
  }
  const namespace = stringField(body.identity, 'namespace', 'identity.namespace');
  if (typeof namespace !== 'string') return { ok: false, message: namespace.problem };
  const serviceAccount = stringField(body.identity, 'serviceAccount', 'identity.serviceAccount');
  if (typeof serviceAccount !== 'string') return { ok: false, message: serviceAccount.problem };
  const identity: RequestedIdentity = { namespace, serviceAccount };
  if (body.identity.trustDomain !== undefined) {
    const trustDomain = stringField(body.identity, 'trustDomain', 'identity.trustDomain');
    if (typeof trustDomain !== 'string') return { ok: false, message: trustDomain.problem };
    identity.trustDomain = trustDomain;
  }
  const request: CertificateRequestBody = { csr, identity };
  if (body.ttlSeconds !== undefined) {
    const ttl = body.ttlSeconds;
    if (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl <= 0) {
      return {
        ok: false,
        message: `ttlSeconds must be a whole number of seconds above 0: got ${describe(ttl)}`,
      };
    }
    request.ttlSeconds = ttl;
  }
  return { ok: true, request };
}
