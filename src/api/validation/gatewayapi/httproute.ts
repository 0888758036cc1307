/**
 * gateway.networking.k8s.io/v1 HTTPRoute: the fields of
 * apis/v1/httproute_types.go (standard channel) with its CRD's patterns, CEL
 * rules and defaults.
 */
import type { FieldError, KubeObject } from '../../types.js';
import { gatewayDurationMs } from '../formats.js';
import {
  type JsonObject,
  type Schema,
  arr,
  bool,
  duplicate,
  forbidden,
  getArray,
  getInteger,
  getObject,
  getString,
  int,
  invalid,
  isObject,
  isSet,
  kindSchema,
  obj,
  objectItems,
  required,
  setDefault,
  str,
  validateKind,
} from '../schema.js';
import {
  backendObjectFields,
  backendObjectRef,
  checkBackendPort,
  defaultBackendRef,
  defaultParentRef,
  duration,
  groupName,
  headerName,
  hostname,
  kindName,
  objectName,
  parentRef,
  portNumber,
  preciseHostname,
  sectionName,
} from './common.js';

const httpMethods = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
];

/** The CEL rules on an Exact or PathPrefix path value. */
function pathValueProblem(value: string): string | undefined {
  if (!value.startsWith('/'))
    return "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']";
  for (const bad of ['//', '/./', '/../', '%2f', '%2F', '#']) {
    if (value.includes(bad))
      return `must not contain '${bad}' when type one of ['Exact', 'PathPrefix']`;
  }
  if (value.endsWith('/..') || value.endsWith('/.'))
    return "must not end with '/..' or '/.' when type one of ['Exact', 'PathPrefix']";
  if (!/^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$/.test(value)) {
    return "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types ['Exact', 'PathPrefix']";
  }
  return undefined;
}

const pathMatch = obj(
  {
    type: str({ enum: ['Exact', 'PathPrefix', 'RegularExpression'] }),
    value: str({ maxLength: 1024 }),
  },
  {
    check: (path, at, errors) => {
      const type = getString(path, 'type') ?? 'PathPrefix';
      const value = getString(path, 'value') ?? '/';
      const problem = type === 'RegularExpression' ? undefined : pathValueProblem(value);
      if (problem !== undefined) errors.push(invalid(`${at}.value`, value, problem));
    },
  },
);

/** Header (or query parameter) matches are keyed by name: no two with the same name. */
function uniqueNames(caseInsensitive: boolean) {
  return (items: unknown[], path: string, errors: FieldError[]): void => {
    const seen = new Set<string>();
    items.forEach((item, i) => {
      if (!isObject(item)) return;
      const name = getString(item, 'name');
      if (name === undefined) return;
      const k = caseInsensitive ? name.toLowerCase() : name;
      if (seen.has(k)) errors.push(duplicate(`${path}[${i}].name`, name));
      seen.add(k);
    });
  };
}

const valueMatch = (nameSchema: Schema): Schema =>
  arr(
    obj(
      {
        type: str({ enum: ['Exact', 'RegularExpression'] }),
        name: nameSchema,
        value: str({ maxLength: 4096 }),
      },
      { required: ['name', 'value'] },
    ),
    { maxItems: 16, check: uniqueNames(true) },
  );

const match = obj({
  path: pathMatch,
  headers: valueMatch(headerName()),
  queryParams: valueMatch(
    str({
      maxLength: 256,
      format: (v) =>
        /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(v)
          ? undefined
          : 'must be a valid query parameter name',
    }),
  ),
  method: str({ enum: httpMethods }),
});

const headerModifier = obj({
  set: arr(
    obj({ name: headerName(), value: str({ maxLength: 4096 }) }, { required: ['name', 'value'] }),
    { maxItems: 16, check: uniqueNames(true) },
  ),
  add: arr(
    obj({ name: headerName(), value: str({ maxLength: 4096 }) }, { required: ['name', 'value'] }),
    { maxItems: 16, check: uniqueNames(true) },
  ),
  remove: arr(str({ maxLength: 256 }), { maxItems: 16 }),
});

/** HTTPPathModifier: the type names the field that carries the replacement. */
const pathModifier = obj(
  {
    type: str({ enum: ['ReplaceFullPath', 'ReplacePrefixMatch'] }),
    replaceFullPath: str({ maxLength: 1024 }),
    replacePrefixMatch: str({ maxLength: 1024 }),
  },
  {
    required: ['type'],
    check: (modifier, path, errors) => {
      const type = getString(modifier, 'type');
      for (const field of ['replaceFullPath', 'replacePrefixMatch']) {
        const wanted = field === 'replaceFullPath' ? 'ReplaceFullPath' : 'ReplacePrefixMatch';
        if (type === wanted && !isSet(modifier, field)) {
          errors.push(
            required(
              `${path}.${field}`,
              `${field} must be specified when type is set to '${wanted}'`,
            ),
          );
        } else if (type !== wanted && isSet(modifier, field)) {
          errors.push(
            forbidden(`${path}.${field}`, `type must be '${wanted}' when ${field} is set`),
          );
        }
      }
    },
  },
);

