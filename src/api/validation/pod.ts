/**
 * v1 Pod and the pod spec every pod template shares (Deployment), after
 * pkg/apis/core/validation (ValidatePodSpec, validateContainers, validateEnv,
 * validateContainerPorts, validateProbe) and pkg/apis/core/v1/defaults.go.
 *
 * strata runs a pod's containers as processes on the node, so `image` and
 * the scheduling and resource fields are informational: accepted and kept.
 * Fields whose behaviour strata does not provide yet (volumes, init
 * containers, host ports, ConfigMap/Secret references, the user and
 * privileges a container runs with, activeDeadlineSeconds...) are rejected
 * by name. An update may change only what upstream's ValidatePodUpdate lets
 * it (pod-update.ts); spec.nodeName is set through the binding subresource.
 */
import type { FieldError, KubeObject } from '../types.js';
import {
  checkPortNumberOrName,
  dns1123Label,
  dns1123Subdomain,
  envVarName,
  httpHeaderName,
  httpHeaderValue,
  portName,
  portProtocols,
  urlPath,
} from './formats.js';
import {
  type JsonObject,
  type Schema,
  anyObject,
  arr,
  bool,
  child,
  duplicate,
  ensureObject,
  forbidden,
  getArray,
  getInteger,
  getObject,
  getString,
  index,
  int,
  intOrString,
  invalid,
  isObject,
  kindSchema,
  map,
  obj,
  objectItems,
  required,
  setDefault,
  setFields,
  str,
  unsupported,
  validateKind,
} from './schema.js';
import { parseIp } from '../../netaddr/ip.js';
import { validatePodSpecUpdate } from './pod-update.js';
import { labelMap } from './selector.js';

/** The downward-API fields strata fills in an env var's fieldRef. */
export const supportedEnvFieldPaths = [
  'metadata.name',
  'metadata.namespace',
  'spec.nodeName',
  'status.podIP',
] as const;

const envSources = [
  'fieldRef',
  'resourceFieldRef',
  'configMapKeyRef',
  'secretKeyRef',
  'fileKeyRef',
] as const;

function checkEnvVar(envVar: JsonObject, path: string, errors: FieldError[]): void {
  const valueFrom = getObject(envVar, 'valueFrom');
  if (!valueFrom) return;
  const sources = setFields(valueFrom, envSources);
  const fromPath = child(path, 'valueFrom');
  if (sources.length === 0) {
    errors.push(
      invalid(
        fromPath,
        '',
        'must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`',
      ),
    );
  } else if (sources.length > 1) {
    errors.push(invalid(fromPath, '', 'may not have more than one field specified at a time'));
  }
  const value = getString(envVar, 'value');
  if (value !== undefined && value !== '' && sources.length > 0) {
    errors.push(invalid(fromPath, '', 'may not be specified when `value` is not empty'));
  }
}

const notYet = (what: string): Schema => unsupported(`strata does not support ${what} yet`);

const envVar = obj(
  {
    name: str({ format: envVarName }),
    value: str(),
    valueFrom: obj({
      fieldRef: obj(
        { apiVersion: str({ enum: ['v1'] }), fieldPath: str({ enum: supportedEnvFieldPaths }) },
        { required: ['fieldPath'] },
      ),
      resourceFieldRef: notYet('resourceFieldRef'),
      configMapKeyRef: notYet('ConfigMaps'),
      secretKeyRef: notYet('Secrets'),
      fileKeyRef: notYet('fileKeyRef'),
    }),
  },
  { required: ['name'], check: checkEnvVar },
);

const containerPort = obj(
  {
    name: str({ format: portName }),
    containerPort: int({ min: 1, max: 65535 }),
    protocol: str({ enum: portProtocols }),
    hostPort: notYet('hostPort'),
    hostIP: notYet('hostIP'),
  },
  { required: ['containerPort', 'protocol'] },
);

function checkUniquePortNames(ports: unknown[], path: string, errors: FieldError[]): void {
  const seen = new Set<string>();
  ports.forEach((port, i) => {
    if (!isObject(port)) return;
    const name = getString(port, 'name');
    if (name === undefined || name === '' || portName(name) !== undefined) return;
    if (seen.has(name)) errors.push(duplicate(child(index(path, i), 'name'), name));
    seen.add(name);
  });
}

const probeHandlers = ['exec', 'httpGet', 'tcpSocket', 'grpc'] as const;

