/**
 * v1 Node, after pkg/apis/core/validation (ValidateNode, ValidateNodeUpdate):
 * the pod CIDRs are valid, at most one per family, without duplicates, and
 * do not change once assigned. The v1 API's `podCIDR` is `podCIDRs[0]`.
 */
import { parsePrefix } from '../../netaddr/ip.js';
import type { FieldError, KubeObject } from '../types.js';
import { cidr, qualifiedName } from './formats.js';
import {
  type JsonObject,
  arr,
  bool,
  duplicate,
  ensureObject,
  forbidden,
  getArray,
  getString,
  invalid,
  isSet,
  kindSchema,
  obj,
  str,
  unsupported,
  validateKind,
} from './schema.js';
import { isLabelValue } from './meta.js';

function checkSpec(spec: JsonObject, _path: string, errors: FieldError[]): void {
  const podCidr = getString(spec, 'podCIDR');
  const podCidrs = (getArray(spec, 'podCIDRs') ?? []).filter((c) => typeof c === 'string');
  if (podCidr && podCidrs.length > 0 && podCidrs[0] !== podCidr) {
    errors.push(invalid('spec.podCIDRs', podCidrs, 'element [0] must match podCIDR'));
  }
  if (podCidrs.length > 1) {
    const families = podCidrs.map((c) => parsePrefix(c)?.address.family);
    if (podCidrs.length > 2 || (families[0] !== undefined && families[0] === families[1])) {
      errors.push(
        invalid('spec.podCIDRs', podCidrs, 'may specify no more than one CIDR for each IP family'),
      );
    }
  }
  const seen = new Set<string>();
  podCidrs.forEach((value, i) => {
    if (seen.has(value)) errors.push(duplicate(`spec.podCIDRs[${i}]`, value));
    seen.add(value);
  });
}

const taint = obj(
  {
    key: str({ format: qualifiedName }),
    value: str({
      format: (v) => (isLabelValue(v) ? undefined : 'a taint value must be a valid label value'),
    }),
    effect: str({ enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] }),
    timeAdded: str(),
  },
  { required: ['key', 'effect'] },
);

const nodeSchema = kindSchema({
  spec: obj(
    {
      podCIDR: str({ format: cidr }),
      podCIDRs: arr(str({ format: cidr })),
      providerID: str(),
      unschedulable: bool(),
      taints: arr(taint),
      externalID: str(),
      configSource: unsupported('dynamic kubelet configuration was removed upstream'),
    },
    { check: checkSpec },
  ),
});

function podCidrsOf(object: KubeObject | undefined): string[] {
  const spec = object?.spec;
  const list = spec && Array.isArray(spec.podCIDRs) ? spec.podCIDRs : [];
  return list.filter((c): c is string => typeof c === 'string');
}

export const nodeRules = {
  applyDefaults(object: KubeObject): void {
    const spec = ensureObject(object, 'spec');
    if (!spec) return;
    const podCidr = getString(spec, 'podCIDR');
    if (podCidr && !isSet(spec, 'podCIDRs')) spec.podCIDRs = [podCidr];
    const first = getArray(spec, 'podCIDRs')?.[0];
    if (typeof first === 'string' && !isSet(spec, 'podCIDR')) spec.podCIDR = first;
  },
  validate(object: KubeObject, old?: KubeObject): FieldError[] {
    const errors = validateKind(object, nodeSchema);
    // The controller may assign pod CIDRs to a node that has none; after that they stay.
    const before = podCidrsOf(old);
    const after = podCidrsOf(object);
    if (before.length > 0 && before.join(',') !== after.join(',')) {
      errors.push(
        forbidden('spec.podCIDRs', 'node updates may not change podCIDR except from "" to valid'),
      );
    }
    return errors;
  },
};
