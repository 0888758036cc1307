/**
 * security.istio.io/v1 PeerAuthentication, AuthorizationPolicy and
 * RequestAuthentication: the fields of the Istio API reference
 * (security/v1beta1/*.proto) and the rules of istio/pkg/config/validation
 * (ValidatePeerAuthentication, ValidateAuthorizationPolicy,
 * ValidateRequestAuthentication, validateJwtRule) and
 * istio/pkg/config/security (ValidateAttribute, ValidateIPs, ValidatePorts).
 */
import type { FieldError, KubeObject } from '../../types.js';
import { httpHeaderName, ipOrCidr } from '../formats.js';
import {
  type Format,
  type JsonObject,
  type Schema,
  arr,
  bool,
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
  str,
  validateKind,
} from '../schema.js';
import { checkSelectorOrTargets, duration, targetRef, workloadSelector } from './common.js';

export const mtlsModes = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] as const;
export const authorizationActions = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] as const;

const mtls = obj({ mode: str({ enum: mtlsModes }) });

function checkPeerAuthentication(spec: JsonObject, path: string, errors: FieldError[]): void {
  const portLevel = getObject(spec, 'portLevelMtls');
  if (!portLevel) return;
  const labels = getObject(getObject(spec, 'selector') ?? {}, 'matchLabels');
  if (!labels || Object.keys(labels).length === 0) {
    errors.push(
      forbidden(
        `${path}.portLevelMtls`,
        'mesh/namespace peer authentication cannot have port level mTLS (set a selector)',
      ),
    );
  }
  if (Object.keys(portLevel).length === 0) {
    errors.push(
      invalid(
        `${path}.portLevelMtls`,
        portLevel,
        'port level mTLS, if defined, must have at least one element',
      ),
    );
  }
  for (const port of Object.keys(portLevel)) {
    const n = Number(port);
    if (!/^\d+$/.test(port) || n < 1 || n > 65535) {
      errors.push(
        invalid(`${path}.portLevelMtls[${port}]`, port, 'port must be in range 1..65535'),
      );
    }
  }
}

const policyTargets = { selector: workloadSelector, targetRef, targetRefs: arr(targetRef) };

const peerAuthenticationSchema = kindSchema({
  spec: obj(
    { selector: workloadSelector, mtls, portLevelMtls: map(mtls) },
    { check: checkPeerAuthentication },
  ),
});

/** A list of strings none of which may be empty (security.CheckEmptyValues). */
const values = (item: Schema = str()): Schema =>
  arr(item, {
    check: (list, path, errors) => {
      list.forEach((v, i) => {
        if (v === '') errors.push(invalid(`${path}[${i}]`, v, 'empty value is not allowed'));
      });
    },
  });

/** security.ValidatePorts: ports are written as strings. */
const portText: Format = (value) => {
  const n = Number(value);
  return /^\d+$/.test(value) && n >= 1 && n <= 65535
    ? undefined
    : 'must be a port number between 1 and 65535';
};
const portValue = str({ format: portText });

/** security.v1beta1.Source's fields (the mesh policy model reads the same list). */
export const sourceFields = [
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
  'namespaces',
  'notNamespaces',
  'ipBlocks',
  'notIpBlocks',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
  'serviceAccounts',
  'notServiceAccounts',
] as const;
/** security.v1beta1.Operation's fields. */
export const operationFields = [
  'hosts',
  'notHosts',
  'ports',
  'notPorts',
  'methods',
  'notMethods',
  'paths',
  'notPaths',
] as const;

const notEmpty =
  (fields: readonly string[], what: string) =>
  (object: JsonObject, path: string, errors: FieldError[]) => {
    if (!fields.some((f) => (getArray(object, f) ?? []).length > 0))
      errors.push(required(path, `${what} must not be empty`));
  };

const ipValues = values(str({ format: ipOrCidr }));
const source = obj(
  {
    principals: values(),
    notPrincipals: values(),
    requestPrincipals: values(),
    notRequestPrincipals: values(),
    namespaces: values(),
    notNamespaces: values(),
    ipBlocks: ipValues,
    notIpBlocks: ipValues,
    remoteIpBlocks: ipValues,
    notRemoteIpBlocks: ipValues,
    serviceAccounts: values(),
    notServiceAccounts: values(),
  },
  { check: notEmpty(sourceFields, '`from.source`') },
);

const operation = obj(
  {
    hosts: values(),
    notHosts: values(),
    ports: values(portValue),
    notPorts: values(portValue),
    methods: values(),
    notMethods: values(),
    paths: values(),
    notPaths: values(),
  },
  { check: notEmpty(operationFields, '`to.operation`') },
);

