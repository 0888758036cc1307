/**
 * PUT of an object or its /status (handlers/update.go + rest.BeforeUpdate),
 * and the update path PATCH shares. Optimistic concurrency as upstream: a
 * body carrying metadata.resourceVersion is written only if the object is
 * still at that version (else 409 Conflict); without one the update is
 * unconditional (every kind strata serves allows that upstream) and is
 * retried against the latest object when a concurrent write wins.
 */
import type { KubeObject, ResourceType } from '../api/types.js';
import type { ApiContext } from './context.js';
import { conflict, invalid } from './status.js';
import { type PortReservation, nodePorts } from './node-ports.js';
import { type Reservation, clusterIps, isService } from './service-ips.js';
import { guaranteedUpdate } from './storage.js';
import {
  admitObject,
  parseResourceVersion,
  prepareForStatusUpdate,
  prepareForUpdate,
} from './strategy.js';

export interface UpdateTarget {
  resource: ResourceType;
  namespace?: string;
  name: string;
  subresource?: 'status';
}

/**
 * Updates the object from what `incoming` makes of the current one (the
 * request body for PUT, the patched object for PATCH). Returns what was
 * stored; an object whose deletion only waited for its finalizers is removed
 * once the update empties them, as upstream.
 */
export async function updateObject(
  ctx: ApiContext,
  target: UpdateTarget,
  incoming: (current: KubeObject) => unknown,
): Promise<KubeObject> {
  const { resource, namespace, name } = target;
  const reservations: Reservation[] = [];
  const portReservations: PortReservation[] = [];
  const update = guaranteedUpdate(ctx.store, resource, namespace, name, (current) => {
    const object = admitObject(incoming(current), resource, { namespace, name });
    const expected = parseResourceVersion(object.metadata.resourceVersion);
    if (expected !== undefined && String(expected) !== current.metadata.resourceVersion) {
      throw conflict(resource, name);
    }
    const next =
      target.subresource === 'status'
        ? prepareForStatusUpdate(object, current)
        : prepareForUpdate(resource, object, current);
    resource.applyDefaults(next);
    const errors = resource.validate(next, current);
    if (errors.length > 0) throw invalid(resource, name, errors);
    if (finalizersDone(next)) return 'delete';
    if (isService(resource)) {
      if (ctx.serviceIps) reservations.push(ctx.serviceIps.reserveAdded(next, current));
      // A /status write keeps the spec as it is: no node ports for it.
      if (target.subresource !== 'status') {
        portReservations.push(ctx.nodePorts.reserveUpdate(next, current));
      }
    }
    return next;
  });
  let result: Awaited<typeof update>;
  try {
    result = await update;
  } catch (error) {
    for (const reservation of [...reservations, ...portReservations]) reservation.release();
    throw error;
  }
  if (reservations.length > 0) {
    const kept = result.deleted ? [] : clusterIps(result.object);
    for (const reservation of reservations) reservation.release(kept);
  }
  if (portReservations.length > 0) {
    const kept = result.deleted ? [] : nodePorts(result.object);
    for (const reservation of portReservations) reservation.release(kept);
  }
  return result.object;
}

/** Deletion was requested, its grace period is over, and no finalizer holds it (registry/generic deleteWithoutFinalizers). */
export function finalizersDone(object: KubeObject): boolean {
  const { deletionTimestamp, deletionGracePeriodSeconds, finalizers } = object.metadata;
  return (
    deletionTimestamp !== undefined &&
    (deletionGracePeriodSeconds ?? 0) === 0 &&
    (finalizers ?? []).length === 0
  );
}

export function handleUpdate(
  ctx: ApiContext,
  target: UpdateTarget,
  body: unknown,
): Promise<KubeObject> {
  // Each retry re-admits a copy: admitObject fills fields in place.
  return updateObject(ctx, target, () => structuredClone(body));
}
