/**
 * What a node's certificate client reports, each with a stable code: the CA
 * refused an identity to this node (403, final: retrying cannot help until a
 * pod with that identity is bound to the node), any other failure to obtain
 * a certificate (retried with backoff), and a request cut short because the
 * identity was released or the manager closed.
 */
import type { SpiffeId } from '../identity/spiffe.js';

/** The CA refused this node the identity (403): no pod bound to the node runs as it. */
export class CertificateRefusedError extends Error {
  override readonly name = 'CertificateRefusedError';
  readonly code = 'STRATA_ERR_CERTIFICATE_REFUSED';

  constructor(
    readonly identity: SpiffeId,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export type CertificateClientErrorCode =
  /** The CA could not be reached, answered with an error other than 403, or sent what does not verify. */
  | 'STRATA_ERR_CA_REQUEST'
  /** The identity was released, or the manager closed, before a certificate arrived. */
  | 'STRATA_ERR_CERTIFICATE_CANCELLED';

export class CertificateClientError extends Error {
  override readonly name = 'CertificateClientError';
  /** The HTTP status of the CA's answer, when there was one. */
  readonly status: number | undefined;

  constructor(
    readonly code: CertificateClientErrorCode,
    message: string,
    options?: ErrorOptions & { status?: number },
  ) {
    super(message, options);
    this.status = options?.status;
  }
}
