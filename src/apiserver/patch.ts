/**
 * PATCH of an object or its /status (handlers/patch.go). The patch is applied
 * to the latest stored object and the result goes through the update path,
 * so a resourceVersion in the patch is a precondition and a patch without
 * one is re-applied when a concurrent write wins.
 *
 * Media types:
 *   application/merge-patch+json            RFC 7386 JSON Merge Patch
 *   application/strategic-merge-patch+json  treated as a merge patch: lists
 *       are replaced whole, not merged by key as upstream's strategic merge
 *       (which needs each field's patchMergeKey) would merge them. A patch
 *       carrying strategic-merge directives (`$setElementOrder/...`,
 *       `$patch`, `$retainKeys`, ...) is refused with 400: its sender counts
 *       on list merging (kubectl apply sends one whenever it changes an item
 *       of a keyed list, with only that item's changed fields), and applying
 *       it as a merge patch would drop the rest of the list item.
 *   application/json-patch+json             RFC 6902 JSON Patch
 * Server-side apply (application/apply-patch+yaml) is not served: 415.
 */
import type { IncomingMessage } from 'node:http';
import type { KubeObject } from '../api/types.js';
import type { ApiContext } from './context.js';
import { JsonPatchError, applyJsonPatch, applyMergePatch } from './json-patch.js';
import { isJsonObject } from './json-value.js';
import { mediaType, parseJson, readBody } from './request-body.js';
import { badRequest, unprocessable, unsupportedMediaType } from './status.js';
import { type UpdateTarget, updateObject } from './update.js';

const patchTypes: Record<string, 'merge' | 'json'> = {
  'application/merge-patch+json': 'merge',
  'application/strategic-merge-patch+json': 'merge',
  'application/json-patch+json': 'json',
};

/** The first strategic-merge directive in `value` (a key starting with `$`), with its path. */
function findDirective(value: unknown, path: string): { key: string; path: string } | undefined {
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = findDirective(item, `${path}[${i}]`);
      if (found) return found;
    }
  } else if (isJsonObject(value)) {
    for (const [key, item] of Object.entries(value)) {
      if (key.startsWith('$')) return { key, path: path || '(the top level)' };
      const found = findDirective(item, path === '' ? key : `${path}.${key}`);
      if (found) return found;
    }
  }
  return undefined;
}

export async function handlePatch(
  ctx: ApiContext,
  target: UpdateTarget,
  req: IncomingMessage,
): Promise<KubeObject> {
  const type = mediaType(req);
  const patchType = patchTypes[type];
  if (!patchType) throw unsupportedMediaType(type, Object.keys(patchTypes));
  const text = await readBody(req);
  if (text.trim() === '') throw badRequest('the request body is empty: a patch is required');
  const patch = parseJson(text);
  const directive =
    type === 'application/strategic-merge-patch+json' ? findDirective(patch, '') : undefined;
  if (directive) {
    throw badRequest(
      `strategic merge patch directive "${directive.key}" at ${directive.path} is not supported: strata applies strategic merge patches as JSON merge patches (RFC 7386), which replace lists whole; send a merge patch (kubectl patch --type=merge) or the whole object (kubectl replace)`,
    );
  }
  return updateObject(ctx, target, (current) => {
    if (patchType === 'merge') return applyMergePatch(current, patch);
    try {
      return applyJsonPatch(current, patch);
    } catch (error) {
      if (error instanceof JsonPatchError) {
        throw unprocessable(
          `the server rejected our request due to an error in our request: ${error.message}`,
        );
      }
      throw error;
    }
  });
}
