/**
 * networking.istio.io/v1 VirtualService: the fields of the Istio API
 * reference (networking/v1alpha3/virtual_service.proto) and the rules of
 * istio/pkg/config/validation (ValidateVirtualService, validateHTTPRoute and
 * friends), with Kubernetes-style field paths.
 */
import { parseIp } from '../../../netaddr/ip.js';
import type { FieldError, KubeObject } from '../../types.js';
import { dns1123Label, ipOrCidr } from '../formats.js';
import {
  type JsonObject,
  arr,
  forbidden,
  getArray,
  getInteger,
  int,
  invalid,
  isObject,
  isSet,
  kindSchema,
  map,
  obj,
  objectItems,
  required,
  str,
  unsupported,
  validateKind,
} from '../schema.js';
import { labelMap } from '../selector.js';
import {
  boolValue,
  checkHost,
  destination,
  duration,
  exportTo,
  gatewayNames,
  headers,
  int32,
  oneOf,
  percent,
  port,
  secondsDuration,
  stringMatch,
} from './common.js';

/** HTTP methods Istio accepts in a CORS policy (Go's net/http list). */
const httpMethods = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
];

/** Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on policies, as Istio's validation lists them. */
const retryOnPolicies = new Set([
  '5xx',
  'gateway-error',
  'reset',
  'reset-before-request',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'retriable-headers',
  'envoy-ratelimited',
  'http3-post-connect-failure',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

/** The gRPC status names of grpc/doc/statuscodes.md. */
const grpcStatuses = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

const httpStatus = () => int({ min: 200, max: 599 });

/** Header names a request can match on (ValidateHTTPHeaderName, or a JWT claim). */
function checkMatchHeaderNames(object: JsonObject, path: string, errors: FieldError[]): void {
  for (const name of Object.keys(object)) {
    if (!/^[-_A-Za-z0-9]+$/.test(name) && !/^@request\.auth\.claims(\.|\[)/.test(name)) {
      errors.push(invalid(path, name, 'must be a valid header name'));
    }
  }
}

const sourceNamespace = str({ format: dns1123Label });
const l4Match = {
  destinationSubnets: arr(str({ format: ipOrCidr })),
  port: port(),
  sourceLabels: labelMap(),
  gateways: gatewayNames,
  sourceNamespace,
};

const httpMatch = obj({
  name: str(),
  uri: stringMatch,
  scheme: stringMatch,
  method: stringMatch,
  authority: stringMatch,
  headers: map(stringMatch, { check: checkMatchHeaderNames }),
  port: port(),
  sourceLabels: labelMap(),
  gateways: gatewayNames,
  queryParams: map(stringMatch),
  ignoreUriCase: boolValue(),
  withoutHeaders: map(stringMatch, { check: checkMatchHeaderNames }),
  sourceNamespace,
  statPrefix: str(),
});

const routeDestination = obj(
  { destination, weight: int({ min: 0, max: 2147483647 }), headers },
  { required: ['destination'] },
);

/** validateHTTPRouteDestinations: weights may not all be zero when there are several. */
function checkWeights(routes: unknown[], path: string, errors: FieldError[]): void {
  if (routes.length < 2) return;
  let total = 0;
  for (const route of routes) {
    total += isObject(route) ? (getInteger(route, 'weight') ?? 0) : 0;
  }
  if (total === 0) errors.push(invalid(path, 0, 'total destination weight = 0'));
}

const retries = obj(
  {
    attempts: int({ min: 0, max: 2147483647 }),
    perTryTimeout: duration(),
    retryOn: str({
      check: (value, path, errors) => {
        for (const policy of value.split(',')) {
          const code = Number(policy);
          const isStatus = /^\d{3}$/.test(policy) && code >= 100 && code <= 599;
          if (!isStatus && !retryOnPolicies.has(policy)) {
            errors.push(invalid(path, policy, 'is not a valid retryOn policy'));
          }
        }
      },
    }),
    retryRemoteLocalities: boolValue(),
    retryIgnorePreviousHosts: boolValue(),
    backoff: duration(),
  },
  {
    check: (retry, path, errors) => {
      const attempts = getInteger(retry, 'attempts') ?? 0;
      const others = ['perTryTimeout', 'retryOn', 'retryRemoteLocalities'].filter((f) =>
        isSet(retry, f),
      );
      if (attempts === 0 && others.length > 0) {
        errors.push(
          invalid(
            `${path}.attempts`,
            0,
            'http retry policy configured when attempts are set to 0 (disabled)',
          ),
        );
      }
    },
  },
);

const fault = obj(
  {
    delay: obj(
      {
        fixedDelay: duration(),
        exponentialDelay: unsupported('exponentialDelay is not supported yet'),
        percentage: percent,
        percent: int({ min: 0, max: 100 }),
      },
      { check: oneOf(['fixedDelay', 'exponentialDelay']) },
    ),
    abort: obj(
      {
        httpStatus: httpStatus(),
        grpcStatus: str({ enum: grpcStatuses }),
        http2Error: unsupported('HTTP/2 abort fault injection not supported yet'),
        percentage: percent,
      },
      { check: oneOf(['httpStatus', 'grpcStatus', 'http2Error']) },
    ),
  },
  {
    check: (object, path, errors) => {
      if (!isSet(object, 'abort') && !isSet(object, 'delay')) {
        errors.push(required(path, 'HTTP fault injection must have an abort and/or a delay'));
      }
    },
  },
);

const redirect = obj(
  {
    uri: str(),
    authority: str(),
    port: port(),
    derivePort: str({ enum: ['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT'] }),
    scheme: str({ enum: ['http', 'https'] }),
    redirectCode: int({ min: 300, max: 399 }),
  },
  {
    check: (object, path, errors) => {
      if (!['uri', 'authority', 'port', 'derivePort', 'scheme'].some((f) => isSet(object, f))) {
        errors.push(required(path, 'redirect must specify URI, authority, scheme, or port'));
      }
      oneOf(['port', 'derivePort'])(object, path, errors);
    },
  },
);

const rewrite = obj(
  {
    uri: str(),
    authority: str(),
    uriRegexRewrite: obj({ match: str(), rewrite: str() }, { required: ['match', 'rewrite'] }),
  },
  {
    check: (object, path, errors) => {
      oneOf(['uri', 'uriRegexRewrite'])(object, path, errors);
      if (!['uri', 'uriRegexRewrite', 'authority'].some((f) => isSet(object, f))) {
        errors.push(
          required(path, 'rewrite must specify at least one of URI, UriRegexRewrite, or authority'),
        );
      }
    },
  },
);

const corsPolicy = obj({
  allowOrigins: arr(stringMatch),
  allowOrigin: arr(str()),
  allowMethods: arr(str({ enum: httpMethods })),
  allowHeaders: arr(str()),
  exposeHeaders: arr(str()),
  maxAge: secondsDuration(),
  allowCredentials: boolValue(),
  unmatchedPreflights: str({ enum: ['UNSPECIFIED', 'FORWARD', 'IGNORE'] }),
});

/** validateHTTPRouteConflict: one action per route, and the ones that cannot combine. */
function checkHttpRoute(route: JsonObject, path: string, errors: FieldError[]): void {
  const hasRoute = (getArray(route, 'route') ?? []).length > 0;
  const actions = ['redirect', 'directResponse', 'delegate'].filter((f) => isSet(route, f));
  if (!hasRoute && actions.length === 0) {
    errors.push(
      required(`${path}.route`, 'HTTP route, redirect, direct response or delegate is required'),
    );
  }
  if (isSet(route, 'redirect') || isSet(route, 'directResponse')) {
    const action = isSet(route, 'redirect') ? 'redirect' : 'directResponse';
    for (const other of ['route', 'fault', 'rewrite']) {
      if (other === 'route' ? hasRoute : isSet(route, other)) {
        errors.push(forbidden(`${path}.${other}`, `may not be set together with ${action}`));
      }
    }
    if (isSet(route, 'redirect') && isSet(route, 'directResponse')) {
      errors.push(forbidden(`${path}.directResponse`, 'may not be set together with redirect'));
    }
  }
  if (isSet(route, 'delegate') && (hasRoute || isSet(route, 'redirect'))) {
    errors.push(
      forbidden(`${path}.delegate`, 'a delegating route must not specify route or redirect'),
    );
  }
}

const httpRoute = obj(
  {
    name: str(),
    match: arr(httpMatch),
    route: arr(routeDestination, { check: checkWeights }),
    redirect,
    directResponse: obj(
      {
        status: httpStatus(),
        body: obj(
          { string: str({ maxLength: 1024 * 1024 }), bytes: str() },
          { check: oneOf(['string', 'bytes']) },
        ),
      },
      { required: ['status'] },
    ),
    delegate: obj(
      { name: str({ format: dns1123Label }), namespace: str({ format: dns1123Label }) },
      { required: ['name'] },
    ),
    rewrite,
    timeout: duration(),
    retries,
    fault,
    mirror: destination,
    mirrors: arr(obj({ destination, percentage: percent }, { required: ['destination'] })),
    mirrorPercentage: percent,
    mirrorPercent: int({ min: 0, max: 100 }),
    corsPolicy,
    headers,
  },
  { check: checkHttpRoute },
);

const tlsRoute = obj(
  {
    match: arr(
      obj(
        { sniHosts: arr(str({ check: checkHost }), { minItems: 1 }), ...l4Match },
        { required: ['sniHosts'] },
      ),
      { minItems: 1 },
    ),
    route: arr(obj({ destination, weight: int32() }, { required: ['destination'] }), {
      minItems: 1,
      check: checkWeights,
    }),
  },
  { required: ['match', 'route'] },
);

const tcpRoute = obj(
  {
    match: arr(obj(l4Match)),
    route: arr(obj({ destination, weight: int32() }, { required: ['destination'] }), {
      minItems: 1,
      check: checkWeights,
    }),
  },
  { required: ['route'] },
);

function checkSpec(spec: JsonObject, path: string, errors: FieldError[]): void {
  const hosts = (getArray(spec, 'hosts') ?? []).filter((h) => typeof h === 'string');
  const gateways = getArray(spec, 'gateways') ?? [];
  const appliesToMesh = gateways.length === 0 || gateways.includes('mesh');
  hosts.forEach((host, i) => {
    if (appliesToMesh && host === '*') {
      errors.push(
        invalid(
          `${path}.hosts[${i}]`,
          host,
          'wildcard host * is not allowed for virtual services bound to the mesh gateway',
        ),
      );
    }
    if (hosts.indexOf(host) !== i)
      errors.push(invalid(`${path}.hosts[${i}]`, host, 'duplicate hosts in virtual service'));
  });
  if (!['http', 'tcp', 'tls'].some((f) => (getArray(spec, f) ?? []).length > 0)) {
    errors.push(required(`${path}.http`, 'http, tcp or tls must be provided in virtual service'));
  }
  if (hosts.length === 0) {
    // A VirtualService without hosts is a delegate: only HTTP routes, no gateways.
    for (const name of ['gateways', 'tls', 'tcp']) {
      if ((getArray(spec, name) ?? []).length > 0) {
        errors.push(
          forbidden(
            `${path}.${name}`,
            'a delegate virtual service (without hosts) must not set it',
          ),
        );
      }
    }
    for (const [i, route] of objectItems(spec, 'http')) {
      if (isSet(route, 'delegate'))
        errors.push(
          forbidden(`${path}.http[${i}].delegate`, 'delegate HTTP route cannot contain delegate'),
        );
    }
  }
}

const virtualServiceSchema = kindSchema(
  {
    spec: obj(
      {
        hosts: arr(
          str({
            check: (value, path, errors) => {
              // A host may also be an IP address.
              if (value !== '*' && !parseIp(value)) checkHost(value, path, errors);
            },
          }),
        ),
        gateways: gatewayNames,
        http: arr(httpRoute),
        tls: arr(tlsRoute),
        tcp: arr(tcpRoute),
        exportTo,
      },
      { check: checkSpec },
    ),
  },
  ['spec'],
);

export const virtualServiceRules = {
  validate(object: KubeObject): FieldError[] {
    return validateKind(object, virtualServiceSchema);
  },
};