const mirror = obj(
  {
    backendRef: backendObjectRef,
    percent: int({ min: 0, max: 100 }),
    fraction: obj(
      { numerator: int({ min: 0 }), denominator: int({ min: 1 }) },
      {
        required: ['numerator'],
        check: (fraction, path, errors) => {
          const n = getInteger(fraction, 'numerator') ?? 0;
          if (n > (getInteger(fraction, 'denominator') ?? 100)) {
            errors.push(
              invalid(
                `${path}.numerator`,
                n,
                'numerator must be less than or equal to denominator',
              ),
            );
          }
        },
      },
    ),
  },
  {
    required: ['backendRef'],
    check: (m, path, errors) => {
      if (isSet(m, 'percent') && isSet(m, 'fraction')) {
        errors.push(
          forbidden(
            `${path}.fraction`,
            'only one of percent or fraction may be specified in HTTPRequestMirrorFilter',
          ),
        );
      }
    },
  },
);

/** Each filter type and the field that configures it. */
const filterFields: Record<string, string> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  ExtensionRef: 'extensionRef',
  CORS: 'cors',
};

const filter = obj(
  {
    type: str({ enum: Object.keys(filterFields) }),
    requestHeaderModifier: headerModifier,
    responseHeaderModifier: headerModifier,
    requestMirror: mirror,
    requestRedirect: obj({
      scheme: str({ enum: ['http', 'https'] }),
      hostname: preciseHostname(),
      path: pathModifier,
      port: portNumber(),
      statusCode: int({
        check: (v, p, e) => {
          if (![301, 302, 303, 307, 308].includes(v))
            e.push(invalid(p, v, 'supported values: 301, 302, 303, 307, 308'));
        },
      }),
    }),
    urlRewrite: obj({ hostname: preciseHostname(), path: pathModifier }),
    extensionRef: obj(
      { group: groupName(), kind: kindName(), name: objectName() },
      { required: ['group', 'kind', 'name'] },
    ),
    cors: obj({
      allowOrigins: arr(str({ maxLength: 253 }), { maxItems: 64 }),
      allowCredentials: bool(),
      allowMethods: arr(str({ enum: [...httpMethods, '*'] }), { maxItems: 9 }),
      allowHeaders: arr(str({ maxLength: 256 }), { maxItems: 64 }),
      exposeHeaders: arr(str({ maxLength: 256 }), { maxItems: 64 }),
      maxAge: int({ min: 1 }),
    }),
  },
  {
    required: ['type'],
    check: (f, path, errors) => {
      const type = getString(f, 'type');
      for (const [filterType, field] of Object.entries(filterFields)) {
        if (type === filterType && !isSet(f, field)) {
          errors.push(
            required(
              `${path}.${field}`,
              `filter.${field} must be specified for ${filterType} filter.type`,
            ),
          );
        } else if (type !== filterType && isSet(f, field)) {
          errors.push(
            forbidden(
              `${path}.${field}`,
              `filter.${field} must be nil if the filter.type is not ${filterType}`,
            ),
          );
        }
      }
    },
  },
);

/** The CEL rules on a rule's filters. */
function checkFilters(filters: unknown[], path: string, errors: FieldError[]): void {
  const types = filters.map((f) => (isObject(f) ? getString(f, 'type') : undefined));
  if (types.includes('RequestRedirect') && types.includes('URLRewrite')) {
    errors.push(
      invalid(path, types, 'may specify either RequestRedirect or URLRewrite, but not both'),
    );
  }
  types.forEach((type, i) => {
    if (
      type !== undefined &&
      type !== 'RequestMirror' &&
      type !== 'ExtensionRef' &&
      types.indexOf(type) !== i
    ) {
      errors.push(duplicate(`${path}[${i}].type`, type));
    }
  });
}

const filters = arr(filter, { maxItems: 16, check: checkFilters });

const backendRef = obj(
  { ...backendObjectFields, weight: int({ min: 0, max: 1000000 }), filters },
  { required: ['name'], check: checkBackendPort },
);

function usesReplacePrefixMatch(filterList: JsonObject[]): boolean {
  return filterList.some((f) =>
    ['requestRedirect', 'urlRewrite'].some(
      (field) =>
        getString(getObject(getObject(f, field) ?? {}, 'path') ?? {}, 'type') ===
        'ReplacePrefixMatch',
    ),
  );
}

