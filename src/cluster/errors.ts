/**
 * The errors `strata up`, `down` and `status` report, each with a stable
 * code. Messages say what was wrong and what to do about it; the CLI prints
 * the message (and its causes), never a stack unless STRATA_DEBUG=1.
 */

export type ClusterErrorCode =
  /** An option of `strata up` is malformed or inconsistent with another. */
  | 'STRATA_ERR_CLUSTER_OPTION'
  /** The cluster is already up, or something of it is left over. */
  | 'STRATA_ERR_CLUSTER_EXISTS'
  /** The cluster is not up: no state directory, no socket. */
  | 'STRATA_ERR_CLUSTER_NOT_UP'
  /** What `up` needs is missing: root, the built executables, a tool. */
  | 'STRATA_ERR_CLUSTER_PREREQUISITE'
  /** A step of `up` failed: a namespace, a link, a component that did not start. */
  | 'STRATA_ERR_CLUSTER_UP'
  /** `down` could not remove something: the message lists what. */
  | 'STRATA_ERR_CLUSTER_DOWN'
  /** A component subcommand (`strata agent`, `strata controller`) is not available. */
  | 'STRATA_ERR_COMPONENT_MISSING';

export class ClusterError extends Error {
  override readonly name = 'ClusterError';

  constructor(
    readonly code: ClusterErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
