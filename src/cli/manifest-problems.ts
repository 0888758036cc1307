/**
 * What is wrong with loaded manifests, checked before anything is sent: the
 * problems the API server would answer with, found for every document at
 * once and each named by file, document, object and field path.
 */
import { resourceForKind, resources } from '../api/registry.js';
import { type FieldError, type ResourceType, apiVersionOf } from '../api/types.js';
import type { LoadedManifest } from './manifests.js';

export type ManifestProblemReason =
  | FieldError['type']
  /** The document is not YAML or JSON. */
  | 'SyntaxError'
  /** The document is a list or a scalar, not an object. */
  | 'NotAnObject'
  /** No kind strata serves has this apiVersion and kind. */
  | 'UnknownKind'
  /** The object's namespace is not the one given on the command line. */
  | 'NamespaceMismatch'
  /** The kind's validator failed on the object instead of reporting it. */
  | 'ValidatorFailed';

export interface ManifestProblem {
  file: string;
  document: number;
  /** For an object expanded from a List: where it sat (`items[2]`). */
  listItem?: string;
  /** 1-based: the field's line when known, else the object's. */
  line?: number;
  /** `Kind namespace/name` as far as the document tells, namespaced objects in the default namespace. */
  object?: string;
  /** The field path, when the problem is one field's. */
  field?: string;
  reason: ManifestProblemReason;
  /** The value found, for field problems. */
  value?: unknown;
  detail: string;
}

