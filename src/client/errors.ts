/**
 * ApiError: a request the API server answered with a failure. It carries the
 * server's `Status` (reason, code, details and, for 422, one cause per
 * invalid field), so callers branch on `reason`, not on message text.
 */
import type { Status, StatusReason } from '../apiserver/status.js';

export class ApiError extends Error {
  /** The HTTP status code: 404, 409, 410, 422, ... */
  readonly code: number;
  readonly reason: StatusReason | undefined;

  constructor(
    readonly status: Status,
    /** `GET /api/v1/namespaces/default/pods/web`: the request that failed. */
    readonly request: string,
  ) {
    super(status.message ?? `${request} failed with HTTP ${status.code}`);
    this.name = 'ApiError';
    this.code = status.code;
    this.reason = status.reason;
  }
}

/** The Status of a failure response: the body when it is one, else one made from the text. */
export function statusFromResponse(code: number, body: string): Status {
  try {
    const parsed = JSON.parse(body) as Partial<Status> | null;
    if (parsed?.kind === 'Status') return { ...parsed, code: parsed.code ?? code } as Status;
  } catch {
    // Not JSON: a proxy's or a plain HTTP server's error page.
  }
  const text = body.trim();
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: text === '' ? `HTTP ${code}` : text.slice(0, 500),
    code,
  };
}

export function isNotFound(error: unknown): boolean {
  return error instanceof ApiError && error.code === 404;
}

export function isAlreadyExists(error: unknown): boolean {
  return error instanceof ApiError && error.reason === 'AlreadyExists';
}

/** A stale resourceVersion or failed precondition: re-read and retry. */
export function isConflict(error: unknown): boolean {
  return error instanceof ApiError && error.reason === 'Conflict';
}

export function isInvalid(error: unknown): boolean {
  return error instanceof ApiError && error.code === 422;
}

/** A watch or list from a resourceVersion the server no longer has. */
export function isGone(error: unknown): boolean {
  return error instanceof ApiError && error.code === 410;
}