/** The CEL rules on an HTTPRouteRule. */
function checkRule(rule: JsonObject, path: string, errors: FieldError[]): void {
  const ruleFilters = objectItems(rule, 'filters').map(([, f]) => f);
  if (
    (getArray(rule, 'backendRefs') ?? []).length > 0 &&
    ruleFilters.some((f) => isSet(f, 'requestRedirect'))
  ) {
    errors.push(
      forbidden(
        `${path}.filters`,
        'RequestRedirect filter must not be used together with backendRefs',
      ),
    );
  }
  const backendFilters = objectItems(rule, 'backendRefs').flatMap(([, b]) =>
    objectItems(b, 'filters').map(([, f]) => f),
  );
  if (usesReplacePrefixMatch([...ruleFilters, ...backendFilters])) {
    const matches = getArray(rule, 'matches') ?? [{ path: { type: 'PathPrefix' } }];
    const only =
      matches.length === 1 && isObject(matches[0]) ? getObject(matches[0], 'path') : undefined;
    if (!only || (getString(only, 'type') ?? 'PathPrefix') !== 'PathPrefix') {
      errors.push(
        invalid(
          `${path}.matches`,
          matches,
          'when using path.replacePrefixMatch, exactly one PathPrefix match must be specified',
        ),
      );
    }
  }
  const timeouts = getObject(rule, 'timeouts');
  const request = gatewayDurationMs(getString(timeouts ?? {}, 'request') ?? '');
  const backend = gatewayDurationMs(getString(timeouts ?? {}, 'backendRequest') ?? '');
  if (request !== undefined && backend !== undefined && request !== 0 && backend > request) {
    errors.push(
      invalid(
        `${path}.timeouts.backendRequest`,
        timeouts?.backendRequest,
        'backendRequest timeout cannot be longer than request timeout',
      ),
    );
  }
}

const rule = obj(
  {
    name: sectionName(),
    matches: arr(match, { maxItems: 64 }),
    filters,
    backendRefs: arr(backendRef, { maxItems: 16 }),
    timeouts: obj({ request: duration(), backendRequest: duration() }),
  },
  { check: checkRule },
);

function checkRules(rules: unknown[], path: string, errors: FieldError[]): void {
  uniqueNames(false)(rules, path, errors);
  let matches = 0;
  for (const r of rules) matches += isObject(r) ? (getArray(r, 'matches') ?? []).length : 0;
  if (matches > 128) {
    errors.push(
      invalid(
        path,
        matches,
        'the total number of matches across all rules in a route must be less than 128',
      ),
    );
  }
}

const httpRouteSchema = kindSchema(
  {
    spec: obj({
      parentRefs: arr(parentRef, { maxItems: 32 }),
      hostnames: arr(hostname(), { maxItems: 16 }),
      rules: arr(rule, { maxItems: 16, check: checkRules }),
    }),
  },
  ['spec'],
);

function defaultFilters(list: JsonObject[]): void {
  for (const f of list) {
    const redirect = getObject(f, 'requestRedirect');
    if (redirect) setDefault(redirect, 'statusCode', 302);
    const mirrorRef = getObject(getObject(f, 'requestMirror') ?? {}, 'backendRef');
    if (mirrorRef) defaultBackendRef(mirrorRef);
    const fraction = getObject(getObject(f, 'requestMirror') ?? {}, 'fraction');
    if (fraction) setDefault(fraction, 'denominator', 100);
  }
}

export const httpRouteRules = {
  applyDefaults(object: KubeObject): void {
    const spec = getObject(object, 'spec');
    if (!spec) return;
    for (const [, ref] of objectItems(spec, 'parentRefs')) defaultParentRef(ref);
    setDefault(spec, 'rules', [{}]);
    for (const [, r] of objectItems(spec, 'rules')) {
      setDefault(r, 'matches', [{}]);
      for (const [, m] of objectItems(r, 'matches')) {
        setDefault(m, 'path', {});
        const path = getObject(m, 'path');
        if (path) {
          setDefault(path, 'type', 'PathPrefix');
          setDefault(path, 'value', '/');
        }
        for (const list of ['headers', 'queryParams']) {
          for (const [, h] of objectItems(m, list)) setDefault(h, 'type', 'Exact');
        }
      }
      defaultFilters(objectItems(r, 'filters').map(([, f]) => f));
      for (const [, b] of objectItems(r, 'backendRefs')) {
        defaultBackendRef(b);
        setDefault(b, 'weight', 1);
        defaultFilters(objectItems(b, 'filters').map(([, f]) => f));
      }
    }
  },
  validate(object: KubeObject): FieldError[] {
    return validateKind(object, httpRouteSchema);
  },
};
