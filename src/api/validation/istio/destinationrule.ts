/**
 * networking.istio.io/v1 DestinationRule: the fields of the Istio API
 * reference (networking/v1alpha3/destination_rule.proto) and the rules of
 * istio/pkg/config/validation (ValidateDestinationRule, validateTrafficPolicy,
 * validateConnectionPool, validateOutlierDetection, validateLoadBalancer,
 * ValidateTLS).
 */
import type { FieldError, KubeObject } from '../../types.js';
import { dns1123Label } from '../formats.js';
import {
  type JsonObject,
  type Schema,
  arr,
  bool,
  duplicate,
  getInteger,
  getObject,
  getString,
  int,
  invalid,
  isSet,
  kindSchema,
  map,
  obj,
  objectItems,
  required,
  str,
  validateKind,
  forbidden,
} from '../schema.js';
import { labelMap } from '../selector.js';
import {
  boolValue,
  checkHost,
  duration,
  exportTo,
  oneOf,
  port,
  uint32,
  workloadSelector,
} from './common.js';

const nonNegative = () => int({ min: 0, max: 2147483647 });
const percentage = () => int({ min: 0, max: 100 });

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let f = 2; f * f <= n; f++) if (n % f === 0) return false;
  return true;
}

const consistentHash = obj(
  {
    httpHeaderName: str(),
    httpCookie: obj(
      {
        name: str(),
        path: str(),
        ttl: duration(),
        attributes: arr(obj({ name: str(), value: str() })),
      },
      { required: ['name'] },
    ),
    useSourceIp: bool(),
    httpQueryParameterName: str(),
    ringHash: obj({ minimumRingSize: uint32() }),
    maglev: obj(
      {
        tableSize: int({
          min: 1,
          max: 5000010,
          check: (value, path, errors) => {
            if (!isPrime(value))
              errors.push(invalid(path, value, 'tableSize must be a prime number for maglev'));
          },
        }),
      },
      { required: ['tableSize'] },
    ),
    minimumRingSize: uint32(),
  },
  {
    check: (object, path, errors) => {
      oneOf(['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'])(
        object,
        path,
        errors,
      );
      oneOf(['ringHash', 'maglev', 'minimumRingSize'])(object, path, errors);
    },
  },
);

const localityLbSetting = obj({
  distribute: arr(obj({ from: str(), to: map(uint32()) })),
  failover: arr(obj({ from: str(), to: str() })),
  failoverPriority: arr(str()),
  enabled: boolValue(),
});

const loadBalancer = obj(
  {
    simple: str({
      enum: ['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST'],
    }),
    consistentHash,
    localityLbSetting,
    warmupDurationSecs: duration(),
    warmup: obj({
      duration: duration(),
      minimumPercent: obj({ value: int({ min: 0, max: 100 }) }),
      aggression: obj({ value: int({ min: 1 }) }),
    }),
  },
  { check: oneOf(['simple', 'consistentHash']) },
);

const connectionPool = obj(
  {
    tcp: obj({
      maxConnections: nonNegative(),
      connectTimeout: duration(),
      tcpKeepalive: obj({ probes: uint32(), time: duration(), interval: duration() }),
      maxConnectionDuration: duration(),
      idleTimeout: duration(),
    }),
    http: obj(
      {
        http1MaxPendingRequests: nonNegative(),
        http2MaxRequests: nonNegative(),
        maxRequestsPerConnection: nonNegative(),
        maxRetries: nonNegative(),
        idleTimeout: duration(),
        h2UpgradePolicy: str({ enum: ['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE'] }),
        useClientProtocol: bool(),
        maxConcurrentStreams: nonNegative(),
      },
      {
        check: (http, path, errors) => {
          if (http.h2UpgradePolicy === 'UPGRADE' && http.useClientProtocol === true) {
            errors.push(
              invalid(
                `${path}.useClientProtocol`,
                true,
                'use client protocol must not be true when H2UpgradePolicy is UPGRADE',
              ),
            );
          }
        },
      },
    ),
  },
  {
    check: (pool, path, errors) => {
      if (!isSet(pool, 'tcp') && !isSet(pool, 'http'))
        errors.push(required(path, 'connection pool must have at least one field'));
    },
  },
);

