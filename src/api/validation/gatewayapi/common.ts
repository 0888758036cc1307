/**
 * Types the Gateway API kinds share (apis/v1/shared_types.go,
 * object_reference_types.go): names, hostnames, references to parents and
 * backends, with the patterns and CEL rules of the standard-channel CRDs.
 */
import type { FieldError } from '../../types.js';
import { gatewayDuration, httpHeaderName, isWildcardDomain } from '../formats.js';
import {
  type Format,
  type JsonObject,
  type Schema,
  getString,
  int,
  isSet,
  obj,
  required,
  setDefault,
  str,
} from '../schema.js';

export const gatewayGroup = 'gateway.networking.k8s.io';

const dnsSubdomainPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const pattern =
  (regex: RegExp, detail: string): Format =>
  (value) =>
    regex.test(value) ? undefined : detail;

/** Hostname: an RFC 1123 name, optionally with a leading "*." label; no IPs. */
export const hostname = (): Schema =>
  str({
    maxLength: 253,
    format: (value) =>
      value !== '*' && isWildcardDomain(value) && !/^[0-9.]+$/.test(value)
        ? undefined
        : 'must be a lowercase RFC 1123 hostname, optionally prefixed with "*."',
  });

/** PreciseHostname: a hostname without a wildcard. */
export const preciseHostname = (): Schema =>
  str({
    maxLength: 253,
    format: pattern(dnsSubdomainPattern, 'must be a lowercase RFC 1123 hostname without wildcards'),
  });

/** SectionName: a listener or rule name. */
export const sectionName = (): Schema =>
  str({
    maxLength: 253,
    format: pattern(dnsSubdomainPattern, 'must be a lowercase RFC 1123 subdomain'),
  });

export const objectName = (): Schema => str({ maxLength: 253 });

export const namespaceName = (): Schema =>
  str({
    maxLength: 63,
    format: pattern(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lowercase RFC 1123 label'),
  });

export const groupName = (): Schema =>
  str({
    maxLength: 253,
    format: pattern(dnsSubdomainPattern, 'must be empty or a lowercase RFC 1123 subdomain'),
  });

export const kindName = (): Schema =>
  str({
    maxLength: 63,
    format: pattern(
      /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/,
      'must be a kind name such as "Service"',
    ),
  });

export const portNumber = (): Schema => int({ min: 1, max: 65535 });

export const headerName = (): Schema => str({ format: httpHeaderName });

/** Duration (GEP-2257). */
export const duration = (): Schema => str({ format: gatewayDuration });

/** ParentReference: the Gateway (or listener) a route attaches to. */
export const parentRef: Schema = obj(
  {
    group: groupName(),
    kind: kindName(),
    namespace: namespaceName(),
    name: objectName(),
    sectionName: sectionName(),
    port: portNumber(),
  },
  { required: ['name'] },
);

/** BackendObjectReference's rule: "Must have port for Service reference". */
export function checkBackendPort(ref: JsonObject, path: string, errors: FieldError[]): void {
  const group = getString(ref, 'group') ?? '';
  const kind = getString(ref, 'kind') ?? 'Service';
  if (group === '' && kind === 'Service' && !isSet(ref, 'port')) {
    errors.push(required(`${path}.port`, 'must have port for Service reference'));
  }
}

export const backendObjectFields = {
  group: groupName(),
  kind: kindName(),
  name: objectName(),
  namespace: namespaceName(),
  port: portNumber(),
};

/** BackendObjectReference. */
export const backendObjectRef: Schema = obj(backendObjectFields, {
  required: ['name'],
  check: checkBackendPort,
});

/** The CRD defaults of a ParentReference. */
export function defaultParentRef(ref: JsonObject): void {
  setDefault(ref, 'group', gatewayGroup);
  setDefault(ref, 'kind', 'Gateway');
}

/** The CRD defaults of a BackendObjectReference. */
export function defaultBackendRef(ref: JsonObject): void {
  setDefault(ref, 'group', '');
  setDefault(ref, 'kind', 'Service');
}
