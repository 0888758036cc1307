/**
 * The two patch formats, as pure functions over JSON values:
 * JSON Merge Patch (RFC 7386) and JSON Patch (RFC 6902, with RFC 6901
 * pointers).
 */
import { type JsonObject, isJsonObject, jsonEqual } from './json-value.js';

/** RFC 7386 section 2, MergePatch(Target, Patch): null deletes, objects merge, anything else replaces. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isJsonObject(patch)) return structuredClone(patch);
  const result: JsonObject = isJsonObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) Reflect.deleteProperty(result, key);
    else result[key] = applyMergePatch(result[key], value);
  }
  return result;
}

export class JsonPatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonPatchError';
  }
}

export interface JsonPatchOperation {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: unknown;
}

/** RFC 6901: `/spec/ports/0` → ['spec', 'ports', '0'], with ~1 → '/' and ~0 → '~'. */
function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/'))
    throw new JsonPatchError(`invalid JSON pointer "${pointer}": must start with '/'`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

type Container = JsonObject | unknown[];

function arrayIndex(token: string, array: unknown[], forInsert: boolean, pointer: string): number {
  if (forInsert && token === '-') return array.length;
  if (!/^(0|[1-9]\d*)$/.test(token))
    throw new JsonPatchError(`invalid array index "${token}" in ${pointer}`);
  const index = Number(token);
  const limit = forInsert ? array.length : array.length - 1;
  if (index > limit) throw new JsonPatchError(`array index ${index} out of bounds in ${pointer}`);
  return index;
}

/** The container holding the pointer's last token, and that token. */
function locate(document: unknown, pointer: string): { parent: Container; key: string } {
  const tokens = parsePointer(pointer);
  const key = tokens.pop();
  if (key === undefined) throw new JsonPatchError('the whole document cannot be the target here');
  let node = document;
  for (const token of tokens) {
    if (Array.isArray(node)) node = node[arrayIndex(token, node, false, pointer)];
    else if (isJsonObject(node) && Object.hasOwn(node, token)) node = node[token];
    else throw new JsonPatchError(`path ${pointer} does not exist`);
  }
  if (!Array.isArray(node) && !isJsonObject(node))
    throw new JsonPatchError(`path ${pointer} does not exist`);
  return { parent: node, key };
}

function getValue(document: unknown, pointer: string): unknown {
  if (pointer === '') return document;
  const { parent, key } = locate(document, pointer);
  if (Array.isArray(parent)) return parent[arrayIndex(key, parent, false, pointer)];
  if (!Object.hasOwn(parent, key)) throw new JsonPatchError(`path ${pointer} does not exist`);
  return parent[key];
}

function addValue(document: unknown, pointer: string, value: unknown): unknown {
  if (pointer === '') return value;
  const { parent, key } = locate(document, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(key, parent, true, pointer), 0, value);
  else parent[key] = value;
  return document;
}

function removeValue(document: unknown, pointer: string): unknown {
  const { parent, key } = locate(document, pointer);
  if (Array.isArray(parent)) {
    parent.splice(arrayIndex(key, parent, false, pointer), 1);
  } else {
    if (!Object.hasOwn(parent, key)) throw new JsonPatchError(`path ${pointer} does not exist`);
    Reflect.deleteProperty(parent, key);
  }
  return document;
}

function checkOperation(value: unknown, index: number): JsonPatchOperation {
  const ops = ['add', 'remove', 'replace', 'move', 'copy', 'test'];
  if (!isJsonObject(value) || typeof value.op !== 'string' || !ops.includes(value.op)) {
    throw new JsonPatchError(`operation ${index}: "op" must be one of ${ops.join(', ')}`);
  }
  if (typeof value.path !== 'string')
    throw new JsonPatchError(`operation ${index}: "path" must be a string`);
  if ((value.op === 'move' || value.op === 'copy') && typeof value.from !== 'string') {
    throw new JsonPatchError(`operation ${index}: "from" must be a string for ${value.op}`);
  }
  if (
    (value.op === 'add' || value.op === 'replace' || value.op === 'test') &&
    !('value' in value)
  ) {
    throw new JsonPatchError(`operation ${index}: "value" is required for ${value.op}`);
  }
  return value as unknown as JsonPatchOperation;
}

/** Applies an RFC 6902 patch to a copy of `document`; JsonPatchError names the failing operation. */
export function applyJsonPatch(document: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch))
    throw new JsonPatchError('a JSON patch must be an array of operations');
  let result = structuredClone(document);
  patch.forEach((raw, index) => {
    const op = checkOperation(raw, index);
    const value = structuredClone(op.value);
    switch (op.op) {
      case 'add':
        result = addValue(result, op.path, value);
        break;
      case 'remove':
        result = removeValue(result, op.path);
        break;
      case 'replace':
        getValue(result, op.path);
        result = op.path === '' ? value : addValue(removeValue(result, op.path), op.path, value);
        break;
      case 'move': {
        const from = op.from ?? '';
        if (op.path.startsWith(`${from}/`))
          throw new JsonPatchError(`operation ${index}: cannot move ${from} into itself`);
        const moved = getValue(result, from);
        result = addValue(removeValue(result, from), op.path, moved);
        break;
      }
      case 'copy':
        result = addValue(result, op.path, structuredClone(getValue(result, op.from ?? '')));
        break;
      case 'test':
        if (!jsonEqual(getValue(result, op.path), value)) {
          throw new JsonPatchError(
            `operation ${index}: test failed: ${op.path} is not ${JSON.stringify(op.value)}`,
          );
        }
        break;
    }
  });
  return result;
}