export interface ValidateOptions {
  /** The namespace objects without one go to; `default` unless `-n` said otherwise. */
  namespace?: string;
  /** `-n` was given: an object naming another namespace is an error, as in kubectl. */
  enforceNamespace?: boolean;
  /** The kinds to check against: the registry's (resourceForKind) unless given. */
  resourceForKind?: (apiVersion: string, kind: string) => ResourceType | undefined;
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeValue(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  if (typeof value === 'string') return `a string (${JSON.stringify(value)})`;
  return `a ${typeof value} (${JSON.stringify(value) ?? typeof value})`;
}

/** Every problem of every manifest; an empty list means all of them can be sent. */
export function validateManifests(
  manifests: readonly LoadedManifest[],
  options: ValidateOptions = {},
): ManifestProblem[] {
  return manifests.flatMap((manifest) => problemsOf(manifest, options));
}

function problemsOf(manifest: LoadedManifest, options: ValidateOptions): ManifestProblem[] {
  const where = {
    file: manifest.file,
    document: manifest.document,
    ...(manifest.listItem === undefined ? {} : { listItem: manifest.listItem }),
  };
  const { syntaxError, object } = manifest;
  if (syntaxError) {
    const { syntax, line, column, message } = syntaxError;
    const detail = `${syntax}: line ${line}, column ${column}: ${message}`;
    return [{ ...where, line, reason: 'SyntaxError', detail }];
  }
  if (!isObject(object)) {
    const detail = `a manifest is an object with apiVersion, kind and metadata, not ${describeValue(object)}`;
    return [{ ...where, line: manifest.line, reason: 'NotAnObject', detail }];
  }

  const { apiVersion, kind } = object;
  const resource =
    typeof apiVersion === 'string' && typeof kind === 'string'
      ? (options.resourceForKind ?? resourceForKind)(apiVersion, kind)
      : undefined;
  const described = describeObject(object, resource, options.namespace ?? 'default');
  const problem = (p: OwnProblem): ManifestProblem => {
    const line = p.field === undefined ? manifest.line : manifest.lineOf(p.field);
    return {
      ...where,
      line: line ?? manifest.line,
      ...(described === undefined ? {} : { object: described }),
      ...p,
    };
  };

  const envelope = [
    ...requiredString(object, 'apiVersion', 'for example "v1" or "apps/v1"'),
    ...requiredString(object, 'kind', 'for example "Pod" or "NetworkPolicy"'),
  ];
  if (envelope.length > 0) return envelope.map(problem);
  if (kind === 'List') {
    return [
      problem({
        field: 'items',
        reason: 'Required',
        detail: 'a List carries its objects in items',
      }),
    ];
  }
  if (!resource) {
    const detail = unknownKindDetail(apiVersion as string, kind as string);
    return [problem({ field: 'kind', reason: 'UnknownKind', value: kind, detail })];
  }

  const typeErrors = checkStructure({ metadata: object.metadata }, envelopeShape, '');
  const problems: ManifestProblem[] = typeErrors.map(problem);
  for (const error of resourceErrors(resource, object, typeErrors.length > 0)) {
    const { field } = error;
    const covered = field !== undefined && typeErrors.some((t) => isAtOrUnder(field, t.field));
    if (!covered) problems.push(problem(error));
  }

  const namespace = (object.metadata as JsonObject | undefined)?.namespace;
  if (
    options.enforceNamespace &&
    resource.namespaced &&
    typeof namespace === 'string' &&
    namespace !== '' &&
    namespace !== (options.namespace ?? 'default')
  ) {
    problems.push(
      problem({
        field: 'metadata.namespace',
        reason: 'NamespaceMismatch',
        value: namespace,
        detail: `the namespace from the provided object "${namespace}" does not match the namespace "${options.namespace ?? 'default'}"; pass --namespace=${namespace} to apply it`,
      }),
    );
  }
  return problems;
}

/** A problem of the object itself, before it is placed (file, document, line). */
type OwnProblem = Pick<ManifestProblem, 'field' | 'reason' | 'value' | 'detail'>;
type FieldProblem = OwnProblem & { field: string };

function requiredString(object: JsonObject, field: string, example: string): FieldProblem[] {
  const value = object[field];
  if (value === undefined || value === null || value === '') {
    return [{ field, reason: 'Required', detail: `every manifest sets ${field}, ${example}` }];
  }
  if (typeof value !== 'string') {
    return [{ field, reason: 'Invalid', value, detail: 'must be a string' }];
  }
  return [];
}

function isAtOrUnder(field: string, ancestor: string): boolean {
  return field === ancestor || field.startsWith(`${ancestor}.`) || field.startsWith(`${ancestor}[`);
}

function describeObject(
  object: JsonObject,
  resource: ResourceType | undefined,
  defaultNamespace: string,
): string | undefined {
  if (typeof object.kind !== 'string' || object.kind === '') return undefined;
  const meta = isObject(object.metadata) ? object.metadata : {};
  const name = typeof meta.name === 'string' && meta.name !== '' ? meta.name : '<no name>';
  const namespace =
    typeof meta.namespace === 'string' && meta.namespace !== ''
      ? meta.namespace
      : resource?.namespaced
        ? defaultNamespace
        : undefined;
  return `${object.kind} ${namespace === undefined ? '' : `${namespace}/`}${name}`;
}

function servedKinds(): string {
  const byVersion = new Map<string, string[]>();
  for (const r of resources) {
    const version = apiVersionOf(r);
    byVersion.set(version, [...(byVersion.get(version) ?? []), r.kind]);
  }
  return [...byVersion].map(([version, kinds]) => `${version}: ${kinds.join(', ')}`).join('; ');
}

function unknownKindDetail(apiVersion: string, kind: string): string {
  const missing = `no kind "${kind}" is served in version "${apiVersion}"`;
  const sameKind = resources.filter((r) => r.kind === kind);
  if (sameKind.length > 0) {
    return `${missing}; strata serves ${kind} as ${sameKind.map(apiVersionOf).join(' and ')}`;
  }
  const otherCase = resources.find(
    (r) => apiVersionOf(r) === apiVersion && r.kind.toLowerCase() === kind.toLowerCase(),
  );
  if (otherCase) return `${missing}; did you mean ${otherCase.kind}?`;
  const inVersion = resources.filter((r) => apiVersionOf(r) === apiVersion);
  if (inVersion.length > 0) {
    return `${missing}; strata serves ${apiVersion} ${inVersion.map((r) => r.kind).join(', ')}`;
  }
  return `${missing}; strata serves ${servedKinds()}`;
}

/** The null-valued fields dropped, as decoding into Go structs leaves them unset. */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (!isObject(value)) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => [k, withoutNulls(v)]),
  );
}

/** The kind's own rules, run on a defaulted copy as the server runs them. */
function resourceErrors(
  resource: ResourceType,
  object: JsonObject,
  hasTypeErrors: boolean,
): OwnProblem[] {
  const copy = withoutNulls(structuredClone(object)) as Parameters<ResourceType['validate']>[0];
  try {
    resource.applyDefaults(copy);
    return resource.validate(copy).map(({ field, type, value, detail }) => ({
      field,
      reason: type,
      ...(value === undefined ? {} : { value }),
      detail,
    }));
  } catch (error) {
    // A validator may trip over a field of the wrong type, which is reported already.
    if (hasTypeErrors) return [];
    const detail = `cannot validate this ${resource.kind}: ${(error as Error).message}`;
    return [{ reason: 'ValidatorFailed', detail }];
  }
}

/* ---------------------------------------------------------------------------
 * Field types of ObjectMeta, which every kind shares and the kinds' schemas
 * leave to meta.ts: what the server's decoder rejects before any validation
 * (a number where a string belongs, `labels: {version: 1.0}`), and with
 * strict field validation (kubectl's default) the fields it does not know.
 */

type Shape =
  | 'string'
  | 'integer'
  | 'boolean'
  | 'object'
  | 'list'
  | { mapOf: Shape }
  | { listOf: Shape }
  | { fields: Record<string, Shape> };

