/**
 * networking.k8s.io/v1 NetworkPolicy, after pkg/apis/networking/validation
 * (ValidateNetworkPolicySpec, ValidateNetworkPolicyPeer,
 * ValidateNetworkPolicyPort, ValidateIPBlock) and
 * pkg/apis/networking/v1/defaults.go (SetDefaults_NetworkPolicy,
 * SetDefaults_NetworkPolicyPort).
 */
import { networkAddress, parsePrefix, prefixContains } from '../../netaddr/ip.js';
import type { FieldError, KubeObject } from '../types.js';
import { cidr, portName, portProtocols } from './formats.js';
import {
  type JsonObject,
  arr,
  ensureObject,
  forbidden,
  getArray,
  getString,
  int,
  intOrString,
  invalid,
  isSet,
  kindSchema,
  obj,
  objectItems,
  required,
  setDefault,
  str,
  validateKind,
} from './schema.js';
import { labelSelector } from './selector.js';

export const policyTypes = ['Ingress', 'Egress'] as const;

/** ValidateIPBlock: a valid cidr, and each `except` strictly inside it. */
function checkIpBlock(block: JsonObject, path: string, errors: FieldError[]): void {
  const outer = parsePrefix(getString(block, 'cidr') ?? '');
  if (!outer) return;
  getArray(block, 'except')?.forEach((text, i) => {
    if (typeof text !== 'string') return;
    const inner = parsePrefix(text);
    if (!inner) return;
    if (!prefixContains(outer, networkAddress(inner)) || outer.length >= inner.length) {
      errors.push(invalid(`${path}.except[${i}]`, text, 'must be a strict subset of `cidr`'));
    }
  });
}

/** ValidateNetworkPolicyPeer: at least one peer kind, and ipBlock alone. */
function checkPeer(peer: JsonObject, path: string, errors: FieldError[]): void {
  const count = ['podSelector', 'namespaceSelector', 'ipBlock'].filter((f) =>
    isSet(peer, f),
  ).length;
  if (count === 0) errors.push(required(path, 'must specify a peer'));
  else if (count > 1 && isSet(peer, 'ipBlock')) {
    errors.push(forbidden(path, 'may not specify both ipBlock and another peer'));
  }
}

/** ValidateNetworkPolicyPort: a numeric port may carry an endPort at or above it. */
function checkPort(port: JsonObject, path: string, errors: FieldError[]): void {
  const value = port.port;
  const endPort = port.endPort;
  if (typeof value === 'string') {
    const problem = portName(value);
    if (problem !== undefined) errors.push(invalid(`${path}.port`, value, problem));
  }
  if (typeof endPort !== 'number') return;
  if (value === undefined || value === null) {
    errors.push(
      invalid(`${path}.endPort`, endPort, 'may not be specified when `port` is not specified'),
    );
  } else if (typeof value === 'string') {
    errors.push(
      invalid(`${path}.endPort`, endPort, 'may not be specified when `port` is non-numeric'),
    );
  } else if (typeof value === 'number' && endPort < value) {
    errors.push(invalid(`${path}.endPort`, endPort, 'must be greater than or equal to `port`'));
  }
}

const peer = obj(
  {
    podSelector: labelSelector,
    namespaceSelector: labelSelector,
    ipBlock: obj(
      { cidr: str({ format: cidr }), except: arr(str({ format: cidr })) },
      { required: ['cidr'], check: checkIpBlock },
    ),
  },
  { check: checkPeer },
);

const port = obj(
  {
    protocol: str({ enum: portProtocols }),
    port: intOrString((value, path, errors) => {
      if (typeof value === 'number' && (value < 1 || value > 65535)) {
        errors.push(invalid(path, value, 'must be between 1 and 65535, inclusive'));
      }
    }),
    endPort: int({ min: 1, max: 65535 }),
  },
  { check: checkPort },
);

const networkPolicySchema = kindSchema(
  {
    spec: obj(
      {
        podSelector: labelSelector,
        ingress: arr(obj({ ports: arr(port), from: arr(peer) })),
        egress: arr(obj({ ports: arr(port), to: arr(peer) })),
        policyTypes: arr(str({ enum: policyTypes }), { maxItems: 2 }),
      },
      { required: ['podSelector'] },
    ),
  },
  ['spec'],
);

export const networkPolicyRules = {
  applyDefaults(object: KubeObject): void {
    const spec = ensureObject(object, 'spec');
    if (!spec) return;
    // Upstream's rule: no policyTypes means Ingress, plus Egress when there are egress rules.
    const types = spec.policyTypes;
    if (types === undefined || types === null || (Array.isArray(types) && types.length === 0)) {
      spec.policyTypes =
        (getArray(spec, 'egress') ?? []).length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
    }
    for (const direction of ['ingress', 'egress']) {
      for (const [, rule] of objectItems(spec, direction)) {
        for (const [, rulePort] of objectItems(rule, 'ports'))
          setDefault(rulePort, 'protocol', 'TCP');
      }
    }
  },
  validate(object: KubeObject): FieldError[] {
    return validateKind(object, networkPolicySchema);
  },
};