/** security.ValidateAttribute: the keys a `when` condition may test, and their values' forms. */
function checkCondition(condition: JsonObject, path: string, errors: FieldError[]): void {
  const key = getString(condition, 'key');
  if (key === undefined || key === '') return;
  const all = [
    ...(getArray(condition, 'values') ?? []),
    ...(getArray(condition, 'notValues') ?? []),
  ];
  if (all.length === 0) {
    errors.push(
      required(
        `${path}.values`,
        `at least one of \`values\` or \`notValues\` must be set for key ${key}`,
      ),
    );
  }
  const mapKey = /^(request\.headers|request\.auth\.claims)\[[^\]]+\]$/;
  const plain = [
    'source.ip',
    'remote.ip',
    'source.namespace',
    'source.principal',
    'request.auth.principal',
    'request.auth.audiences',
    'request.auth.presenter',
    'destination.ip',
    'destination.port',
    'connection.sni',
  ];
  if (!mapKey.test(key) && !plain.includes(key) && !key.startsWith('experimental.envoy.filters.')) {
    errors.push(invalid(`${path}.key`, key, 'unknown attribute'));
    return;
  }
  const check = key.endsWith('.ip') ? ipOrCidr : key === 'destination.port' ? portText : undefined;
  for (const field of ['values', 'notValues']) {
    getArray(condition, field)?.forEach((v, i) => {
      const problem = typeof v === 'string' ? check?.(v) : undefined;
      if (problem !== undefined) errors.push(invalid(`${path}.${field}[${i}]`, v, problem));
    });
  }
}

const rule = obj({
  from: arr(obj({ source }, { required: ['source'] }), { minItems: 1 }),
  to: arr(obj({ operation }, { required: ['operation'] }), { minItems: 1 }),
  when: arr(
    obj(
      { key: str(), values: values(), notValues: values() },
      { required: ['key'], check: checkCondition },
    ),
  ),
});

/** The source and condition fields a CUSTOM (external authorization) rule cannot use yet upstream. */
const customUnsupportedSources = [
  'namespaces',
  'notNamespaces',
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
];

function checkAuthorizationPolicy(spec: JsonObject, path: string, errors: FieldError[]): void {
  checkSelectorOrTargets(spec, path, errors);
  const action = getString(spec, 'action') ?? 'ALLOW';
  const hasRules = isSet(spec, 'rules');
  if (action === 'CUSTOM') {
    if (!hasRules) {
      errors.push(
        required(
          `${path}.rules`,
          'CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request',
        ),
      );
    } else if (!getString(getObject(spec, 'provider') ?? {}, 'name')) {
      errors.push(required(`${path}.provider.name`, 'must not be empty with the CUSTOM action'));
    }
    for (const [i, r] of objectItems(spec, 'rules')) {
      for (const [j, from] of objectItems(r, 'from')) {
        const src = getObject(from, 'source') ?? {};
        for (const field of customUnsupportedSources) {
          if (isSet(src, field))
            errors.push(
              forbidden(
                `${path}.rules[${i}].from[${j}].source.${field}`,
                'is currently not supported with CUSTOM action',
              ),
            );
        }
      }
      for (const [j, when] of objectItems(r, 'when')) {
        const key = getString(when, 'key') ?? '';
        if (
          key === 'source.namespace' ||
          key === 'source.principal' ||
          key.startsWith('request.auth.')
        ) {
          errors.push(
            forbidden(
              `${path}.rules[${i}].when[${j}].key`,
              'is currently not supported with CUSTOM action',
            ),
          );
        }
      }
    }
  } else if (isSet(spec, 'provider')) {
    errors.push(forbidden(`${path}.provider`, `must not be set with the ${action} action`));
  }
  if (action === 'DENY' && !hasRules) {
    errors.push(
      required(
        `${path}.rules`,
        'DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request',
      ),
    );
  }
}

const authorizationPolicySchema = kindSchema({
  spec: obj(
    {
      ...policyTargets,
      rules: arr(rule),
      action: str({ enum: authorizationActions }),
      provider: obj({ name: str() }),
    },
    { check: checkAuthorizationPolicy },
  ),
});

const nonEmptyString = (what: string): Schema =>
  str({
    check: (value, path, errors) => {
      if (value === '') errors.push(invalid(path, value, `${what} must be a non-empty string`));
    },
  });

const jwtRule = obj(
  {
    issuer: str(),
    audiences: arr(nonEmptyString('audience')),
    jwksUri: str({
      format: (value) => {
        try {
          const url = new URL(value);
          return url.protocol === 'http:' || url.protocol === 'https:'
            ? undefined
            : 'must be an http or https URL';
        } catch {
          return 'must be a valid URL';
        }
      },
    }),
    jwks: str({
      format: (value) => {
        try {
          const parsed: unknown = JSON.parse(value);
          return isObject(parsed) ? undefined : 'must be a JSON Web Key Set object';
        } catch {
          return 'jwks parse error: must be JSON';
        }
      },
    }),
    fromHeaders: arr(obj({ name: str(), prefix: str() }, { required: ['name'] })),
    fromParams: arr(nonEmptyString('location query')),
    fromCookies: arr(nonEmptyString('cookie name')),
    outputPayloadToHeader: str(),
    forwardOriginalToken: bool(),
    outputClaimToHeaders: arr(
      obj(
        { header: str({ format: httpHeaderName }), claim: str() },
        { required: ['header', 'claim'] },
      ),
    ),
    timeout: duration(),
  },
  { required: ['issuer'] },
);

const requestAuthenticationSchema = kindSchema({
  spec: obj({ ...policyTargets, jwtRules: arr(jwtRule) }, { check: checkSelectorOrTargets }),
});

export const peerAuthenticationRules = {
  validate: (object: KubeObject): FieldError[] => validateKind(object, peerAuthenticationSchema),
};
export const authorizationPolicyRules = {
  validate: (object: KubeObject): FieldError[] => validateKind(object, authorizationPolicySchema),
};
export const requestAuthenticationRules = {
  validate: (object: KubeObject): FieldError[] => validateKind(object, requestAuthenticationSchema),
};
