/**
 * POST pods/<name>/binding: binds a pod to a node, as kube-scheduler does
 * (pkg/registry/core/pod/storage BindingREST). The body is a v1 Binding,
 * `{metadata: {name}, target: {kind: Node, name}}`, named as the pod; its
 * metadata.uid and resourceVersion, when given, are preconditions on the
 * pod, and its annotations are added to the pod's. The pod gets
 * spec.nodeName and condition PodScheduled=True in one write, which no
 * update of the pod can make (its spec.nodeName is fixed, as upstream's).
 * Answers 201 with a Success Status; 409 Conflict on pods/binding when the
 * pod is already bound or being deleted, as upstream.
 */
import { dns1123Subdomain } from '../api/validation/formats.js';
import type { FieldError, KubeObject, ResourceType } from '../api/types.js';
import type { ApiContext } from './context.js';
import { isJsonObject } from './json-value.js';
import { type Status, badRequest, conflict, invalid } from './status.js';
import { guaranteedUpdate } from './storage.js';
import { timestamp } from '../api/time.js';

/** Where upstream's binding errors say they happened. */
const bindingResource = { group: '', plural: 'pods/binding' };
const bindingKind = { group: '', kind: 'Binding' };

interface Binding {
  name: string;
  node: string;
  uid?: string;
  resourceVersion?: string;
  annotations: Record<string, string>;
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw badRequest(`${field} must be a string`);
  return value;
}

/** The Binding a request body holds: 400 when it is not one for this pod, 422 when its target is invalid. */
export function parseBinding(body: unknown, namespace: string | undefined, name: string): Binding {
  if (!isJsonObject(body)) throw badRequest('the body must be a Binding object');
  const apiVersion = body.apiVersion ?? 'v1';
  const kind = body.kind ?? 'Binding';
  if (apiVersion !== 'v1' || kind !== 'Binding') {
    throw badRequest(
      `the object provided is unrecognized (must be of type Binding, apiVersion v1): got ${JSON.stringify(kind)}, apiVersion ${JSON.stringify(apiVersion)}`,
    );
  }
  const metadata = body.metadata ?? {};
  if (!isJsonObject(metadata)) throw badRequest('metadata must be an object');
  if (metadata.name !== name) {
    throw badRequest('name in URL does not match name in Binding object');
  }
  const bindingNamespace = optionalString(metadata.namespace, 'metadata.namespace');
  if (bindingNamespace !== undefined && bindingNamespace !== namespace) {
    throw badRequest(
      'the namespace of the provided object does not match the namespace sent on the request',
    );
  }
  const annotations = metadata.annotations ?? {};
  if (!isJsonObject(annotations) || Object.values(annotations).some((v) => typeof v !== 'string')) {
    throw badRequest('metadata.annotations must be a map of strings');
  }
  const target = body.target ?? {};
  if (!isJsonObject(target)) throw badRequest('target must be an object');
  // ValidatePodBinding, and the node name a pod's spec.nodeName must be.
  const errors: FieldError[] = [];
  const targetKind = target.kind ?? '';
  if (targetKind !== '' && targetKind !== 'Node') {
    errors.push({
      field: 'target.kind',
      type: 'NotSupported',
      value: targetKind,
      detail: 'supported values: "Node", "<empty>"',
    });
  }
  const node = target.name;
  if (node === undefined || node === null || node === '') {
    errors.push({ field: 'target.name', type: 'Required', detail: '' });
  } else if (typeof node !== 'string') {
    errors.push({ field: 'target.name', type: 'Invalid', value: node, detail: 'must be a string' });
  } else {
    const problem = dns1123Subdomain(node);
    if (problem !== undefined) {
      errors.push({ field: 'target.name', type: 'Invalid', value: node, detail: problem });
    }
  }
  if (errors.length > 0) throw invalid(bindingKind, name, errors);
  return {
    name,
    node: node as string,
    uid: optionalString(metadata.uid, 'metadata.uid'),
    resourceVersion: optionalString(metadata.resourceVersion, 'metadata.resourceVersion'),
    annotations: annotations as Record<string, string>,
  };
}

/** podutil.UpdatePodCondition with PodScheduled=True: a new transition time only when the status changes. */
function markScheduled(pod: KubeObject): void {
  const status = pod.status ?? {};
  const conditions = Array.isArray(status.conditions)
    ? (status.conditions as Record<string, unknown>[])
    : [];
  const previous = conditions.find((c) => c.type === 'PodScheduled');
  const condition = {
    type: 'PodScheduled',
    status: 'True',
    lastProbeTime: null,
    lastTransitionTime:
      previous?.status === 'True' && previous.lastTransitionTime !== undefined
        ? previous.lastTransitionTime
        : timestamp(),
  };
  pod.status = {
    ...status,
    conditions: previous
      ? conditions.map((c) => (c === previous ? condition : c))
      : [...conditions, condition],
  };
}

/** setPodNodeNameAndMetadata, against the latest pod. */
export async function handleBinding(
  ctx: ApiContext,
  resource: ResourceType,
  namespace: string | undefined,
  name: string,
  body: unknown,
): Promise<Status> {
  const binding = parseBinding(body, namespace, name);
  await guaranteedUpdate(ctx.store, resource, namespace, name, (pod) => {
    const meta = pod.metadata;
    if (binding.uid !== undefined && binding.uid !== meta.uid) {
      throw conflict(
        resource,
        name,
        `Precondition failed: UID in precondition: ${binding.uid}, UID in object meta: ${meta.uid ?? ''}`,
      );
    }
    if (binding.resourceVersion !== undefined && binding.resourceVersion !== meta.resourceVersion) {
      throw conflict(
        resource,
        name,
        `Precondition failed: ResourceVersion in precondition: ${binding.resourceVersion}, ResourceVersion in object meta: ${meta.resourceVersion ?? ''}`,
      );
    }
    if (meta.deletionTimestamp !== undefined) {
      throw conflict(
        bindingResource,
        name,
        `pod ${name} is being deleted, cannot be assigned to a host`,
      );
    }
    const bound = pod.spec?.nodeName;
    if (typeof bound === 'string' && bound !== '') {
      throw conflict(bindingResource, name, `pod ${name} is already assigned to node "${bound}"`);
    }
    pod.spec = { ...pod.spec, nodeName: binding.node };
    if (Object.keys(binding.annotations).length > 0) {
      meta.annotations = { ...meta.annotations, ...binding.annotations };
    }
    markScheduled(pod);
    return pod;
  });
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 };
}