const ownerReference: Shape = {
  fields: {
    apiVersion: 'string',
    kind: 'string',
    name: 'string',
    uid: 'string',
    controller: 'boolean',
    blockOwnerDeletion: 'boolean',
  },
};

const objectMeta: Shape = {
  fields: {
    name: 'string',
    generateName: 'string',
    namespace: 'string',
    selfLink: 'string',
    uid: 'string',
    resourceVersion: 'string',
    generation: 'integer',
    creationTimestamp: 'string',
    deletionTimestamp: 'string',
    deletionGracePeriodSeconds: 'integer',
    labels: { mapOf: 'string' },
    annotations: { mapOf: 'string' },
    ownerReferences: { listOf: ownerReference },
    finalizers: { listOf: 'string' },
    managedFields: 'list',
  },
};

// apiVersion and kind are checked before; the kind's own fields are its validator's.
const envelopeShape: Shape = { fields: { metadata: objectMeta } };

function expected(shape: Shape): string {
  if (typeof shape === 'string') {
    return {
      string: 'a string',
      integer: 'an integer',
      boolean: 'a boolean',
      object: 'an object',
      list: 'a list',
    }[shape];
  }
  if ('mapOf' in shape) return shape.mapOf === 'string' ? 'a map of strings' : 'a map';
  if ('listOf' in shape) return 'a list';
  return 'an object';
}

/** Levenshtein distance, for suggesting the field a typo meant. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function fits(value: unknown, shape: Shape): boolean {
  switch (shape) {
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return Number.isInteger(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'list':
      return Array.isArray(value);
    default:
      return typeof shape === 'object' && 'listOf' in shape
        ? Array.isArray(value)
        : isObject(value);
  }
}

function childPath(path: string, key: string | number, inMap: boolean): string {
  if (typeof key === 'number' || inMap) return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

/** Type errors and unknown fields in `value` against `shape`; null stands for unset, as in Go. */
function checkStructure(value: unknown, shape: Shape, path: string): FieldProblem[] {
  if (value === null || value === undefined) return [];
  if (!fits(value, shape)) {
    const hint = shape === 'string' && typeof value !== 'object' ? ' (quote it)' : '';
    return [{ field: path, reason: 'Invalid', value, detail: `must be ${expected(shape)}${hint}` }];
  }
  if (typeof shape === 'string') return [];
  if ('listOf' in shape) {
    return (value as unknown[]).flatMap((item, i) =>
      checkStructure(item, shape.listOf, childPath(path, i, false)),
    );
  }
  const entries = Object.entries(value as JsonObject);
  if ('mapOf' in shape) {
    return entries.flatMap(([key, item]) =>
      checkStructure(item, shape.mapOf, childPath(path, key, true)),
    );
  }
  return entries.flatMap(([key, item]) => {
    const field = childPath(path, key, false);
    const fieldShape = shape.fields[key];
    if (fieldShape === undefined) {
      const near = Object.keys(shape.fields).find((known) => editDistance(known, key) <= 2);
      const detail =
        near === undefined ? 'unknown field' : `unknown field; did you mean "${near}"?`;
      // Forbidden, as the kinds' schemas report unknown fields in the rest of the object.
      return [{ field, reason: 'Forbidden' as const, detail }];
    }
    return checkStructure(item, fieldShape, field);
  });
}

/* ------------------------------------------------------------------------- */

const fieldErrorBodies: Record<FieldError['type'], { label: string; withValue: boolean }> = {
  Required: { label: 'Required value', withValue: false },
  Invalid: { label: 'Invalid value', withValue: true },
  NotSupported: { label: 'Unsupported value', withValue: true },
  Duplicate: { label: 'Duplicate value', withValue: true },
  Forbidden: { label: 'Forbidden', withValue: false },
  TooLong: { label: 'Too long', withValue: false },
  TooMany: { label: 'Too many', withValue: true },
};

/** A bad value as apimachinery's field.Error prints it: strings quoted, numbers and booleans bare. */
function formatValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * One line per problem, in kubectl's manner:
 * `error: policies.yaml document 2 (NetworkPolicy default/deny-all):
 * spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive`.
 */
export function formatProblem(problem: ManifestProblem): string {
  const item = problem.listItem === undefined ? '' : ` ${problem.listItem}`;
  const object = problem.object === undefined ? '' : ` (${problem.object})`;
  const field = problem.field === undefined ? '' : `${problem.field}: `;
  let body = problem.detail;
  if (problem.reason in fieldErrorBodies) {
    const { label, withValue } = fieldErrorBodies[problem.reason as FieldError['type']];
    const value = withValue && problem.value !== undefined ? `: ${formatValue(problem.value)}` : '';
    body = `${label}${value}${problem.detail === '' ? '' : `: ${problem.detail}`}`;
  }
  return `error: ${problem.file} document ${problem.document}${item}${object}: ${field}${body}`;
}
