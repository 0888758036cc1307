/**
 * One CONNECT stream over a pooled HBONE session: the request (authority,
 * `forwarded`), the peer proxy's answer, the connect deadline, and the
 * HboneConnectError that names why a stream failed.
 */
import { constants as h2, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';
import type { HboneConnectOptions } from './client.js';
import { forwardedFor } from './connect-request.js';
import { HboneConnectError, refusalMeaning, type HboneConnectTarget } from './errors.js';
import { sessionError, type PooledSession } from './session.js';

/**
 * Sends the CONNECT on `pooled` and resolves with the stream once the peer
 * answered 200. `handOver` runs once the stream exists (it now holds the
 * session reservation); `release` runs when the stream closes.
 */
export async function openStream(
  pooled: PooledSession,
  options: HboneConnectOptions,
  target: HboneConnectTarget,
  deadline: number,
  handOver: () => void,
  release: () => void,
): Promise<ClientHttp2Stream> {
  const headers: OutgoingHttpHeaders = {
    ...options.headers,
    ':method': 'CONNECT',
    ':authority': target.destination,
  };
  if (options.sourceAddress !== undefined) headers.forwarded = forwardedFor(options.sourceAddress);
  let stream: ClientHttp2Stream;
  try {
    stream = pooled.session.request(headers, { endStream: false });
  } catch (error) {
    // The session closed or got GOAWAY between acquire and request.
    throw new HboneConnectError('reset', target, `The tunnel to ${target.peer} is going away`, {
      cause: error,
      http2Code: h2.NGHTTP2_REFUSED_STREAM,
    });
  }
  handOver();
  stream.once('close', () => {
    release();
  });
  const answered = new Promise<ClientHttp2Stream>((resolve, reject) => {
    const onError = (error: Error) => {
      reject(refusedCertificate(pooled, target) ?? streamError(error, stream, target));
    };
    const onClose = () => {
      reject(
        refusedCertificate(pooled, target) ??
          new HboneConnectError(
            'reset',
            target,
            `The proxy at ${target.peer} reset the CONNECT to ${target.destination} (HTTP/2 error ${stream.rstCode})`,
            { http2Code: stream.rstCode },
          ),
      );
    };
    stream.once('error', onError);
    stream.once('close', onClose);
    stream.once('response', (responseHeaders) => {
      stream.off('error', onError);
      stream.off('close', onClose);
      pooled.answered = true;
      const status = Number(responseHeaders[':status']);
      if (status === 200) {
        // A later reset shows as 'close' and rstCode (relay() reads them); an
        // 'error' nobody listened for would take the whole proxy down.
        stream.on('error', () => undefined);
        resolve(stream);
        return;
      }
      stream.close(h2.NGHTTP2_CANCEL);
      reject(
        new HboneConnectError(
          'refused',
          target,
          `The proxy at ${target.peer} refused the CONNECT to ${target.destination} with status ${status}: ${refusalMeaning(status)}`,
          { status },
        ),
      );
    });
  });
  answered.catch(() => undefined);
  try {
    return await withDeadline(answered, deadline, options.signal, target, () => {
      stream.close(h2.NGHTTP2_CANCEL);
    });
  } catch (error) {
    if (!stream.closed) stream.close(h2.NGHTTP2_CANCEL);
    throw error;
  }
}

/** A refused stream (GOAWAY race, the peer's stream limit) is worth one more try on a new session. */
export function isRetryable(error: HboneConnectError): boolean {
  return error.reason === 'reset' && error.http2Code === h2.NGHTTP2_REFUSED_STREAM;
}

/** Waits for `promise` until the deadline or the signal, then calls `cancel` and rejects. */
export async function withDeadline<T>(
  promise: Promise<T>,
  deadline: number,
  signal: AbortSignal | undefined,
  target: HboneConnectTarget,
  cancel: () => void,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_resolve, reject) => {
    const fail = (error: HboneConnectError) => {
      cancel();
      reject(error);
    };
    timer = setTimeout(
      () => {
        fail(
          new HboneConnectError(
            'timeout',
            target,
            `No answer from the proxy at ${target.peer} for the CONNECT to ${target.destination} in time`,
          ),
        );
      },
      Math.max(0, deadline - Date.now()),
    );
    if (signal !== undefined) {
      onAbort = () => {
        fail(
          new HboneConnectError('closed', target, 'The CONNECT was abandoned', {
            cause: signal.reason,
          }),
        );
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([promise, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * The error for a session the peer dropped before answering anything: in TLS
 * 1.3 the server checks our certificate after our side of the handshake is
 * done, so its refusal shows as a closed connection (Node sends no alert) or,
 * from a strata server, GOAWAY(INADEQUATE_SECURITY). Undefined otherwise.
 */
function refusedCertificate(
  pooled: PooledSession,
  target: HboneConnectTarget,
): HboneConnectError | undefined {
  const presented = `our certificate for ${pooled.sourceId}`;
  if (pooled.goawayCode === h2.NGHTTP2_INADEQUATE_SECURITY) {
    return new HboneConnectError(
      'tls',
      target,
      `The proxy at ${target.peer} refused ${presented} (GOAWAY INADEQUATE_SECURITY)`,
      { http2Code: pooled.goawayCode },
    );
  }
  if (!pooled.answered && (pooled.session.closed || pooled.session.destroyed)) {
    return new HboneConnectError(
      'tls',
      target,
      `The proxy at ${target.peer} closed the connection right after the TLS handshake, before answering the CONNECT to ${target.destination}: it did not accept ${presented} (expired, untrusted, or of another trust domain)`,
    );
  }
  return undefined;
}

/** Why a CONNECT stream failed before its answer. */
function streamError(
  error: Error,
  stream: ClientHttp2Stream,
  target: HboneConnectTarget,
): HboneConnectError {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (code === 'ERR_HTTP2_STREAM_ERROR' || code === 'ERR_HTTP2_GOAWAY_SESSION') {
    const http2Code =
      code === 'ERR_HTTP2_GOAWAY_SESSION' ? h2.NGHTTP2_REFUSED_STREAM : stream.rstCode;
    return new HboneConnectError(
      'reset',
      target,
      `The proxy at ${target.peer} reset the CONNECT to ${target.destination}: ${error.message}`,
      { cause: error, http2Code },
    );
  }
  return sessionError(error, target);
}
