/**
 * The errors of the node proxy's telemetry, each with a stable code: a stats
 * or readiness server that cannot listen on its address.
 */

export type TelemetryErrorCode =
  /** The stats (15020) or readiness (15021) server could not listen on its address. */
  'STRATA_ERR_TELEMETRY_LISTEN';

export class TelemetryListenError extends Error {
  override readonly name = 'TelemetryListenError';
  readonly code = 'STRATA_ERR_TELEMETRY_LISTEN' satisfies TelemetryErrorCode;
}
