/**
 * v1 Service, after pkg/apis/core/validation (ValidateService,
 * validateServicePort, validateClientIPAffinityConfig) and
 * pkg/apis/core/v1/defaults.go (SetDefaults_Service).
 *
 * strata serves ClusterIP (with headless) and NodePort Services;
 * LoadBalancer and ExternalName are refused by name, with their fields.
 */
import { parseIp } from '../../netaddr/ip.js';
import type { FieldError, KubeObject } from '../types.js';
import {
  checkPortNumberOrName,
  dns1035Label,
  dns1123Label,
  dns1123Subdomain,
  portProtocols,
  qualifiedName,
} from './formats.js';
import {
  type JsonObject,
  arr,
  bool,
  duplicate,
  ensureObject,
  forbidden,
  getArray,
  getInteger,
  getObject,
  getString,
  int,
  intOrString,
  invalid,
  isSet,
  kindSchema,
  metadataName,
  obj,
  objectItems,
  required,
  setDefault,
  str,
  unsupported,
  validateKind,
} from './schema.js';
import { labelMap } from './selector.js';

/** The kube-apiserver's default --service-node-port-range (the API server's allocator checks the range it is given). */
export const nodePortRange = { min: 30000, max: 32767 } as const;

/** core.MaxClientIPServiceAffinitySeconds: one day. */
const maxClientIpAffinitySeconds = 86400;

const servicePort = obj(
  {
    name: str({ format: dns1123Label }),
    protocol: str({ enum: portProtocols }),
    appProtocol: str({ format: qualifiedName }),
    port: int({ min: 1, max: 65535 }),
    targetPort: intOrString(checkPortNumberOrName),
    // Its range is the API server's (--service-node-port-range), checked
    // where node ports are allocated (apiserver/node-ports.ts), as upstream.
    nodePort: int(),
  },
  { required: ['port', 'protocol'] },
);

const onlyLoadBalancer = unsupported(
  'only LoadBalancer Services use this field, and strata does not support them yet',
);

function checkClusterIp(value: string, path: string, errors: FieldError[]): void {
  if (value !== 'None' && value !== '' && !parseIp(value)) {
    errors.push(invalid(path, value, "must be a valid IP address or 'None'"));
  }
}

function checkPorts(spec: JsonObject, errors: FieldError[]): void {
  const ports = objectItems(spec, 'ports');
  const type = getString(spec, 'type');
  const names = new Set<string>();
  const portKeys = new Set<string>();
  const nodePorts = new Set<string>();
  for (const [i, port] of ports) {
    const path = `spec.ports[${i}]`;
    const name = getString(port, 'name') ?? '';
    if (name === '') {
      if (ports.length > 1)
        errors.push(required(`${path}.name`, 'must be specified when there is more than one port'));
    } else if (names.has(name)) {
      errors.push(duplicate(`${path}.name`, name));
    } else {
      names.add(name);
    }
    const protocol = getString(port, 'protocol');
    const key = `${getInteger(port, 'port') ?? ''}/${protocol ?? ''}`;
    if (portKeys.has(key)) errors.push(duplicate(path, { port: port.port, protocol }));
    portKeys.add(key);
    const nodePort = getInteger(port, 'nodePort') ?? 0;
    if (nodePort !== 0) {
      if (type === 'ClusterIP') {
        errors.push(forbidden(`${path}.nodePort`, "may not be used when `type` is 'ClusterIP'"));
      }
      const nodeKey = `${nodePort}/${protocol ?? ''}`;
      if (nodePorts.has(nodeKey)) errors.push(duplicate(`${path}.nodePort`, nodePort));
      nodePorts.add(nodeKey);
    }
  }
}

function checkSpec(spec: JsonObject, _path: string, errors: FieldError[]): void {
  const type = getString(spec, 'type');
  const clusterIp = getString(spec, 'clusterIP');
  const clusterIps = (getArray(spec, 'clusterIPs') ?? []).filter((ip) => typeof ip === 'string');
  const headless = clusterIp === 'None' || clusterIps[0] === 'None';
  if ((getArray(spec, 'ports') ?? []).length === 0 && !headless) {
    errors.push(required('spec.ports', 'must be specified unless `clusterIP` is None'));
  }
  checkPorts(spec, errors);
  if (headless && type !== undefined && type !== 'ClusterIP') {
    errors.push(
      invalid(
        'spec.clusterIP',
        'None',
        "may not be set to 'None' for LoadBalancer or NodePort services",
      ),
    );
  }
  if (clusterIp && clusterIps.length > 0 && clusterIps[0] !== clusterIp) {
    errors.push(invalid('spec.clusterIPs', clusterIps, 'element [0] must match clusterIP'));
  }
  if (clusterIps.length === 2) {
    const families = clusterIps.map((ip) => parseIp(ip)?.family);
    if (families[0] !== undefined && families[0] === families[1]) {
      errors.push(
        invalid(
          'spec.clusterIPs',
          clusterIps,
          'may specify no more than one IP for each IP family',
        ),
      );
    }
  }
  const affinity = getString(spec, 'sessionAffinity');
  const timeout = getInteger(
    getObject(getObject(spec, 'sessionAffinityConfig') ?? {}, 'clientIP') ?? {},
    'timeoutSeconds',
  );
  if (affinity === 'ClientIP') {
    if (timeout === undefined && !isSet(spec, 'sessionAffinityConfig')) {
      errors.push(required('spec.sessionAffinityConfig', 'when session affinity type is ClientIP'));
    }
  } else if (isSet(spec, 'sessionAffinityConfig')) {
    errors.push(
      forbidden('spec.sessionAffinityConfig', 'must not be set when session affinity is None'),
    );
  }
  if (type === 'ClusterIP' && isSet(spec, 'externalTrafficPolicy')) {
    errors.push(
      invalid(
        'spec.externalTrafficPolicy',
        spec.externalTrafficPolicy,
        'may only be set for externally-accessible services',
      ),
    );
  }
}

