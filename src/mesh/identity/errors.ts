/**
 * The errors of mesh identity, each with a stable code: a SPIFFE ID that is
 * malformed, a certificate authority whose files are missing or do not fit
 * together, a certificate request the CA refuses, and a peer whose certificate
 * does not prove the identity a connection expects. Messages name the file,
 * field or certificate at fault and what was expected.
 */

export type IdentityErrorCode =
  /** A SPIFFE ID (or one of its parts) is not `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`. */
  | 'STRATA_ERR_SPIFFE_ID'
  /** The CA's directory: a file is missing, unreadable, or does not fit the others. The error's `file` names it. */
  | 'STRATA_ERR_CA_FILES'
  /** An option of the CA is out of range (trust domain, lifetimes). */
  | 'STRATA_ERR_CA_OPTION'
  /** The CA refused a certificate signing request: its signature, its key, the identity, the lifetime. */
  | 'STRATA_ERR_CSR_REFUSED';

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
  /** For STRATA_ERR_CA_FILES: the path of the file at fault. */
  readonly file: string | undefined;

  constructor(
    readonly code: IdentityErrorCode,
    message: string,
    options?: ErrorOptions & { file?: string },
  ) {
    super(message, options);
    this.file = options?.file;
  }
}

/** Why a peer's certificate chain does not prove the identity expected of it. */
export type PeerIdentityReason =
  | 'untrusted'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-trust-domain'
  | 'wrong-identity'
  | 'no-spiffe-id'
  | 'malformed';

/** A peer's certificate chain refused by verifyPeerChain; `reason` says which check failed. */
export class PeerIdentityError extends Error {
  override readonly name = 'PeerIdentityError';
  readonly code = 'STRATA_ERR_PEER_IDENTITY';

  constructor(
    readonly reason: PeerIdentityReason,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
