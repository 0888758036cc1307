/**
 * What `strata apply` sends for an object that exists: kubectl's
 * client-side apply, a three-way JSON merge patch
 * (apimachinery jsonmergepatch.CreateThreeWayJSONMergePatch) between
 * - the original: the configuration applied last time, kept in the
 *   object's `kubectl.kubernetes.io/last-applied-configuration` annotation;
 * - the modified: the manifest now applied (with that annotation set to it);
 * - the current: the object as the server has it.
 * Fields the original had and the manifest dropped are deleted (null);
 * fields of the manifest the current object does not match are set. Values
 * the server filled in (defaults inside a container, a Service's
 * clusterIP) are not changes: a manifest value is matched when the current
 * value contains it. Lists are replaced whole (the API server applies
 * strategic merge patches as merge patches), and a list the manifest
 * changed since the last apply is sent even when the current one contains
 * it, so a field removed from a list item goes.
 */
import type { KubeObject } from '../api/types.js';

export const lastAppliedAnnotation = 'kubectl.kubernetes.io/last-applied-configuration';

type Json = Record<string, unknown>;

function isJsonObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Fields a manifest copied from `get -o yaml` carries that are the server's to set. */
const serverMetadata = [
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'selfLink',
  'managedFields',
];

/**
 * The configuration an apply records and sends: the manifest without the
 * server's fields (metadata it owns, status), the last-applied annotation
 * left out (it is added by `withLastApplied`).
 */
export function appliedConfiguration(manifest: KubeObject): KubeObject {
  const { metadata, ...rest } = structuredClone(manifest);
  const kept = Object.entries(metadata).filter(([field]) => !serverMetadata.includes(field));
  const config: KubeObject = { ...rest, metadata: Object.fromEntries(kept) };
  delete config.status;
  const annotations = Object.entries(metadata.annotations ?? {}).filter(
    ([key]) => key !== lastAppliedAnnotation,
  );
  if (annotations.length > 0) config.metadata.annotations = Object.fromEntries(annotations);
  else delete config.metadata.annotations;
  return config;
}

/** The configuration with the annotation recording it, as create and patch send it. */
export function withLastApplied(config: KubeObject): KubeObject {
  const object = structuredClone(config);
  object.metadata.annotations = {
    ...object.metadata.annotations,
    [lastAppliedAnnotation]: JSON.stringify(config),
  };
  return object;
}

/** The configuration recorded by the last apply; undefined when the object was never applied. */
export function lastApplied(current: KubeObject): Json | undefined {
  const text = current.metadata.annotations?.[lastAppliedAnnotation];
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    return isJsonObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  }
  if (isJsonObject(a) && isJsonObject(b)) {
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length &&
      keys.every((key) => key in b && deepEqual(a[key], b[key]))
    );
  }
  return false;
}

/** Whether `current` has everything `wanted` asks for (the server may have added more). */
function contains(current: unknown, wanted: unknown): boolean {
  if (wanted === null) return current === undefined || current === null;
  if (Array.isArray(wanted)) {
    return (
      Array.isArray(current) &&
      current.length === wanted.length &&
      wanted.every((item, i) => contains(current[i], item))
    );
  }
  if (isJsonObject(wanted)) {
    // An empty object asks for nothing; the server may leave it out.
    if (current === undefined) return Object.keys(wanted).length === 0;
    return (
      isJsonObject(current) && Object.entries(wanted).every(([k, v]) => contains(current[k], v))
    );
  }
  return current === wanted;
}

function threeWay(original: Json | undefined, modified: Json, current: Json): Json {
  const patch: Json = {};
  for (const [key, wanted] of Object.entries(modified)) {
    const now = current[key];
    const before = original?.[key];
    if (isJsonObject(wanted) && isJsonObject(now)) {
      const nested = threeWay(isJsonObject(before) ? before : undefined, wanted, now);
      if (Object.keys(nested).length > 0) patch[key] = nested;
    } else if (
      !contains(now, wanted) ||
      (Array.isArray(wanted) && before !== undefined && !deepEqual(before, wanted))
    ) {
      patch[key] = wanted;
    }
  }
  for (const key of Object.keys(original ?? {})) {
    if (!(key in modified) && current[key] !== undefined) patch[key] = null;
  }
  return patch;
}

/**
 * The merge patch that makes `current` what `manifest` says, or undefined
 * when nothing is to change (`unchanged`). `manifest` is the applied
 * configuration (see appliedConfiguration).
 */
export function applyPatch(current: KubeObject, config: KubeObject): Json | undefined {
  const modified: Json = withLastApplied(config);
  const patch = threeWay(lastApplied(current), modified, current);
  return Object.keys(patch).length === 0 ? undefined : patch;
}

export type ApplyAction = 'created' | 'configured' | 'unchanged';
