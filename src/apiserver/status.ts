/**
 * The `Status` object every API failure is reported with, and one builder per
 * reason, with kube-apiserver's status codes and messages
 * (k8s.io/apimachinery/pkg/api/errors).
 */
import type { FieldError, ResourceType } from '../api/types.js';

export type StatusReason =
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'BadRequest'
  | 'Forbidden'
  | 'MethodNotAllowed'
  | 'Gone'
  | 'Expired'
  | 'UnsupportedMediaType'
  | 'RequestEntityTooLarge'
  | 'Timeout'
  | 'InternalError';

/** One reason a request was rejected; for Invalid, one per invalid field. */
export interface StatusCause {
  /** `FieldValueInvalid`, `FieldValueRequired`, ... (metav1.CauseType). */
  reason: string;
  message: string;
  /** The field's path: `metadata.name`, `spec.ports[0].port`. */
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  /** The resource (`pods`) for most reasons; the kind (`Pod`) for Invalid, as upstream. */
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  /** When a retry may succeed (Timeout). */
  retryAfterSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: StatusReason;
  details?: StatusDetails;
  code: number;
}

/** A request that failed with a Status; the server sends `status` as the response. */
export class ApiStatusError extends Error {
  constructor(readonly status: Status) {
    super(status.message);
    this.name = 'ApiStatusError';
  }
}

type GroupResource = Pick<ResourceType, 'group' | 'plural'>;

function failure(
  code: number,
  reason: StatusReason,
  message: string,
  details?: StatusDetails,
): ApiStatusError {
  const status: Status = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  };
  if (details) status.details = details;
  return new ApiStatusError(status);
}

/** `pods`, or `deployments.apps` outside the core group, as upstream names resources in messages. */
export function qualifiedResource(resource: GroupResource): string {
  return resource.group === '' ? resource.plural : `${resource.plural}.${resource.group}`;
}

function resourceDetails(resource: GroupResource, name: string): StatusDetails {
  return { name, group: resource.group, kind: resource.plural };
}

export function notFound(resource: GroupResource, name: string): ApiStatusError {
  return failure(
    404,
    'NotFound',
    `${qualifiedResource(resource)} "${name}" not found`,
    resourceDetails(resource, name),
  );
}

/** A path or group/version the server does not serve. */
export function pathNotFound(): ApiStatusError {
  return failure(404, 'NotFound', 'the server could not find the requested resource', {});
}

export function alreadyExists(resource: GroupResource, name: string): ApiStatusError {
  return failure(
    409,
    'AlreadyExists',
    `${qualifiedResource(resource)} "${name}" already exists`,
    resourceDetails(resource, name),
  );
}

/** A write against a stale resourceVersion (optimistic concurrency), or a failed precondition. */
export function conflict(
  resource: GroupResource,
  name: string,
  why = 'the object has been modified; please apply your changes to the latest version and try again',
): ApiStatusError {
  return failure(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(resource)} "${name}": ${why}`,
    resourceDetails(resource, name),
  );
}

const causeReasons: Record<FieldError['type'], string> = {
  Required: 'FieldValueRequired',
  Invalid: 'FieldValueInvalid',
  NotSupported: 'FieldValueNotSupported',
  Duplicate: 'FieldValueDuplicate',
  Forbidden: 'FieldValueForbidden',
  TooLong: 'FieldValueTooLong',
  TooMany: 'FieldValueTooMany',
};

const typeNames: Record<FieldError['type'], string> = {
  Required: 'Required value',
  Invalid: 'Invalid value',
  NotSupported: 'Unsupported value',
  Duplicate: 'Duplicate value',
  Forbidden: 'Forbidden',
  TooLong: 'Too long',
  TooMany: 'Too many',
};

/** field.Error.ErrorBody(): `Invalid value: "Bad_Name": a lowercase RFC 1123 ...`. */
function fieldErrorBody(error: FieldError): string {
  const showsValue =
    error.type !== 'Required' &&
    error.type !== 'Forbidden' &&
    error.type !== 'TooLong' &&
    error.value !== undefined;
  let body = typeNames[error.type];
  if (showsValue) body += `: ${JSON.stringify(error.value) ?? String(error.value)}`;
  if (error.detail) body += `: ${error.detail}`;
  return body;
}

/** 422 Invalid, one cause per field error (errors.NewInvalid). */
export function invalid(
  resource: Pick<ResourceType, 'group' | 'kind'>,
  name: string,
  errors: readonly FieldError[],
): ApiStatusError {
  const causes = errors.map((e) => ({
    reason: causeReasons[e.type],
    message: fieldErrorBody(e),
    field: e.field,
  }));
  const listed = causes.map((c) => `${c.field}: ${c.message}`);
  const summary = listed.length === 1 ? (listed[0] ?? '') : `[${listed.join(', ')}]`;
  return failure(422, 'Invalid', `${resource.kind} "${name}" is invalid: ${summary}`, {
    name,
    group: resource.group,
    kind: resource.kind,
    causes,
  });
}

/** 422 for a request that is well-formed but cannot be applied (a failed JSON patch). */
export function unprocessable(message: string): ApiStatusError {
  return failure(422, 'Invalid', message);
}

export function badRequest(message: string): ApiStatusError {
  return failure(400, 'BadRequest', message);
}

export function forbidden(resource: GroupResource, name: string, why: string): ApiStatusError {
  return failure(
    403,
    'Forbidden',
    `${qualifiedResource(resource)} "${name}" is forbidden: ${why}`,
    resourceDetails(resource, name),
  );
}

export function methodNotAllowed(): ApiStatusError {
  return failure(
    405,
    'MethodNotAllowed',
    'the server does not allow this method on the requested resource',
    {},
  );
}

/** A watch from a revision the store no longer keeps (errors.NewResourceExpired). */
export function expired(requested: number, oldest: number): ApiStatusError {
  return failure(410, 'Expired', `too old resource version: ${requested} (${oldest})`);
}

/**
 * A watch or read from a resourceVersion the store has not reached
 * (storage.NewTooLargeResourceVersionError): 504 Timeout, with the cause
 * clients recognise to re-list.
 */
export function tooLargeResourceVersion(requested: number, current: number): ApiStatusError {
  return failure(
    504,
    'Timeout',
    `Timeout: Too large resource version: ${requested}, current: ${current}`,
    {
      causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
      retryAfterSeconds: 1,
    },
  );
}

export function unsupportedMediaType(
  contentType: string,
  accepted: readonly string[],
): ApiStatusError {
  return failure(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format (${contentType || 'none'}) - accepted media types include: ${accepted.join(', ')}`,
  );
}

export function requestEntityTooLarge(limit: number): ApiStatusError {
  return failure(413, 'RequestEntityTooLarge', `the request body is larger than ${limit} bytes`);
}

export function internalError(message: string): ApiStatusError {
  return failure(500, 'InternalError', `Internal error occurred: ${message}`);
}
