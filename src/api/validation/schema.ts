/**
 * A small structural schema for manifests: the known fields at each level,
 * their types, enums, ranges and required fields, checked with Kubernetes'
 * field.Error conventions (`spec.ports[0].port`). Rules that span fields are
 * `check` hooks on the object, array or value they concern; each kind's module
 * holds its own.
 *
 * Unknown fields are rejected, as the API server does with strict field
 * validation, and an upstream field strata does not implement yet is
 * declared `unsupported` so the error names it rather than ignoring it.
 */
import type { FieldError } from '../types.js';

export type JsonObject = Record<string, unknown>;

/** Appends errors for a value already known to have the right type. */
export type Check<T> = (value: T, path: string, errors: FieldError[]) => void;

/** A text format rule: the problem with the value, or undefined when it is valid. */
export type Format = (value: string) => string | undefined;

export type Schema =
  | {
      type: 'string';
      enum?: readonly string[];
      format?: Format;
      maxLength?: number;
      check?: Check<string>;
    }
  | { type: 'integer'; min?: number; max?: number; check?: Check<number> }
  | { type: 'number'; min?: number; max?: number }
  | { type: 'boolean'; check?: Check<boolean> }
  | { type: 'int-or-string'; check?: Check<number | string> }
  | {
      type: 'object';
      fields: Record<string, Schema>;
      required?: readonly string[];
      check?: Check<JsonObject>;
    }
  | {
      type: 'array';
      items: Schema;
      minItems?: number;
      maxItems?: number;
      check?: Check<unknown[]>;
    }
  | { type: 'map'; values: Schema; maxProperties?: number; check?: Check<JsonObject> }
  | { type: 'any-object' }
  | { type: 'any' }
  | { type: 'unsupported'; detail: string };

type Options<T extends Schema['type']> = Omit<Extract<Schema, { type: T }>, 'type'>;

export const str = (options: Options<'string'> = {}): Schema => ({ type: 'string', ...options });
export const int = (options: Options<'integer'> = {}): Schema => ({ type: 'integer', ...options });
export const num = (options: Options<'number'> = {}): Schema => ({ type: 'number', ...options });
export const bool = (options: Options<'boolean'> = {}): Schema => ({ type: 'boolean', ...options });
export const intOrString = (check?: Check<number | string>): Schema =>
  check ? { type: 'int-or-string', check } : { type: 'int-or-string' };
export const obj = (
  fields: Record<string, Schema>,
  options: Omit<Options<'object'>, 'fields'> = {},
): Schema => ({ type: 'object', fields, ...options });
export const arr = (items: Schema, options: Omit<Options<'array'>, 'items'> = {}): Schema => ({
  type: 'array',
  items,
  ...options,
});
export const map = (values: Schema, options: Omit<Options<'map'>, 'values'> = {}): Schema => ({
  type: 'map',
  values,
  ...options,
});
/** An object strata keeps as given without looking inside (informational fields). */
export const anyObject = (): Schema => ({ type: 'any-object' });
export const anyValue = (): Schema => ({ type: 'any' });
/** An upstream field strata does not implement yet: setting it is an error naming it. */
export const unsupported = (detail = 'strata does not support this field yet'): Schema => ({
  type: 'unsupported',
  detail,
});

// Paths, as field.Path prints them.
export const child = (path: string, name: string): string =>
  path === '' ? name : `${path}.${name}`;
export const index = (path: string, i: number): string => `${path}[${i}]`;
export const key = (path: string, k: string): string => `${path}[${k}]`;