/** validateHandler: exactly one way to probe. */
function checkProbe(probe: JsonObject, path: string, errors: FieldError[]): void {
  const handlers = setFields(probe, probeHandlers);
  if (handlers.length === 0) errors.push(required(path, 'must specify a handler type'));
  for (const extra of handlers.slice(1)) {
    errors.push(forbidden(child(path, extra), 'may not specify more than 1 handler type'));
  }
}

const nonNegative = (): Schema => int({ min: 0 });

const probe = obj(
  {
    exec: obj({ command: arr(str(), { minItems: 1 }) }, { required: ['command'] }),
    httpGet: obj(
      {
        path: str({ format: urlPath }),
        port: intOrString(checkPortNumberOrName),
        host: str(),
        scheme: str({ enum: ['HTTP', 'HTTPS'] }),
        httpHeaders: arr(
          obj(
            { name: str({ format: httpHeaderName }), value: str({ format: httpHeaderValue }) },
            { required: ['name'] },
          ),
        ),
      },
      { required: ['port'] },
    ),
    tcpSocket: obj(
      { port: intOrString(checkPortNumberOrName), host: str() },
      { required: ['port'] },
    ),
    grpc: notYet('gRPC probes'),
    initialDelaySeconds: nonNegative(),
    timeoutSeconds: nonNegative(),
    periodSeconds: nonNegative(),
    successThreshold: nonNegative(),
    failureThreshold: nonNegative(),
    terminationGracePeriodSeconds: int({ min: 1 }),
  },
  { check: checkProbe },
);

/** A resource quantity: a number, or resource.Quantity's text ("100m", "128Mi", "1e3"). */
const quantity = intOrString((value, path, errors) => {
  if (
    typeof value === 'string' &&
    !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$/.test(value)
  ) {
    errors.push(
      invalid(
        path,
        value,
        "must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
      ),
    );
  }
});

/**
 * Who a container's processes run as, and with which privileges: strata
 * runs them as the agent does, so a manifest asking for something else is
 * refused rather than run with what it asked to be without. The other
 * fields are informational: kept, not acted on.
 */
const identity = {
  runAsUser: notYet('runAsUser'),
  runAsGroup: notYet('runAsGroup'),
  runAsNonRoot: notYet('runAsNonRoot'),
};

const seLinuxAndProfiles = {
  seLinuxOptions: anyObject(),
  windowsOptions: anyObject(),
  seccompProfile: anyObject(),
  appArmorProfile: anyObject(),
};

const containerSecurityContext = obj({
  ...identity,
  capabilities: notYet('capabilities'),
  privileged: notYet('privileged'),
  ...seLinuxAndProfiles,
  readOnlyRootFilesystem: bool(),
  allowPrivilegeEscalation: bool(),
  procMount: str(),
});

const podSecurityContext = obj({
  ...identity,
  ...seLinuxAndProfiles,
  supplementalGroups: arr(int({ min: 0 })),
  supplementalGroupsPolicy: str(),
  fsGroup: int({ min: 0 }),
  fsGroupChangePolicy: str(),
  sysctls: arr(anyObject()),
  seLinuxChangePolicy: str(),
});

function checkContainer(container: JsonObject, path: string, errors: FieldError[]): void {
  const image = getString(container, 'image');
  if (image !== undefined && image !== image.trim()) {
    errors.push(
      invalid(child(path, 'image'), image, 'must not have leading or trailing whitespace'),
    );
  }
  // Liveness and startup probes decide restarts, so one success must be enough.
  for (const name of ['livenessProbe', 'startupProbe']) {
    const threshold = getInteger(getObject(container, name) ?? {}, 'successThreshold');
    if (threshold !== undefined && threshold !== 1) {
      errors.push(invalid(`${path}.${name}.successThreshold`, threshold, 'must be 1'));
    }
  }
}

