/**
 * discovery.k8s.io/v1 EndpointSlice, after pkg/apis/discovery/validation
 * (ValidateEndpointSlice, validateEndpoints, validateEndpointSlicePorts) and
 * pkg/apis/discovery/v1/defaults.go.
 */
import { type IpAddress, parseIp, parsePrefix, prefixContains } from '../../netaddr/ip.js';
import type { FieldError, KubeObject } from '../types.js';
import { dns1123Label, dns1123Subdomain, portProtocols, qualifiedName } from './formats.js';
import {
  type JsonObject,
  anyObject,
  arr,
  bool,
  duplicate,
  getArray,
  getString,
  int,
  invalid,
  isObject,
  kindSchema,
  obj,
  objectItems,
  setDefault,
  str,
  validateKind,
} from './schema.js';
import { labelMap } from './selector.js';

export const addressTypes = ['IPv4', 'IPv6', 'FQDN'] as const;

const forbiddenRanges: [string, string][] = [
  ['127.0.0.0/8', 'may not be in the loopback range (127.0.0.0/8, ::1/128)'],
  ['::1/128', 'may not be in the loopback range (127.0.0.0/8, ::1/128)'],
  ['169.254.0.0/16', 'may not be in the link-local range (169.254.0.0/16, fe80::/10)'],
  ['fe80::/10', 'may not be in the link-local range (169.254.0.0/16, fe80::/10)'],
  ['224.0.0.0/24', 'may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)'],
  ['ff02::/16', 'may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)'],
];

/** ValidateEndpointIP: unspecified, loopback and link-local addresses make no sense as endpoints. */
function endpointIpProblem(ip: IpAddress): string | undefined {
  if (ip.value === 0n) return 'may not be unspecified';
  for (const [range, detail] of forbiddenRanges) {
    const prefix = parsePrefix(range);
    if (prefix && prefixContains(prefix, ip)) return detail;
  }
  return undefined;
}

/** IsFullyQualifiedDomainName: at least two labels, a DNS subdomain. */
function fqdnProblem(value: string): string | undefined {
  const name = value.endsWith('.') ? value.slice(0, -1) : value;
  if (name.split('.').length < 2)
    return 'should be a domain with at least two segments separated by dots';
  return dns1123Subdomain(name);
}

function checkAddresses(slice: JsonObject, errors: FieldError[]): void {
  const addressType = getString(slice, 'addressType');
  for (const [i, endpoint] of objectItems(slice, 'endpoints')) {
    getArray(endpoint, 'addresses')?.forEach((address, j) => {
      if (typeof address !== 'string') return;
      const path = `endpoints[${i}].addresses[${j}]`;
      if (addressType === 'FQDN') {
        const problem = fqdnProblem(address);
        if (problem !== undefined) errors.push(invalid(path, address, problem));
        return;
      }
      if (addressType !== 'IPv4' && addressType !== 'IPv6') return;
      const ip = parseIp(address);
      const family = addressType === 'IPv4' ? 4 : 6;
      if (ip?.family !== family) {
        errors.push(invalid(path, address, `must be a valid ${addressType} address`));
        return;
      }
      const problem = endpointIpProblem(ip);
      if (problem !== undefined) errors.push(invalid(path, address, problem));
    });
  }
}

function checkPortNames(ports: unknown[], path: string, errors: FieldError[]): void {
  const seen = new Set<string>();
  ports.forEach((port, i) => {
    if (!isObject(port)) return;
    const text = getString(port, 'name') ?? '';
    if (seen.has(text)) errors.push(duplicate(`${path}[${i}].name`, text));
    seen.add(text);
  });
}

const hintList = arr(obj({ name: str() }, { required: ['name'] }), { maxItems: 8 });

const endpointSliceSchema = kindSchema(
  {
    addressType: str({ enum: addressTypes }),
    endpoints: arr(
      obj(
        {
          addresses: arr(str(), { minItems: 1, maxItems: 100 }),
          conditions: obj({ ready: bool(), serving: bool(), terminating: bool() }),
          hostname: str({ format: dns1123Label }),
          targetRef: anyObject(),
          deprecatedTopology: labelMap(),
          nodeName: str({ format: dns1123Subdomain }),
          zone: str(),
          hints: obj({ forZones: hintList, forNodes: hintList }),
        },
        { required: ['addresses'] },
      ),
      { maxItems: 1000 },
    ),
    ports: arr(
      obj({
        name: str({ format: dns1123Label }),
        protocol: str({ enum: portProtocols }),
        port: int({ min: 1, max: 65535 }),
        appProtocol: str({ format: qualifiedName }),
      }),
      { maxItems: 20000, check: checkPortNames },
    ),
  },
  ['addressType'],
);

export const endpointSliceRules = {
  applyDefaults(object: KubeObject): void {
    for (const [, port] of objectItems(object, 'ports')) {
      setDefault(port, 'name', '');
      setDefault(port, 'protocol', 'TCP');
    }
  },
  validate(object: KubeObject, old?: KubeObject): FieldError[] {
    const errors = validateKind(object, endpointSliceSchema);
    checkAddresses(object, errors);
    if (old && old.addressType !== object.addressType) {
      errors.push(invalid('addressType', object.addressType, 'field is immutable'));
    }
    return errors;
  },
};
