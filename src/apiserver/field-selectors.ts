/**
 * Field selectors (`?fieldSelector=spec.nodeName=node-1,status.phase!=Failed`),
 * k8s.io/apimachinery/pkg/fields: terms joined by ',', each `field=value`,
 * `field==value` or `field!=value`, with `\,`, `\=` and `\\` escapes. Every
 * kind supports metadata.name and metadata.namespace; a few kinds add their
 * own fields, as their upstream registries do. A field that is absent from an
 * object has the value "" (an unscheduled pod matches `spec.nodeName=`).
 */
import type { KubeObject, ResourceType } from '../api/types.js';
import { badRequest } from './status.js';

export interface FieldRequirement {
  field: string;
  operator: 'Equals' | 'NotEquals';
  value: string;
}

export type FieldSelector = readonly FieldRequirement[];

type FieldGetter = (object: KubeObject) => string;

function path(...segments: string[]): FieldGetter {
  return (object) => {
    let value: unknown = object;
    for (const segment of segments) {
      if (typeof value !== 'object' || value === null) return '';
      value = (value as Record<string, unknown>)[segment];
    }
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    return '';
  };
}

/** `false` when absent, as Go formats an unset bool. */
function bool(...segments: string[]): FieldGetter {
  const get = path(...segments);
  return (object) => get(object) || 'false';
}

const commonFields: Record<string, FieldGetter> = {
  'metadata.name': path('metadata', 'name'),
  'metadata.namespace': path('metadata', 'namespace'),
};

/** pkg/registry/core/{pod,node,namespace}/strategy.go: the fields each kind adds. */
const kindFields: Record<string, Record<string, FieldGetter>> = {
  '/Pod': {
    'spec.nodeName': path('spec', 'nodeName'),
    'spec.restartPolicy': path('spec', 'restartPolicy'),
    'spec.schedulerName': path('spec', 'schedulerName'),
    'spec.serviceAccountName': path('spec', 'serviceAccountName'),
    'spec.hostNetwork': bool('spec', 'hostNetwork'),
    'status.phase': path('status', 'phase'),
    'status.podIP': path('status', 'podIP'),
    'status.nominatedNodeName': path('status', 'nominatedNodeName'),
  },
  '/Node': { 'spec.unschedulable': bool('spec', 'unschedulable') },
  '/Namespace': { 'status.phase': path('status', 'phase') },
};

function fieldsOf(resource: Pick<ResourceType, 'group' | 'kind'>): Record<string, FieldGetter> {
  return { ...commonFields, ...kindFields[`${resource.group}/${resource.kind}`] };
}

/** Splits on `separator` where it is not escaped with a backslash. */
function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (c === '\\' && i + 1 < text.length) {
      current += c + text.charAt(i + 1);
      i++;
    } else if (c === separator) {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

function unescapeValue(value: string, term: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value.charAt(i);
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = value.charAt(i + 1);
    if (next !== '\\' && next !== ',' && next !== '=') {
      throw badRequest(`invalid field selector: invalid escape sequence in '${term}'`);
    }
    out += next;
    i++;
  }
  return out;
}

/** Parses and checks a field selector for `resource`: 400 BadRequest on a bad term or field. */
export function parseFieldSelector(
  text: string,
  resource: Pick<ResourceType, 'group' | 'kind'>,
): FieldSelector {
  if (text.trim() === '') return [];
  const fields = fieldsOf(resource);
  return splitUnescaped(text, ',').map((term) => {
    const match = /^([^=!]*)(!=|==|=)(.*)$/s.exec(term);
    if (!match) throw badRequest(`invalid selector: '${text}'; can't understand '${term}'`);
    const field = (match[1] ?? '').trim();
    if (!Object.hasOwn(fields, field)) {
      throw badRequest(`field label not supported: ${field}`);
    }
    return {
      field,
      operator: match[2] === '!=' ? 'NotEquals' : 'Equals',
      value: unescapeValue(match[3] ?? '', term),
    };
  });
}

/** Whether `object` (of `resource`) satisfies every term. */
export function matchesFields(
  selector: FieldSelector,
  resource: Pick<ResourceType, 'group' | 'kind'>,
  object: KubeObject,
): boolean {
  if (selector.length === 0) return true;
  const fields = fieldsOf(resource);
  return selector.every((r) => {
    const actual = fields[r.field]?.(object) ?? '';
    return r.operator === 'Equals' ? actual === r.value : actual !== r.value;
  });
}