const container = obj(
  {
    name: str({ format: dns1123Label }),
    image: str(),
    imagePullPolicy: str({ enum: ['Always', 'IfNotPresent', 'Never'] }),
    command: arr(str()),
    args: arr(str()),
    workingDir: str(),
    ports: arr(containerPort, { check: checkUniquePortNames }),
    env: arr(envVar),
    envFrom: notYet('envFrom'),
    resources: obj({
      limits: map(quantity),
      requests: map(quantity),
      claims: notYet('resource claims'),
    }),
    resizePolicy: notYet('resizePolicy'),
    restartPolicy: notYet('container restartPolicy'),
    volumeMounts: notYet('volumes'),
    volumeDevices: notYet('volumes'),
    livenessProbe: probe,
    readinessProbe: probe,
    startupProbe: probe,
    lifecycle: notYet('lifecycle hooks'),
    terminationMessagePath: str(),
    terminationMessagePolicy: str({ enum: ['File', 'FallbackToLogsOnError'] }),
    securityContext: containerSecurityContext,
    stdin: bool(),
    stdinOnce: bool(),
    tty: bool(),
  },
  { required: ['name', 'image'], check: checkContainer },
);

function checkUniqueContainerNames(spec: JsonObject, path: string, errors: FieldError[]): void {
  const seen = new Set<string>();
  for (const [i, item] of objectItems(spec, 'containers')) {
    const name = getString(item, 'name');
    if (name === undefined || name === '') continue;
    if (seen.has(name)) errors.push(duplicate(`${path}.containers[${i}].name`, name));
    seen.add(name);
  }
}

function checkNameserver(value: string, path: string, errors: FieldError[]): void {
  if (parseIp(value) === undefined) errors.push(invalid(path, value, 'must be valid IP address'));
}

/** validateDNSPolicy/validatePodDNSConfig: dnsPolicy None needs a dnsConfig with a nameserver. */
function checkDnsPolicy(spec: JsonObject, path: string, errors: FieldError[]): void {
  if (getString(spec, 'dnsPolicy') !== 'None') return;
  const config = getObject(spec, 'dnsConfig');
  if (!config) {
    errors.push(required(`${path}.dnsConfig`, 'must provide `dnsConfig` when `dnsPolicy` is None'));
  } else if ((getArray(config, 'nameservers') ?? []).length === 0) {
    errors.push(
      required(
        `${path}.dnsConfig.nameservers`,
        'must provide at least one DNS nameserver when `dnsPolicy` is None',
      ),
    );
  }
}

function checkPodSpecFields(spec: JsonObject, path: string, errors: FieldError[]): void {
  checkUniqueContainerNames(spec, path, errors);
  checkDnsPolicy(spec, path, errors);
}

const forbidTrue =
  (what: string) =>
  (value: boolean, path: string, errors: FieldError[]): void => {
    if (value) errors.push(forbidden(path, `strata does not support ${what} yet`));
  };

