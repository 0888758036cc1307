/**
 * Message types Istio's APIs share (istio.io/api networking and type/v1beta1)
 * and the rules istio/pkg/config/validation applies to them everywhere:
 * durations, string matches, destinations, header operations, workload
 * selectors and policy target references.
 */
import type { FieldError } from '../../types.js';
import { dns1123Label, istioDuration, isWildcardDomain, parseGoDuration } from '../formats.js';
import { isLabelValue, isQualifiedName } from '../meta.js';
import {
  type JsonObject,
  type Schema,
  arr,
  bool,
  child,
  forbidden,
  getString,
  int,
  invalid,
  map,
  notSupported,
  num,
  obj,
  setFields,
  str,
} from '../schema.js';

/** google.protobuf.Duration as Istio writes it: "10s", "1.5s", "100ms", "1m". */
export const duration = (): Schema => str({ format: istioDuration });

/** A duration whose value is only meaningful to whole seconds (corsPolicy.maxAge). */
export const secondsDuration = (): Schema =>
  str({
    format: (value) => {
      const problem = istioDuration(value);
      if (problem !== undefined) return problem;
      const ms = parseGoDuration(value) ?? 0;
      return ms % 1000 === 0 ? undefined : 'duration is accurate only to seconds precision';
    },
  });

export const uint32 = (): Schema => int({ min: 0, max: 4294967295 });
export const int32 = (): Schema => int({ min: -2147483648, max: 2147483647 });
export const port = (): Schema => int({ min: 1, max: 65535 });
/** google.protobuf.BoolValue / UInt32Value wrappers are written as bare values in YAML. */
export const boolValue = bool;

/** A protobuf oneof: at most one of `names` may be set. */
export function oneOf(names: readonly string[]) {
  return (object: JsonObject, path: string, errors: FieldError[]): void => {
    const set = setFields(object, names);
    for (const extra of set.slice(1)) {
      errors.push(forbidden(child(path, extra), `may not be set together with ${set[0] ?? ''}`));
    }
  };
}

function checkRegex(value: string, path: string, errors: FieldError[]): void {
  if (value.length > 1024) {
    errors.push(invalid(path, value, 'regex is too large, max length allowed is 1024'));
    return;
  }
  try {
    // JavaScript's syntax is close enough to RE2's to catch malformed patterns; RE2's
    // leading flag group is not JavaScript syntax, so it is dropped first.
    new RegExp(value.replace(/^\(\?[imsU]+\)/, ''));
  } catch {
    errors.push(invalid(path, value, 'must be a valid RE2 regular expression'));
  }
}

/** StringMatch: one of exact, prefix or regex. */
export const stringMatch: Schema = obj(
  {
    exact: str(),
    prefix: str({
      check: (value, path, errors) => {
        if (value === '')
          errors.push(invalid(path, value, 'prefix string match should not be empty'));
      },
    }),
    regex: str({ check: checkRegex }),
  },
  { check: oneOf(['exact', 'prefix', 'regex']) },
);

/** ValidateWildcardDomain: a DNS name, optionally "*." prefixed, or "*". */
export function checkHost(value: string, path: string, errors: FieldError[]): void {
  if (!isWildcardDomain(value, { upperCase: true })) {
    errors.push(invalid(path, value, 'must be a valid domain name, optionally prefixed with "*."'));
  }
}

/** Destination: a service host, a subset and a port. */
export const destination: Schema = obj(
  {
    host: str({
      check: (value, path, errors) => {
        if (value === '*') errors.push(invalid(path, value, 'invalid destination host *'));
        else checkHost(value, path, errors);
      },
    }),
    subset: str({ format: dns1123Label }),
    port: obj({ number: port() }),
  },
  { required: ['host'] },
);

/** Percent: a double between 0 and 100. */
export const percent: Schema = obj({ value: num({ min: 0, max: 100 }) });

/** Header names a proxy may add, set or remove (ValidateHTTPHeaderOperationName). */
function checkHeaderNames(object: JsonObject, path: string, errors: FieldError[]): void {
  for (const name of Object.keys(object)) {
    if (name.startsWith(':') && !/^:authority$/i.test(name)) {
      errors.push(invalid(path, name, 'header cannot have ":" prefix'));
    }
  }
}

