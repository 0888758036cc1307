/**
 * gateway.networking.k8s.io/v1 Gateway: the fields of apis/v1/gateway_types.go
 * (standard channel) with its CRD's patterns, CEL rules and defaults.
 */
import { parseIp } from '../../../netaddr/ip.js';
import type { FieldError, KubeObject } from '../../types.js';
import {
  arr,
  duplicate,
  ensureObject,
  forbidden,
  getArray,
  getObject,
  getString,
  invalid,
  isObject,
  isSet,
  kindSchema,
  map,
  obj,
  objectItems,
  required,
  setDefault,
  str,
  validateKind,
} from '../schema.js';
import { labelSelector } from '../selector.js';
import {
  gatewayGroup,
  groupName,
  hostname,
  kindName,
  namespaceName,
  objectName,
  portNumber,
  sectionName,
} from './common.js';

/** ProtocolType: a core protocol name or a domain-prefixed one (`example.com/proto`). */
const protocol = str({
  maxLength: 255,
  format: (value) =>
    /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$/.test(
      value,
    )
      ? undefined
      : 'must be HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed protocol',
});

const tlsConfig = obj(
  {
    mode: str({ enum: ['Terminate', 'Passthrough'] }),
    certificateRefs: arr(
      obj(
        { group: groupName(), kind: kindName(), name: objectName(), namespace: namespaceName() },
        { required: ['name'] },
      ),
      { maxItems: 64 },
    ),
    options: map(str({ maxLength: 4096 }), { maxProperties: 16 }),
  },
  {
    check: (tls, path, errors) => {
      const mode = getString(tls, 'mode') ?? 'Terminate';
      const refs = getArray(tls, 'certificateRefs') ?? [];
      const options = getObject(tls, 'options') ?? {};
      if (mode === 'Terminate' && refs.length === 0 && Object.keys(options).length === 0) {
        errors.push(
          required(
            `${path}.certificateRefs`,
            'certificateRefs or options must be specified when mode is Terminate',
          ),
        );
      }
    },
  },
);

const listener = obj(
  {
    name: sectionName(),
    hostname: hostname(),
    port: portNumber(),
    protocol,
    tls: tlsConfig,
    allowedRoutes: obj({
      namespaces: obj({
        from: str({ enum: ['All', 'Same', 'Selector'] }),
        selector: labelSelector,
      }),
      kinds: arr(obj({ group: groupName(), kind: kindName() }, { required: ['kind'] }), {
        maxItems: 8,
      }),
    }),
  },
  { required: ['name', 'port', 'protocol'] },
);

/** The CEL rules on `listeners`. */
function checkListeners(listeners: unknown[], path: string, errors: FieldError[]): void {
  const names = new Set<string>();
  const endpoints = new Set<string>();
  listeners.forEach((item, i) => {
    if (!isObject(item)) return;
    const l = item;
    const at = `${path}[${i}]`;
    const proto = getString(l, 'protocol');
    if ((proto === 'HTTP' || proto === 'TCP' || proto === 'UDP') && isSet(l, 'tls')) {
      errors.push(
        forbidden(`${at}.tls`, "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"),
      );
    }
    if (proto === 'HTTPS') {
      const mode = getString(getObject(l, 'tls') ?? {}, 'mode');
      if (!isSet(l, 'tls'))
        errors.push(required(`${at}.tls`, 'tls must be specified for protocol HTTPS'));
      else if (mode !== undefined && mode !== 'Terminate') {
        errors.push(
          invalid(`${at}.tls.mode`, mode, 'tls mode must be Terminate for protocol HTTPS'),
        );
      }
    }
    if ((proto === 'TCP' || proto === 'UDP') && getString(l, 'hostname')) {
      errors.push(
        forbidden(`${at}.hostname`, "hostname must not be specified for protocols ['TCP', 'UDP']"),
      );
    }
    const name = getString(l, 'name');
    if (name !== undefined) {
      if (names.has(name)) errors.push(duplicate(`${at}.name`, name));
      names.add(name);
    }
    const endpoint = `${String(l.port)}/${proto ?? ''}/${getString(l, 'hostname') ?? ''}`;
    if (endpoints.has(endpoint)) {
      errors.push(
        invalid(
          at,
          endpoint,
          'combination of port, protocol and hostname must be unique for each listener',
        ),
      );
    }
    endpoints.add(endpoint);
  });
}

const address = obj(
  { type: str({ maxLength: 253 }), value: str({ maxLength: 253 }) },
  {
    required: ['value'],
    check: (a, path, errors) => {
      const value = getString(a, 'value');
      if (
        (getString(a, 'type') ?? 'IPAddress') === 'IPAddress' &&
        value !== undefined &&
        !parseIp(value)
      ) {
        errors.push(invalid(`${path}.value`, value, 'value must be an IP address'));
      }
    },
  },
);

const gatewaySchema = kindSchema(
  {
    spec: obj(
      {
        gatewayClassName: objectName(),
        listeners: arr(listener, { minItems: 1, maxItems: 64, check: checkListeners }),
        addresses: arr(address, { maxItems: 16 }),
        infrastructure: obj({
          labels: map(str({ maxLength: 63 }), { maxProperties: 8 }),
          annotations: map(str({ maxLength: 4096 }), { maxProperties: 8 }),
          parametersRef: obj(
            { group: groupName(), kind: kindName(), name: objectName() },
            { required: ['group', 'kind', 'name'] },
          ),
        }),
      },
      { required: ['gatewayClassName', 'listeners'] },
    ),
  },
  ['spec'],
);

export const gatewayRules = {
  applyDefaults(object: KubeObject): void {
    const spec = getObject(object, 'spec');
    if (!spec) return;
    for (const [, a] of objectItems(spec, 'addresses')) setDefault(a, 'type', 'IPAddress');
    for (const [, l] of objectItems(spec, 'listeners')) {
      const allowed = ensureObject(l, 'allowedRoutes');
      const namespaces = allowed && ensureObject(allowed, 'namespaces');
      if (namespaces) setDefault(namespaces, 'from', 'Same');
      for (const [, k] of allowed ? objectItems(allowed, 'kinds') : [])
        setDefault(k, 'group', gatewayGroup);
      const tls = getObject(l, 'tls');
      if (tls) {
        setDefault(tls, 'mode', 'Terminate');
        for (const [, ref] of objectItems(tls, 'certificateRefs')) {
          setDefault(ref, 'group', '');
          setDefault(ref, 'kind', 'Secret');
        }
      }
    }
  },
  validate(object: KubeObject): FieldError[] {
    return validateKind(object, gatewaySchema);
  },
};
