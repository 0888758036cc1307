/**
 * CNI error codes and the error class every plugin failure is reported with.
 *
 * CNI spec 1.1.0, "Error": codes 1-99 are reserved by the spec, 100+ are
 * plugin-specific. A failure is printed on stdout as
 * `{cniVersion, code, msg, details}` and the plugin exits non-zero.
 */
export const CniErrorCode = {
  /** The config's cniVersion is not one the plugin supports. */
  IncompatibleVersion: 1,
  /** A field of the network configuration is not supported; the message names key and value. */
  UnsupportedField: 2,
  /** The container (its network namespace) is unknown or does not exist. */
  UnknownContainer: 3,
  /** A required environment variable is missing or invalid. */
  InvalidEnvironmentVariables: 4,
  /** An I/O failure, for example reading stdin. */
  IoFailure: 5,
  /** The content could not be decoded (malformed JSON). */
  DecodingFailure: 6,
  /** The network configuration is invalid. */
  InvalidNetworkConfig: 7,
  /** A transient condition; the runtime should retry later. */
  TryAgainLater: 11,
  /** STATUS: the plugin cannot serve ADD requests. */
  PluginNotAvailable: 50,
  /** STATUS: the plugin can serve ADD, but with limited connectivity. */
  PluginNotAvailableLimitedConnectivity: 51,
  /** Anything the spec has no code for: a kernel operation that failed. */
  Internal: 999,
} as const;

export type CniErrorCode = (typeof CniErrorCode)[keyof typeof CniErrorCode];

/** A failure reported to the container runtime with a CNI error code. */
export class CniError extends Error {
  readonly code: CniErrorCode;
  readonly details: string;

  constructor(
    code: CniErrorCode,
    message: string,
    options?: { details?: string; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CniError';
    this.code = code;
    this.details = options?.details ?? '';
  }
}

/** The message of an error and of every error in its `cause` chain, joined. */
export function messageChain(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  while (current !== undefined && current !== null && parts.length < 8) {
    if (current instanceof Error) {
      parts.push(current.message);
      current = current.cause;
    } else {
      parts.push(typeof current === 'string' ? current : JSON.stringify(current));
      break;
    }
  }
  return parts.join(': ');
}
