/**
 * The errors of the HBONE transport, each with a stable code. A failed
 * CONNECT names why in `reason`, so the node proxy can map it to its retry
 * policy (Istio retries `connect-failure` and `refused-stream`) and to the
 * access log's response flags.
 */

export type HboneErrorCode =
  /** A CONNECT through a tunnel failed: `reason` says at which step. */
  | 'STRATA_ERR_HBONE_CONNECT'
  /** The HBONE server could not listen on its address. */
  | 'STRATA_ERR_HBONE_LISTEN';

/** The step at which a CONNECT failed. */
export type HboneConnectReason =
  /** The TCP connection to the peer proxy failed (refused, unreachable). */
  | 'unreachable'
  /**
   * The TLS handshake failed, or the peer closed the connection right after
   * it without answering (TLS 1.3 servers check the client's certificate
   * after the handshake completes for the client: expired, untrusted, or of
   * another trust domain).
   */
  | 'tls'
  /** The peer proxy presented a certificate for another identity than expected. */
  | 'peer-identity'
  /** The peer proxy answered the CONNECT with a status other than 200. */
  | 'refused'
  /** The peer reset the stream (or closed the session) before answering. */
  | 'reset'
  /** No answer within the connect timeout. */
  | 'timeout'
  /** The client was closed. */
  | 'closed';

/** Where a CONNECT went: the destination workload and the proxy that terminates the tunnel. */
export interface HboneConnectTarget {
  /** `<ip>:<port>` of the destination workload (the CONNECT authority). */
  destination: string;
  /** `<ip>:<port>` of the peer proxy the tunnel goes to. */
  peer: string;
}

export class HboneConnectError extends Error {
  override readonly name = 'HboneConnectError';
  readonly code = 'STRATA_ERR_HBONE_CONNECT' satisfies HboneErrorCode;
  /** The status the peer answered with, for reason `refused`. */
  readonly status: number | undefined;
  /** The HTTP/2 error code of the reset or GOAWAY, for reason `reset`. */
  readonly http2Code: number | undefined;

  constructor(
    readonly reason: HboneConnectReason,
    readonly target: HboneConnectTarget,
    message: string,
    options?: ErrorOptions & { status?: number; http2Code?: number },
  ) {
    super(message, options);
    this.status = options?.status;
    this.http2Code = options?.http2Code;
  }
}

export class HboneListenError extends Error {
  override readonly name = 'HboneListenError';
  readonly code = 'STRATA_ERR_HBONE_LISTEN' satisfies HboneErrorCode;
}

/**
 * What a refusal status means, in the sense ztunnel's inbound gives it
 * (istio/ztunnel src/proxy/inbound.rs): 401 for an AuthorizationPolicy deny,
 * 503 when the destination workload could not be reached, 400 for a request
 * it cannot parse.
 */
export function refusalMeaning(status: number): string {
  switch (status) {
    case 400:
      return 'the peer proxy could not parse the request';
    case 401:
    case 403:
      return 'denied by authorization policy';
    case 405:
      return 'the peer proxy accepts only CONNECT';
    case 503:
      return 'the peer proxy could not reach the destination';
    default:
      return status >= 500 ? 'the peer proxy failed' : 'refused by the peer proxy';
  }
}
