/**
 * What an update of a Pod may change in its spec, after upstream's
 * ValidatePodUpdate (pkg/apis/core/validation): a pod's spec is fixed once
 * it is created, but for its containers' images, activeDeadlineSeconds,
 * tolerations (only added to) and terminationGracePeriodSeconds (only from
 * negative to 1). Everything else, spec.nodeName included, is refused with
 * upstream's message on `spec`; a pod is bound to a node through the
 * pods/<name>/binding subresource, which does not go through this rule.
 *
 * As upstream's semantic equality, a field set to null or "", or to an empty
 * list or object, is the same as a field left out.
 */
import type { FieldError } from '../types.js';
import { type JsonObject, forbidden, getArray, isObject, sameJson } from './schema.js';

const updatableFields = [
  '`spec.containers[*].image`',
  '`spec.initContainers[*].image`',
  '`spec.activeDeadlineSeconds`',
  '`spec.tolerations` (only additions to existing tolerations)',
  '`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
];

/** The value with what counts as unset (null, "", [], {}) left out, recursively. */
function normalized(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalized);
  if (!isObject(value)) return value;
  const kept: JsonObject = {};
  for (const [name, item] of Object.entries(value)) {
    const normal = normalized(item);
    const empty =
      normal === null ||
      normal === undefined ||
      normal === '' ||
      (Array.isArray(normal) && normal.length === 0) ||
      (isObject(normal) && Object.keys(normal).length === 0);
    if (!empty) kept[name] = normal;
  }
  return kept;
}

/** The paths under `path` where `a` and `b` differ, at most `limit` of them. */
function differences(a: unknown, b: unknown, path: string, found: string[], limit = 5): void {
  if (found.length >= limit || sameJson(a, b)) return;
  if (isObject(a) && isObject(b)) {
    for (const name of new Set([...Object.keys(a), ...Object.keys(b)])) {
      differences(a[name], b[name], `${path}.${name}`, found, limit);
    }
  } else if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    a.forEach((item, i) => {
      differences(item, b[i], `${path}[${i}]`, found, limit);
    });
  } else {
    found.push(`${path}: ${JSON.stringify(a) ?? 'unset'} → ${JSON.stringify(b) ?? 'unset'}`);
  }
}

function objects(spec: JsonObject, name: string): JsonObject[] {
  return (getArray(spec, name) ?? []).filter(isObject);
}

/** validateOnlyAddedTolerations: every existing toleration is kept, but for its tolerationSeconds. */
function keepsTolerations(spec: JsonObject, oldSpec: JsonObject): boolean {
  const tolerations = objects(spec, 'tolerations').map(normalized);
  return objects(oldSpec, 'tolerations').every((old) =>
    tolerations.some((toleration) => {
      if (!isObject(toleration)) return false;
      const candidate = normalized({ ...old, tolerationSeconds: toleration.tolerationSeconds });
      return sameJson(candidate, toleration);
    }),
  );
}

/** The update errors of a pod spec against the stored one (both already defaulted). */
export function validatePodSpecUpdate(spec: JsonObject, oldSpec: JsonObject): FieldError[] {
  const containers = objects(spec, 'containers');
  const oldContainers = objects(oldSpec, 'containers');
  if (containers.length !== oldContainers.length) {
    return [forbidden('spec.containers', 'pod updates may not add or remove containers')];
  }
  const errors: FieldError[] = [];
  if (!keepsTolerations(spec, oldSpec)) {
    errors.push(
      forbidden(
        'spec.tolerations',
        'existing toleration can not be modified except its tolerationSeconds',
      ),
    );
  }
  // The spec with every field an update may change set back to the stored one's.
  const munged: JsonObject = { ...spec };
  const withOldImages = (name: string): void => {
    const old = objects(oldSpec, name);
    const items = getArray(spec, name);
    if (!items) return;
    munged[name] = items.map((item, i) =>
      isObject(item) ? { ...item, image: old[i]?.image } : item,
    );
  };
  withOldImages('containers');
  withOldImages('initContainers');
  munged.activeDeadlineSeconds = oldSpec.activeDeadlineSeconds;
  munged.tolerations = oldSpec.tolerations;
  const oldGrace = oldSpec.terminationGracePeriodSeconds;
  if (typeof oldGrace === 'number' && oldGrace < 0 && spec.terminationGracePeriodSeconds === 1) {
    munged.terminationGracePeriodSeconds = oldGrace;
  }
  const before = normalized(oldSpec);
  const after = normalized(munged);
  if (!sameJson(after, before)) {
    const changed: string[] = [];
    differences(before, after, 'spec', changed);
    errors.push(
      forbidden(
        'spec',
        `pod updates may not change fields other than ${updatableFields.join(',')}\n${changed.join('\n')}`,
      ),
    );
  }
  return errors;
}