// Errors, as field.Required, field.Invalid and friends build them.
export function required(field: string, detail = 'must be specified'): FieldError {
  return { field, type: 'Required', detail };
}
export function invalid(field: string, value: unknown, detail: string): FieldError {
  return { field, type: 'Invalid', value, detail };
}
export function notSupported(
  field: string,
  value: unknown,
  supported: readonly string[],
): FieldError {
  const list = supported.map((s) => `"${s}"`).join(', ');
  return { field, type: 'NotSupported', value, detail: `supported values: ${list}` };
}
export function forbidden(field: string, detail: string): FieldError {
  return { field, type: 'Forbidden', detail };
}
/** field.Duplicate: no detail, so the message is upstream's `Duplicate value: "http"`. */
export function duplicate(field: string, value: unknown): FieldError {
  return { field, type: 'Duplicate', value, detail: '' };
}
export function tooMany(field: string, count: number, max: number): FieldError {
  return { field, type: 'TooMany', value: count, detail: `must have at most ${max} items` };
}
export function tooLong(field: string, value: string, max: number): FieldError {
  return { field, type: 'TooLong', value, detail: `may not be more than ${max} bytes` };
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON null means "not set", as in Kubernetes' decoding. */
function isUnset(value: unknown): boolean {
  return value === undefined || value === null;
}

function rangeDetail(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return `must be between ${min} and ${max}, inclusive`;
  if (min !== undefined) return `must be greater than or equal to ${min}`;
  return `must be less than or equal to ${max ?? 0}`;
}

/** Appends every structural problem of `value` against `schema` at `path`. */
export function validateSchema(
  value: unknown,
  schema: Schema,
  path: string,
  errors: FieldError[],
): void {
  if (isUnset(value) || schema.type === 'any') return;
  switch (schema.type) {
    case 'unsupported':
      errors.push(forbidden(path, schema.detail));
      return;
    case 'string':
      if (typeof value !== 'string') {
        errors.push(invalid(path, value, 'must be a string'));
        return;
      }
      if (schema.maxLength !== undefined && value.length > schema.maxLength) {
        errors.push(tooLong(path, value, schema.maxLength));
        return;
      }
      if (schema.enum && !schema.enum.includes(value)) {
        errors.push(notSupported(path, value, schema.enum));
        return;
      }
      if (schema.format && value !== '') {
        const problem = schema.format(value);
        if (problem !== undefined) errors.push(invalid(path, value, problem));
      }
      schema.check?.(value, path, errors);
      return;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) {
        errors.push(invalid(path, value, 'must be an integer'));
        return;
      }
      if (
        (schema.min !== undefined && value < schema.min) ||
        (schema.max !== undefined && value > schema.max)
      ) {
        errors.push(invalid(path, value, rangeDetail(schema.min, schema.max)));
        return;
      }
      schema.check?.(value, path, errors);
      return;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        errors.push(invalid(path, value, 'must be a number'));
      } else if (
        (schema.min !== undefined && value < schema.min) ||
        (schema.max !== undefined && value > schema.max)
      ) {
        errors.push(invalid(path, value, rangeDetail(schema.min, schema.max)));
      }
      return;
    case 'boolean':
      if (typeof value !== 'boolean') errors.push(invalid(path, value, 'must be a boolean'));
      else schema.check?.(value, path, errors);
      return;
    case 'int-or-string':
      if (typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value))) {
        schema.check?.(value, path, errors);
      } else {
        errors.push(invalid(path, value, 'must be an integer or a string'));
      }
      return;
    case 'any-object':
      if (!isObject(value)) errors.push(invalid(path, value, 'must be an object'));
      return;
    case 'object':
      validateObject(value, schema, path, errors);
      return;
    case 'array':
      validateArray(value, schema, path, errors);
      return;
    case 'map':
      if (!isObject(value)) {
        errors.push(invalid(path, value, 'must be an object'));
        return;
      }
      if (schema.maxProperties !== undefined && Object.keys(value).length > schema.maxProperties) {
        errors.push(tooMany(path, Object.keys(value).length, schema.maxProperties));
      }
      for (const [k, v] of Object.entries(value))
        validateSchema(v, schema.values, key(path, k), errors);
      schema.check?.(value, path, errors);
      return;
  }
}

function validateObject(
  value: unknown,
  schema: Extract<Schema, { type: 'object' }>,
  path: string,
  errors: FieldError[],
): void {
  if (!isObject(value)) {
    errors.push(invalid(path, value, 'must be an object'));
    return;
  }
  for (const [name, fieldValue] of Object.entries(value)) {
    const fieldSchema = schema.fields[name];
    if (fieldSchema === undefined) errors.push(forbidden(child(path, name), 'unknown field'));
    else validateSchema(fieldValue, fieldSchema, child(path, name), errors);
  }
  for (const name of schema.required ?? []) {
    const fieldValue = value[name];
    if (isUnset(fieldValue) || fieldValue === '') errors.push(required(child(path, name)));
  }
  schema.check?.(value, path, errors);
}

