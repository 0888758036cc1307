/**
 * v1 Namespace, after pkg/apis/core/validation (ValidateNamespace: the name
 * is a DNS-1123 label) and pkg/apis/core/v1/defaults.go (SetDefaults_Namespace:
 * the `kubernetes.io/metadata.name` label NetworkPolicy namespaceSelectors
 * rely on).
 */
import type { FieldError, KubeObject } from '../types.js';
import { dns1123Label, dns1123Subdomain, qualifiedName } from './formats.js';
import {
  arr,
  ensureObject,
  getObject,
  invalid,
  kindSchema,
  metadataName,
  obj,
  setDefault,
  str,
  validateKind,
} from './schema.js';

export const namespaceNameLabel = 'kubernetes.io/metadata.name';

const namespaceSchema = kindSchema({
  spec: obj({ finalizers: arr(str({ format: qualifiedName })) }),
});

export const namespaceRules = {
  applyDefaults(object: KubeObject): void {
    const name = metadataName(object);
    const metadata = getObject(object, 'metadata');
    if (metadata && name !== undefined && name !== '') {
      const labels = ensureObject(metadata, 'labels');
      if (labels) labels[namespaceNameLabel] = name;
    }
    const status = ensureObject(object, 'status');
    if (status) setDefault(status, 'phase', 'Active');
  },
  validate(object: KubeObject): FieldError[] {
    const errors = validateKind(object, namespaceSchema);
    const name = metadataName(object);
    // metadata.name is already reported when it is not even a subdomain.
    if (name !== undefined && dns1123Subdomain(name) === undefined) {
      const problem = dns1123Label(name);
      if (problem !== undefined) errors.push(invalid('metadata.name', name, problem));
    }
    return errors;
  },
};
