/**
 * networking.istio.io/v1 Gateway: the fields of the Istio API reference
 * (networking/v1alpha3/gateway.proto) and the rules of
 * istio/pkg/config/validation (ValidateGateway, validateServer,
 * validateServerPort, validateTLSOptions).
 */
import type { FieldError, KubeObject } from '../../types.js';
import { dns1123Label, dns1123Subdomain, ipAddress, isWildcardDomain } from '../formats.js';
import {
  type JsonObject,
  arr,
  bool,
  duplicate,
  forbidden,
  getObject,
  getString,
  invalid,
  isSet,
  kindSchema,
  map,
  metadataName,
  obj,
  objectItems,
  required,
  str,
  unsupported,
  validateKind,
} from '../schema.js';
import { checkWorkloadLabels, port } from './common.js';

/** Protocols a Gateway server may declare (protocol.Parse, case-insensitive). */
const serverProtocols = [
  'HTTP',
  'HTTPS',
  'GRPC',
  'GRPC-WEB',
  'HTTP2',
  'MONGO',
  'MYSQL',
  'REDIS',
  'TCP',
  'TLS',
];
const tlsProtocols = ['HTTPS', 'TLS'];
const httpProtocols = ['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB'];

const tlsVersions = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'];

/** Server hosts: "<namespace>/<dnsName>", "./<dnsName>", "*\/<dnsName>" or "<dnsName>". */
function checkServerHost(value: string, path: string, errors: FieldError[]): void {
  const slash = value.indexOf('/');
  const namespace = slash < 0 ? undefined : value.slice(0, slash);
  const host = slash < 0 ? value : value.slice(slash + 1);
  if (
    namespace !== undefined &&
    namespace !== '.' &&
    namespace !== '*' &&
    dns1123Label(namespace) !== undefined
  ) {
    errors.push(invalid(path, value, 'namespace must be ".", "*" or a namespace name'));
  } else if (!isWildcardDomain(host, { upperCase: true })) {
    errors.push(
      invalid(
        path,
        value,
        'must be a domain name, optionally prefixed with "*." and "<namespace>/"',
      ),
    );
  }
}

/** validateTLSOptions: what each TLS mode needs and forbids. */
function checkServerTls(tls: JsonObject, path: string, errors: FieldError[]): void {
  const mode = getString(tls, 'mode') ?? 'PASSTHROUGH';
  const hasCredential =
    Boolean(getString(tls, 'credentialName')) ||
    isSet(tls, 'credentialNames') ||
    isSet(tls, 'tlsCertificates');
  if (mode === 'ISTIO_MUTUAL') {
    for (const name of ['serverCertificate', 'privateKey', 'caCertificates', 'credentialName']) {
      if (getString(tls, name))
        errors.push(
          forbidden(`${path}.${name}`, 'ISTIO_MUTUAL TLS cannot have associated certificates'),
        );
    }
    return;
  }
  if ((mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') && !hasCredential) {
    const needed =
      mode === 'SIMPLE'
        ? ['serverCertificate', 'privateKey']
        : ['serverCertificate', 'privateKey', 'caCertificates'];
    for (const name of needed) {
      if (!getString(tls, name))
        errors.push(
          required(`${path}.${name}`, `${mode} TLS requires it unless credentialName is set`),
        );
    }
  }
  if (getString(tls, 'caCrl') && (getString(tls, 'credentialName') || mode === 'SIMPLE')) {
    errors.push(
      forbidden(`${path}.caCrl`, 'CRL is not supported with credentialName or SIMPLE TLS'),
    );
  }
}

const serverTls = obj(
  {
    httpsRedirect: bool(),
    mode: str({
      enum: [
        'PASSTHROUGH',
        'SIMPLE',
        'MUTUAL',
        'AUTO_PASSTHROUGH',
        'ISTIO_MUTUAL',
        'OPTIONAL_MUTUAL',
      ],
    }),
    serverCertificate: str(),
    privateKey: str(),
    caCertificates: str(),
    caCrl: str(),
    credentialName: str(),
    credentialNames: arr(str(), { maxItems: 2 }),
    tlsCertificates: arr(
      obj({ serverCertificate: str(), privateKey: str(), caCertificates: str() }),
      { maxItems: 2 },
    ),
    subjectAltNames: arr(str()),
    verifyCertificateSpki: arr(str()),
    verifyCertificateHash: arr(str()),
    minProtocolVersion: str({ enum: tlsVersions }),
    maxProtocolVersion: str({ enum: tlsVersions }),
    cipherSuites: arr(str()),
  },
  { check: checkServerTls },
);

/** validateServer: TLS settings exactly where the protocol needs them. */
function checkServer(server: JsonObject, path: string, errors: FieldError[]): void {
  const protocol = getString(getObject(server, 'port') ?? {}, 'protocol')?.toUpperCase();
  if (protocol === undefined || !serverProtocols.includes(protocol)) return;
  const tls = getObject(server, 'tls');
  if (tlsProtocols.includes(protocol) && !tls) {
    errors.push(required(`${path}.tls`, 'server must have TLS settings for HTTPS/TLS protocols'));
  } else if (!tlsProtocols.includes(protocol) && tls) {
    const onlyRedirect = Object.keys(tls).every((k) => k === 'httpsRedirect');
    if (!httpProtocols.includes(protocol) || !onlyRedirect) {
      errors.push(
        forbidden(
          `${path}.tls`,
          'server cannot have TLS settings for plain text ports, except httpsRedirect for HTTP',
        ),
      );
    }
  }
}

const server = obj(
  {
    port: obj(
      {
        number: port(),
        protocol: str({
          check: (value, path, errors) => {
            if (!serverProtocols.includes(value.toUpperCase())) {
              errors.push(
                invalid(
                  path,
                  value,
                  `invalid protocol, supported protocols are ${serverProtocols.join(', ')}`,
                ),
              );
            }
          },
        }),
        name: str(),
        targetPort: unsupported('targetPort has no impact on Gateways'),
      },
      { required: ['number', 'protocol', 'name'] },
    ),
    bind: str({ format: ipAddress }),
    hosts: arr(str({ check: checkServerHost }), { minItems: 1 }),
    tls: serverTls,
    defaultEndpoint: str(),
    name: str(),
  },
  { required: ['port', 'hosts'], check: checkServer },
);

function checkSpec(spec: JsonObject, path: string, errors: FieldError[]): void {
  const names = new Set<string>();
  for (const [i, item] of objectItems(spec, 'servers')) {
    const name = getString(getObject(item, 'port') ?? {}, 'name');
    if (name === undefined) continue;
    if (names.has(name)) errors.push(duplicate(`${path}.servers[${i}].port.name`, name));
    names.add(name);
  }
}

const gatewaySchema = kindSchema(
  {
    spec: obj(
      {
        servers: arr(server, { minItems: 1 }),
        selector: map(str(), { check: checkWorkloadLabels }),
      },
      { required: ['servers'], check: checkSpec },
    ),
  },
  ['spec'],
);

export const istioGatewayRules = {
  validate(object: KubeObject): FieldError[] {
    const errors = validateKind(object, gatewaySchema);
    // Gateway names are DNS labels: VirtualServices name them as <namespace>/<name>.
    const name = metadataName(object);
    if (
      name !== undefined &&
      dns1123Subdomain(name) === undefined &&
      dns1123Label(name) !== undefined
    ) {
      errors.push(
        invalid('metadata.name', name, 'a gateway name must be an RFC 1123 label (no dots)'),
      );
    }
    return errors;
  },
};
