/**
 * Kubernetes-shaped API objects: every manifest kind strata accepts shares
 * these envelopes (apiVersion, kind, metadata), with upstream's field names.
 */

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [field: string]: unknown;
}

export interface ListMeta {
  resourceVersion: string;
  continue?: string;
}

export interface KubeList<T extends KubeObject = KubeObject> {
  apiVersion: string;
  kind: string;
  metadata: ListMeta;
  items: T[];
}

/** One invalid field, as Kubernetes' field.Error reports it (`spec.ports[0].port`). */
export interface FieldError {
  /** The path of the field: `metadata.name`, `spec.ingress[0].ports[1].port`. */
  field: string;
  type: 'Required' | 'Invalid' | 'NotSupported' | 'Duplicate' | 'Forbidden' | 'TooLong' | 'TooMany';
  /** The value found, when there is one. */
  value?: unknown;
  detail: string;
}

/** A kind the API serves: where it lives, and the rules for its objects. */
export interface ResourceType {
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  /** The URL segment: `pods`, `networkpolicies`. */
  plural: string;
  singular: string;
  shortNames: readonly string[];
  namespaced: boolean;
  /** Whether the kind has a status the server keeps apart from spec (the status subresource). */
  hasStatus: boolean;
  /** Fills upstream's server-side defaults in place (for example NetworkPolicy policyTypes). */
  applyDefaults(object: KubeObject): void;
  /** Every problem with the object (`old` is the stored version on update); empty when valid. */
  validate(object: KubeObject, old?: KubeObject): FieldError[];
}

/** `v1` for the core group, `group/version` otherwise. */
export function apiVersionOf(resource: Pick<ResourceType, 'group' | 'version'>): string {
  return resource.group === '' ? resource.version : `${resource.group}/${resource.version}`;
}
