/**
 * Label maps and label selectors (metav1.LabelSelector): validation with
 * apimachinery's rules (ValidateLabels, ValidateLabelSelector) and matching
 * with its semantics (LabelSelectorAsSelector). Used by every kind that
 * selects pods or namespaces.
 */
import type { FieldError } from '../types.js';
import { isLabelValue, isQualifiedName } from './meta.js';
import {
  type JsonObject,
  type Schema,
  arr,
  forbidden,
  getArray,
  getString,
  index,
  invalid,
  isObject,
  key,
  map,
  obj,
  required,
  str,
} from './schema.js';
import { qualifiedName } from './formats.js';

const labelValueDetail =
  'a valid label must be an empty string or consist of alphanumeric characters, "-", "_" or ".", and must start and end with an alphanumeric character (at most 63 characters)';

export const selectorOperators = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

/** ValidateLabels: keys are qualified names, values label values (a bad key is reported on the map). */
export function checkLabels(labels: JsonObject, path: string, errors: FieldError[]): void {
  for (const [name, value] of Object.entries(labels)) {
    if (!isQualifiedName(name)) errors.push(invalid(path, name, qualifiedName(name) ?? ''));
    if (typeof value === 'string' && !isLabelValue(value)) {
      errors.push(invalid(key(path, name), value, labelValueDetail));
    }
  }
}

/** A map of labels: `metadata.labels`, `spec.selector` of a Service, `matchLabels`. */
export function labelMap(): Schema {
  return map(str(), { check: checkLabels });
}

function checkRequirement(requirement: JsonObject, path: string, errors: FieldError[]): void {
  const operator = getString(requirement, 'operator');
  const values = getArray(requirement, 'values') ?? [];
  switch (operator) {
    case 'In':
    case 'NotIn':
      if (values.length === 0) {
        errors.push(
          required(`${path}.values`, "must be specified when `operator` is 'In' or 'NotIn'"),
        );
      }
      break;
    case 'Exists':
    case 'DoesNotExist':
      if (values.length > 0) {
        errors.push(
          forbidden(
            `${path}.values`,
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
          ),
        );
      }
      break;
    case undefined:
      break;
    default:
      errors.push(invalid(`${path}.operator`, operator, 'not a valid selector operator'));
  }
  values.forEach((value, i) => {
    if (typeof value === 'string' && !isLabelValue(value)) {
      errors.push(invalid(index(`${path}.values`, i), value, labelValueDetail));
    }
  });
}

/** metav1.LabelSelector: matchLabels and matchExpressions. */
export const labelSelector: Schema = obj({
  matchLabels: labelMap(),
  matchExpressions: arr(
    obj(
      { key: str({ format: qualifiedName }), operator: str(), values: arr(str()) },
      { required: ['key', 'operator'], check: checkRequirement },
    ),
  ),
});

/** True when the selector has neither matchLabels nor matchExpressions (it selects everything). */
export function isEmptySelector(selector: JsonObject): boolean {
  const labels = selector.matchLabels;
  const expressions = getArray(selector, 'matchExpressions') ?? [];
  return (!isObject(labels) || Object.keys(labels).length === 0) && expressions.length === 0;
}

/**
 * Whether `labels` satisfy the selector, as LabelSelectorAsSelector reads it:
 * every matchLabels pair and every expression must hold; an empty selector
 * matches everything. A selector that is not well formed matches nothing.
 */
export function selectorMatches(selector: JsonObject, labels: Record<string, unknown>): boolean {
  const matchLabels = selector.matchLabels ?? {};
  if (!isObject(matchLabels)) return false;
  for (const [name, value] of Object.entries(matchLabels)) {
    if (labels[name] !== value) return false;
  }
  const expressions = selector.matchExpressions ?? [];
  if (!Array.isArray(expressions)) return false;
  for (const expression of expressions) {
    if (!isObject(expression)) return false;
    const name = getString(expression, 'key') ?? '';
    const values = (getArray(expression, 'values') ?? []).filter((v) => typeof v === 'string');
    const has = Object.hasOwn(labels, name);
    const value = labels[name];
    switch (expression.operator) {
      case 'In':
        if (!has || !values.includes(value as string)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(value as string)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}
