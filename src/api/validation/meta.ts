/**
 * Checks every object shares: the envelope (apiVersion, kind) and metadata
 * (name, namespace, labels, annotations) with Kubernetes' rules
 * (apimachinery's ValidateObjectMeta).
 */
import type { FieldError, KubeObject, ResourceType } from '../types.js';

const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const qualifiedNamePart = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** RFC 1123 subdomain: lower case alphanumerics, '-' and '.', at most 253 characters. */
export function isDns1123Subdomain(value: string): boolean {
  return value.length <= 253 && dns1123Subdomain.test(value);
}

/** RFC 1123 label: lower case alphanumerics and '-', at most 63 characters. */
export function isDns1123Label(value: string): boolean {
  return value.length <= 63 && dns1123Label.test(value);
}

/** A label or annotation key: an optional DNS subdomain prefix and '/', then a name of at most 63. */
export function isQualifiedName(value: string): boolean {
  const slash = value.lastIndexOf('/');
  const name = slash < 0 ? value : value.slice(slash + 1);
  const prefix = slash < 0 ? undefined : value.slice(0, slash);
  if (prefix !== undefined && (prefix === '' || !isDns1123Subdomain(prefix))) return false;
  return name.length > 0 && name.length <= 63 && qualifiedNamePart.test(name);
}

export function isLabelValue(value: string): boolean {
  return value.length <= 63 && labelValue.test(value);
}

function validateStringMap(
  map: unknown,
  field: string,
  checkValue: ((v: string) => boolean) | undefined,
  errors: FieldError[],
): void {
  if (map === undefined) return;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    errors.push({ field, type: 'Invalid', value: map, detail: 'must be a map of strings' });
    return;
  }
  for (const [key, value] of Object.entries(map)) {
    if (!isQualifiedName(key)) {
      errors.push({
        field,
        type: 'Invalid',
        value: key,
        detail:
          'a key must be a qualified name: an optional DNS subdomain prefix and "/", then at most 63 alphanumerics, "-", "_" or "."',
      });
    }
    if (typeof value !== 'string') {
      errors.push({
        field: `${field}[${key}]`,
        type: 'Invalid',
        value,
        detail: 'must be a string',
      });
    } else if (checkValue && !checkValue(value)) {
      errors.push({
        field: `${field}[${key}]`,
        type: 'Invalid',
        value,
        detail:
          'a label value must be at most 63 alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric',
      });
    }
  }
}

/** The checks every kind shares. */
export function validateObjectEnvelope(resource: ResourceType, object: KubeObject): FieldError[] {
  const errors: FieldError[] = [];
  const meta = object.metadata as unknown;
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    errors.push({ field: 'metadata', type: 'Required', detail: 'metadata must be an object' });
    return errors;
  }
  const { name, generateName, namespace, labels, annotations } = object.metadata;
  if (name === undefined || name === '') {
    if (!generateName)
      errors.push({
        field: 'metadata.name',
        type: 'Required',
        detail: 'name or generateName is required',
      });
  } else if (typeof name !== 'string' || !isDns1123Subdomain(name)) {
    errors.push({
      field: 'metadata.name',
      type: 'Invalid',
      value: name,
      detail:
        'a lowercase RFC 1123 subdomain must consist of lower case alphanumerics, "-" or ".", and start and end with an alphanumeric',
    });
  }
  if (resource.namespaced) {
    if (namespace !== undefined && (typeof namespace !== 'string' || !isDns1123Label(namespace))) {
      errors.push({
        field: 'metadata.namespace',
        type: 'Invalid',
        value: namespace,
        detail: 'must be an RFC 1123 label',
      });
    }
  } else if (namespace !== undefined && namespace !== '') {
    errors.push({
      field: 'metadata.namespace',
      type: 'Forbidden',
      value: namespace,
      detail: `${resource.kind} is not namespaced`,
    });
  }
  validateStringMap(labels, 'metadata.labels', isLabelValue, errors);
  validateStringMap(annotations, 'metadata.annotations', undefined, errors);
  return errors;
}