/** The pod spec, also the `spec` of every pod template. */
export const podSpec: Schema = obj(
  {
    containers: arr(container, { minItems: 1 }),
    initContainers: notYet('init containers'),
    ephemeralContainers: notYet('ephemeral containers'),
    restartPolicy: str({ enum: ['Always', 'OnFailure', 'Never'] }),
    terminationGracePeriodSeconds: int({ min: 0 }),
    activeDeadlineSeconds: notYet('activeDeadlineSeconds'),
    dnsPolicy: str({ enum: ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'] }),
    dnsConfig: obj({
      nameservers: arr(str({ check: checkNameserver }), { maxItems: 3 }),
      searches: arr(str({ format: dns1123Subdomain }), { maxItems: 32 }),
      options: arr(obj({ name: str(), value: str() }, { required: ['name'] })),
    }),
    nodeName: str({ format: dns1123Subdomain }),
    nodeSelector: labelMap(),
    serviceAccountName: str({ format: dns1123Subdomain }),
    serviceAccount: str({ format: dns1123Subdomain }),
    automountServiceAccountToken: bool(),
    hostname: str({ format: dns1123Label }),
    subdomain: str({ format: dns1123Label }),
    setHostnameAsFQDN: notYet('setHostnameAsFQDN'),
    hostNetwork: bool({ check: forbidTrue('host-network pods') }),
    hostPID: bool({ check: forbidTrue('hostPID') }),
    hostIPC: bool({ check: forbidTrue('hostIPC') }),
    hostUsers: notYet('hostUsers'),
    shareProcessNamespace: notYet('shareProcessNamespace'),
    hostAliases: notYet('hostAliases'),
    volumes: notYet('volumes'),
    readinessGates: notYet('readinessGates'),
    runtimeClassName: notYet('runtimeClassName'),
    overhead: notYet('pod overhead'),
    resources: notYet('pod-level resources'),
    resourceClaims: notYet('resource claims'),
    schedulingGates: notYet('schedulingGates'),
    os: notYet('os'),
    securityContext: podSecurityContext,
    // Informational in strata: kept, not acted on.
    imagePullSecrets: arr(obj({ name: str() })),
    affinity: anyObject(),
    tolerations: arr(anyObject()),
    topologySpreadConstraints: arr(anyObject()),
    schedulerName: str(),
    priorityClassName: str(),
    priority: int(),
    preemptionPolicy: str({ enum: ['PreemptLowerPriority', 'Never'] }),
    enableServiceLinks: bool(),
  },
  { required: ['containers'], check: checkPodSpecFields },
);

/** A pod template's metadata (ValidatePodTemplateSpec checks its labels and annotations). */
export const templateMetadata: Schema = obj({
  name: str(),
  generateName: str(),
  namespace: str(),
  labels: labelMap(),
  annotations: map(str()),
  creationTimestamp: str(),
});

export const podTemplate: Schema = obj(
  { metadata: templateMetadata, spec: podSpec },
  { required: ['spec'] },
);

/** SetDefaults_Container's rule: `latest` (or no tag) pulls Always, anything else IfNotPresent. */
function defaultPullPolicy(image: string): string {
  if (image.includes('@')) return 'IfNotPresent';
  const lastSegment = image.slice(image.lastIndexOf('/') + 1);
  const colon = lastSegment.lastIndexOf(':');
  const tag = colon < 0 ? 'latest' : lastSegment.slice(colon + 1);
  return tag === 'latest' ? 'Always' : 'IfNotPresent';
}

function defaultProbe(container: JsonObject, name: string): void {
  const probeObject = getObject(container, name);
  if (!probeObject) return;
  setDefault(probeObject, 'timeoutSeconds', 1);
  setDefault(probeObject, 'periodSeconds', 10);
  setDefault(probeObject, 'successThreshold', 1);
  setDefault(probeObject, 'failureThreshold', 3);
  const httpGet = getObject(probeObject, 'httpGet');
  if (httpGet) {
    setDefault(httpGet, 'path', '/');
    setDefault(httpGet, 'scheme', 'HTTP');
  }
}

function defaultContainer(item: JsonObject): void {
  const image = getString(item, 'image');
  if (image !== undefined) setDefault(item, 'imagePullPolicy', defaultPullPolicy(image));
  setDefault(item, 'terminationMessagePath', '/dev/termination-log');
  setDefault(item, 'terminationMessagePolicy', 'File');
  for (const [, port] of objectItems(item, 'ports')) setDefault(port, 'protocol', 'TCP');
  for (const [, env] of objectItems(item, 'env')) {
    const fieldRef = getObject(getObject(env, 'valueFrom') ?? {}, 'fieldRef');
    if (fieldRef) setDefault(fieldRef, 'apiVersion', 'v1');
  }
  for (const name of ['livenessProbe', 'readinessProbe', 'startupProbe']) defaultProbe(item, name);
}

/** SetDefaults_PodSpec and SetDefaults_Container, on a pod's or a template's spec. */
export function defaultPodSpec(spec: JsonObject): void {
  setDefault(spec, 'restartPolicy', 'Always');
  setDefault(spec, 'terminationGracePeriodSeconds', 30);
  setDefault(spec, 'dnsPolicy', 'ClusterFirst');
  setDefault(spec, 'schedulerName', 'default-scheduler');
  setDefault(spec, 'enableServiceLinks', true);
  setDefault(spec, 'securityContext', {});
  // The v1 API reads the deprecated `serviceAccount` when `serviceAccountName` is unset.
  setDefault(spec, 'serviceAccountName', getString(spec, 'serviceAccount') ?? 'default');
  setDefault(spec, 'serviceAccount', spec.serviceAccountName);
  for (const [, item] of objectItems(spec, 'containers')) defaultContainer(item);
}

const podSchema = kindSchema({ spec: podSpec }, ['spec']);

export const podRules = {
  applyDefaults(object: KubeObject): void {
    const spec = ensureObject(object, 'spec');
    if (spec) defaultPodSpec(spec);
  },
  validate(object: KubeObject, old?: KubeObject): FieldError[] {
    const errors = validateKind(object, podSchema);
    const spec = object.spec;
    const oldSpec = old?.spec;
    if (isObject(spec) && isObject(oldSpec)) errors.push(...validatePodSpecUpdate(spec, oldSpec));
    return errors;
  },
};