const serviceSchema = kindSchema(
  {
    spec: obj(
      {
        type: str({ enum: ['ClusterIP', 'NodePort'] }),
        ports: arr(servicePort),
        selector: labelMap(),
        clusterIP: str({ check: checkClusterIp }),
        clusterIPs: arr(str({ check: checkClusterIp }), { maxItems: 2 }),
        ipFamilies: arr(str({ enum: ['IPv4', 'IPv6'] }), { maxItems: 2 }),
        ipFamilyPolicy: str({ enum: ['SingleStack', 'PreferDualStack', 'RequireDualStack'] }),
        sessionAffinity: str({ enum: ['None', 'ClientIP'] }),
        sessionAffinityConfig: obj({
          clientIP: obj({ timeoutSeconds: int({ min: 1, max: maxClientIpAffinitySeconds }) }),
        }),
        externalTrafficPolicy: str({ enum: ['Cluster', 'Local'] }),
        internalTrafficPolicy: str({ enum: ['Cluster', 'Local'] }),
        publishNotReadyAddresses: bool(),
        externalIPs: unsupported('strata does not support externalIPs yet'),
        externalName: unsupported(
          'only ExternalName Services use this field, and strata does not support them yet',
        ),
        trafficDistribution: unsupported('strata does not support trafficDistribution yet'),
        loadBalancerIP: onlyLoadBalancer,
        loadBalancerSourceRanges: onlyLoadBalancer,
        loadBalancerClass: onlyLoadBalancer,
        allocateLoadBalancerNodePorts: onlyLoadBalancer,
        healthCheckNodePort: onlyLoadBalancer,
      },
      { check: checkSpec },
    ),
  },
  ['spec'],
);

export const serviceRules = {
  applyDefaults(object: KubeObject): void {
    const spec = ensureObject(object, 'spec');
    if (!spec) return;
    setDefault(spec, 'type', 'ClusterIP');
    setDefault(spec, 'sessionAffinity', 'None');
    if (spec.sessionAffinity === 'ClientIP') {
      const clientIp = ensureObject(ensureObject(spec, 'sessionAffinityConfig') ?? {}, 'clientIP');
      if (clientIp) setDefault(clientIp, 'timeoutSeconds', 10800);
    }
    setDefault(spec, 'internalTrafficPolicy', 'Cluster');
    if (spec.type === 'NodePort') setDefault(spec, 'externalTrafficPolicy', 'Cluster');
    // The registry keeps clusterIP and clusterIPs[0] the same (normalizeClusterIPs).
    const clusterIp = getString(spec, 'clusterIP');
    if (clusterIp && !isSet(spec, 'clusterIPs')) spec.clusterIPs = [clusterIp];
    const first = getArray(spec, 'clusterIPs')?.[0];
    if (typeof first === 'string' && !isSet(spec, 'clusterIP')) spec.clusterIP = first;
    for (const [, port] of objectItems(spec, 'ports')) {
      setDefault(port, 'protocol', 'TCP');
      if (port.targetPort === undefined || port.targetPort === 0 || port.targetPort === '') {
        if (isSet(port, 'port')) port.targetPort = port.port;
      }
    }
  },
  validate(object: KubeObject, old?: KubeObject): FieldError[] {
    const errors = validateKind(object, serviceSchema);
    const name = metadataName(object);
    if (name !== undefined && dns1123Subdomain(name) === undefined) {
      const problem = dns1035Label(name);
      if (problem !== undefined) errors.push(invalid('metadata.name', name, problem));
    }
    // An allocated cluster IP cannot change (an update without one keeps it).
    const oldIp = old?.spec?.clusterIP;
    const newIp = object.spec?.clusterIP;
    if (
      typeof oldIp === 'string' &&
      oldIp !== '' &&
      newIp !== undefined &&
      newIp !== '' &&
      newIp !== oldIp
    ) {
      errors.push(invalid('spec.clusterIP', newIp, 'field is immutable'));
    }
    return errors;
  },
};