const headerOperations = obj({
  set: map(str(), { check: checkHeaderNames }),
  add: map(str(), { check: checkHeaderNames }),
  remove: arr(
    str({
      check: (value, path, errors) => {
        if (value === '' || value.startsWith(':') || /^host$/i.test(value)) {
          errors.push(
            invalid(
              path,
              value,
              'must be a header name that can be removed (not Host or a ":" header)',
            ),
          );
        }
      },
    }),
  ),
});

/** Headers: request and response header operations. */
export const headers: Schema = obj({ request: headerOperations, response: headerOperations });

/** Label maps Istio selects workloads with: no empty keys, no wildcards. */
export function checkWorkloadLabels(labels: JsonObject, path: string, errors: FieldError[]): void {
  for (const [name, value] of Object.entries(labels)) {
    if (name === '' || !isQualifiedName(name)) {
      errors.push(invalid(path, name, 'must be a valid label key'));
    } else if (typeof value === 'string' && (value.includes('*') || !isLabelValue(value))) {
      errors.push(
        invalid(`${path}[${name}]`, value, 'must be a valid label value without wildcards'),
      );
    }
  }
}

/** type.v1beta1.WorkloadSelector. */
export const workloadSelector: Schema = obj({
  matchLabels: map(str(), { check: checkWorkloadLabels }),
});

/** The kinds a policy targetRef may name in strata (Istio also allows ServiceEntry). */
const targetKinds = ['Service', 'gateway.networking.k8s.io/Gateway'];

function checkTargetRef(ref: JsonObject, path: string, errors: FieldError[]): void {
  const group = getString(ref, 'group') ?? '';
  const kind = getString(ref, 'kind');
  if (kind === undefined) return;
  const qualified = group === '' || group === 'core' ? kind : `${group}/${kind}`;
  if (!targetKinds.includes(qualified))
    errors.push(notSupported(`${path}.kind`, qualified, targetKinds));
}

/** type.v1beta1.PolicyTargetReference. */
export const targetRef: Schema = obj(
  {
    group: str(),
    kind: str(),
    name: str(),
    namespace: str({
      check: (value, path, errors) => {
        if (value !== '') {
          errors.push(forbidden(path, 'cross namespace referencing is not supported'));
        }
      },
    }),
  },
  { required: ['kind', 'name'], check: checkTargetRef },
);

/** validateOneOfSelectorType: a policy applies through a selector or target references, not both. */
export function checkSelectorOrTargets(spec: JsonObject, path: string, errors: FieldError[]): void {
  const set = setFields(spec, ['selector', 'targetRef', 'targetRefs']);
  for (const extra of set.slice(1)) {
    errors.push(
      forbidden(child(path, extra), 'only one of selector, targetRef or targetRefs can be set'),
    );
  }
}

/** exportTo: "." (this namespace), "*" (all), or namespace names, without duplicates. */
export const exportTo: Schema = arr(
  str({
    check: (value, path, errors) => {
      if (value !== '.' && value !== '*' && dns1123Label(value) !== undefined) {
        errors.push(invalid(path, value, 'must be ".", "*" or a namespace name'));
      }
    },
  }),
  {
    check: (values, path, errors) => {
      const seen = new Set<unknown>();
      values.forEach((value, i) => {
        if (seen.has(value))
          errors.push(invalid(`${path}[${i}]`, value, 'duplicate entries in exportTo'));
        seen.add(value);
      });
      if (values.includes('*') && values.length > 1) {
        errors.push(
          invalid(path, values, 'cannot have both public (*) and non-public exportTo values'),
        );
      }
    },
  },
);

/** Istio gateway references: "<namespace>/<name>", a bare name, or "mesh". */
export const gatewayNames: Schema = arr(
  str({
    check: (value, path, errors) => {
      const parts = value.split('/');
      const ok =
        parts.length === 1
          ? isWildcardDomain(value) && !value.includes('*')
          : parts.length === 2 && parts.every((p) => dns1123Label(p) === undefined);
      if (!ok) errors.push(invalid(path, value, 'must be a gateway name or <namespace>/<name>'));
    },
  }),
);