function validateArray(
  value: unknown,
  schema: Extract<Schema, { type: 'array' }>,
  path: string,
  errors: FieldError[],
): void {
  if (!Array.isArray(value)) {
    errors.push(invalid(path, value, 'must be a list'));
    return;
  }
  if (schema.minItems !== undefined && value.length < schema.minItems) {
    errors.push(
      value.length === 0
        ? required(path, 'must have at least one item')
        : invalid(path, value.length, `must have at least ${schema.minItems} items`),
    );
  }
  if (schema.maxItems !== undefined && value.length > schema.maxItems) {
    errors.push(tooMany(path, value.length, schema.maxItems));
  }
  value.forEach((item, i) => {
    if (item === null) errors.push(invalid(index(path, i), item, 'must not be null'));
    else validateSchema(item, schema.items, index(path, i), errors);
  });
  schema.check?.(value, path, errors);
}

// Readers for checks and defaults: a value of the wrong type reads as absent
// (the schema has already reported it).
export function getString(object: JsonObject, name: string): string | undefined {
  const value = object[name];
  return typeof value === 'string' ? value : undefined;
}
export function getInteger(object: JsonObject, name: string): number | undefined {
  const value = object[name];
  return typeof value === 'number' && Number.isInteger(value) ? value : undefined;
}
export function getObject(object: JsonObject, name: string): JsonObject | undefined {
  const value = object[name];
  return isObject(value) ? value : undefined;
}
export function getArray(object: JsonObject, name: string): unknown[] | undefined {
  const value = object[name];
  return Array.isArray(value) ? value : undefined;
}
/** The object items of a list field with their indexes (other items skipped). */
export function objectItems(object: JsonObject, name: string): [number, JsonObject][] {
  const items: [number, JsonObject][] = [];
  getArray(object, name)?.forEach((item, i) => {
    if (isObject(item)) items.push([i, item]);
  });
  return items;
}
/** Whether a field holds a value (not absent, not null). */
export function isSet(object: JsonObject, name: string): boolean {
  return !isUnset(object[name]);
}
/** The fields of `names` that are set, in order. */
export function setFields(object: JsonObject, names: readonly string[]): string[] {
  return names.filter((name) => isSet(object, name));
}

/** The object at `name`, created empty when absent; undefined when it holds something else. */
export function ensureObject(object: JsonObject, name: string): JsonObject | undefined {
  if (isUnset(object[name])) object[name] = {};
  return getObject(object, name);
}
/** Sets `name` to `value` when it is absent, null or "" (Go's defaulting tests a string against ""). */
export function setDefault(object: JsonObject, name: string, value: unknown): void {
  if (isUnset(object[name]) || object[name] === '') object[name] = value;
}

/**
 * A whole object of a kind: the envelope (checked by meta.ts), a status the
 * server keeps apart, and the kind's own top-level fields.
 */
export function kindSchema(fields: Record<string, Schema>, requiredFields: string[] = []): Schema {
  return obj(
    { apiVersion: str(), kind: str(), metadata: anyValue(), status: anyValue(), ...fields },
    { required: requiredFields },
  );
}

/** Validates a whole object against its kind's schema. */
export function validateKind(object: unknown, schema: Schema): FieldError[] {
  const errors: FieldError[] = [];
  validateSchema(object, schema, '', errors);
  return errors;
}

/** An object's metadata.name when it is a string (metadata itself may be malformed). */
export function metadataName(object: JsonObject): string | undefined {
  const metadata = getObject(object, 'metadata');
  return metadata ? getString(metadata, 'name') : undefined;
}

/** Deep equality of JSON values, ignoring the order of object keys. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => sameJson(item, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => sameJson(a[k], b[k]));
  }
  return a === b;
}