const outlierDetection = obj(
  {
    splitExternalLocalOriginErrors: bool(),
    consecutiveLocalOriginFailures: uint32(),
    consecutiveGatewayErrors: uint32(),
    consecutive5xxErrors: uint32(),
    interval: duration(),
    baseEjectionTime: duration(),
    maxEjectionPercent: percentage(),
    minHealthPercent: percentage(),
    consecutiveErrors: nonNegative(),
  },
  {
    check: (outlier, path, errors) => {
      const failures = getInteger(outlier, 'consecutiveLocalOriginFailures') ?? 0;
      if (failures > 0 && outlier.splitExternalLocalOriginErrors !== true) {
        errors.push(
          invalid(
            `${path}.consecutiveLocalOriginFailures`,
            failures,
            'consecutive local origin failures is specified, but split external local origin errors is set to false',
          ),
        );
      }
    },
  },
);

/** ValidateTLS of a client (upstream) TLS setting. */
function checkClientTls(tls: JsonObject, path: string, errors: FieldError[]): void {
  const mode = getString(tls, 'mode');
  const certificates = ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName'];
  if (mode === 'ISTIO_MUTUAL') {
    for (const name of certificates) {
      if (isSet(tls, name) && tls[name] !== '')
        errors.push(
          forbidden(`${path}.${name}`, 'ISTIO_MUTUAL TLS cannot have associated certificates'),
        );
    }
  }
  if (mode === 'MUTUAL' && !getString(tls, 'credentialName')) {
    for (const name of ['clientCertificate', 'privateKey']) {
      if (!getString(tls, name))
        errors.push(
          required(
            `${path}.${name}`,
            'MUTUAL TLS requires a client certificate and private key, or a credentialName',
          ),
        );
    }
  }
}

export const clientTls: Schema = obj(
  {
    mode: str({ enum: ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] }),
    clientCertificate: str(),
    privateKey: str(),
    caCertificates: str(),
    credentialName: str(),
    subjectAltNames: arr(str()),
    sni: str(),
    insecureSkipVerify: boolValue(),
    caCrl: str(),
  },
  { check: checkClientTls },
);

const policyParts = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'] as const;

const portTrafficPolicy = obj(
  { port: obj({ number: port() }), loadBalancer, connectionPool, outlierDetection, tls: clientTls },
  {
    required: ['port'],
    check: (policy, path, errors) => {
      if (!policyParts.some((f) => isSet(policy, f)))
        errors.push(required(path, 'port traffic policy must have at least one field'));
    },
  },
);

const trafficPolicy = obj(
  {
    loadBalancer,
    connectionPool,
    outlierDetection,
    tls: clientTls,
    portLevelSettings: arr(portTrafficPolicy),
    tunnel: obj(
      { protocol: str({ enum: ['CONNECT', 'POST'] }), targetHost: str(), targetPort: port() },
      { required: ['targetHost', 'targetPort'] },
    ),
    proxyProtocol: obj({ version: str({ enum: ['V1', 'V2'] }) }),
  },
  {
    check: (policy, path, errors) => {
      if (
        ![...policyParts, 'portLevelSettings', 'tunnel', 'proxyProtocol'].some((f) =>
          isSet(policy, f),
        )
      ) {
        errors.push(required(path, 'traffic policy must have at least one field'));
      }
      if (isSet(policy, 'tunnel') && isSet(policy, 'proxyProtocol')) {
        errors.push(
          forbidden(`${path}.proxyProtocol`, 'tunnel and proxyProtocol must not be set together'),
        );
      }
    },
  },
);

function checkSpec(spec: JsonObject, path: string, errors: FieldError[]): void {
  const names = new Set<string>();
  for (const [i, subset] of objectItems(spec, 'subsets')) {
    const name = getString(subset, 'name');
    if (name === undefined) continue;
    if (names.has(name)) errors.push(duplicate(`${path}.subsets[${i}].name`, name));
    names.add(name);
  }
  // A DestinationRule for selected workloads only applies in its own namespace.
  if (getObject(spec, 'workloadSelector')) {
    const exports = spec.exportTo;
    if (Array.isArray(exports) && exports.some((e) => e !== '.')) {
      errors.push(
        invalid(
          `${path}.exportTo`,
          exports,
          'destination rule with workload selector cannot have exportTo beyond current namespace',
        ),
      );
    }
  }
}

const destinationRuleSchema = kindSchema(
  {
    spec: obj(
      {
        host: str({ check: checkHost }),
        trafficPolicy,
        subsets: arr(
          obj(
            { name: str({ format: dns1123Label }), labels: labelMap(), trafficPolicy },
            { required: ['name'] },
          ),
        ),
        exportTo,
        workloadSelector,
      },
      { required: ['host'], check: checkSpec },
    ),
  },
  ['spec'],
);

export const destinationRuleRules = {
  validate(object: KubeObject): FieldError[] {
    return validateKind(object, destinationRuleSchema);
  },
};
