/**
 * POST to a collection: create (handlers/create.go + rest.BeforeCreate).
 * Order as upstream: the envelope, the namespace's lifecycle, the system
 * fields and a generated name, defaults, validation, a Service's cluster
 * IPs (with a service CIDR: service-ips.ts) and node ports (node-ports.ts),
 * then the write.
 */
import type { KubeObject, ResourceType } from '../api/types.js';
import type { ApiContext } from './context.js';
import { ApiStatusError, internalError, invalid } from './status.js';
import { isService } from './service-ips.js';
import { createObject } from './storage.js';
import { admitObject, generateName, prepareForCreate } from './strategy.js';

/** How many generated names are tried before giving up on AlreadyExists (upstream retries too). */
const generateNameAttempts = 8;

export async function handleCreate(
  ctx: ApiContext,
  resource: ResourceType,
  namespace: string | undefined,
  body: unknown,
): Promise<KubeObject> {
  const object = admitObject(body, resource, { namespace });
  if (object.metadata.resourceVersion) {
    // etcd3 store.Create rejects this with an internal error, as upstream.
    throw internalError('resourceVersion should not be set on objects to be created');
  }
  const store = async (o: KubeObject): Promise<KubeObject> => {
    // Cluster IPs and node ports last, once the object is valid, and freed if it is not stored.
    const reservations: { release(): void }[] = [];
    try {
      if (isService(resource)) {
        if (ctx.serviceIps) reservations.push(ctx.serviceIps.allocate(o));
        reservations.push(ctx.nodePorts.allocate(o));
      }
      return await createObject(ctx.store, resource, o);
    } catch (error) {
      for (const reservation of reservations) reservation.release();
      throw error;
    }
  };
  const write = (): Promise<KubeObject> => createWithName(resource, object, store);
  if (!resource.namespaced) return write();
  return ctx.namespaces.admitCreate(
    namespace ?? '',
    resource,
    object.metadata.name ?? object.metadata.generateName ?? '',
    write,
  );
}

/** Defaults, validation and the write; with generateName, a new name after each collision. */
async function createWithName(
  resource: ResourceType,
  given: KubeObject,
  write: (object: KubeObject) => Promise<KubeObject>,
): Promise<KubeObject> {
  const generating =
    !given.metadata.name &&
    typeof given.metadata.generateName === 'string' &&
    given.metadata.generateName !== '';
  for (let attempt = 1; ; attempt++) {
    const object = structuredClone(given);
    prepareForCreate(resource, object);
    if (generating) object.metadata.name = generateName(object.metadata.generateName ?? '');
    resource.applyDefaults(object);
    const errors = resource.validate(object);
    if (errors.length > 0) throw invalid(resource, object.metadata.name ?? '', errors);
    try {
      return await write(object);
    } catch (error) {
      const taken = error instanceof ApiStatusError && error.status.reason === 'AlreadyExists';
      if (!generating || !taken || attempt >= generateNameAttempts) throw error;
    }
  }
}
