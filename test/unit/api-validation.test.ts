// Server-side validation and defaulting of the Kubernetes kinds (Namespace,
// Node, Pod, Service, EndpointSlice, Deployment, NetworkPolicy), as the API
// server applies them: realistic upstream manifests are accepted; each rule's
// violation names the exact field path and error type Kubernetes' field.Error
// would (pkg/apis/*/validation); upstream's defaults are filled.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Example, admit, change, examples, get, problems } from '../support/api-examples.js';

describe('valid upstream manifests are accepted', () => {
  for (const [name, manifest] of Object.entries(examples)) {
    it(name, () => {
      assert.deepEqual(admit(manifest).errors, []);
    });
  }
});

// [example, what the rule is, changes, expected errors as "field Type"].
// prettier-ignore
const violations: [Example, string, Record<string, unknown>, string[]][] = [
  ['namespace', 'a Namespace name is a DNS label', { 'metadata.name': 'prod.eu' },
    ['metadata.name Invalid']],
  ['node', 'podCIDR is a CIDR', { 'spec.podCIDR': '10.244.1.0', 'spec.podCIDRs': undefined },
    ['spec.podCIDR Invalid', 'spec.podCIDRs[0] Invalid']],
  ['node', 'one pod CIDR per family', { 'spec.podCIDRs': ['10.244.1.0/24', '10.245.1.0/24'] },
    ['spec.podCIDRs Invalid']],
  ['node', 'pod CIDRs are unique',
    { 'spec.podCIDR': undefined, 'spec.podCIDRs': ['10.244.1.0/24', '10.244.1.0/24'] },
    ['spec.podCIDRs Invalid', 'spec.podCIDRs[1] Duplicate']],
  ['pod', 'containers are required', { 'spec.containers': [] }, ['spec.containers Required']],
  ['pod', 'container names are DNS labels', { 'spec.containers[0].name': 'Nginx' },
    ['spec.containers[0].name Invalid']],
  ['pod', 'container names are unique',
    { 'spec.containers[1]': { name: 'nginx', image: 'busybox' } },
    ['spec.containers[1].name Duplicate']],
  ['pod', 'image is required', { 'spec.containers[0].image': undefined },
    ['spec.containers[0].image Required']],
  ['pod', 'command is a list of strings', { 'spec.containers[0].command': 'nginx -g' },
    ['spec.containers[0].command Invalid']],
  ['pod', 'args are strings', { 'spec.containers[0].args[1]': 5 },
    ['spec.containers[0].args[1] Invalid']],
  ['pod', 'containerPort is 1-65535', { 'spec.containers[0].ports[0].containerPort': 70000 },
    ['spec.containers[0].ports[0].containerPort Invalid']],
  ['pod', 'containerPort is required', { 'spec.containers[0].ports[0].containerPort': undefined },
    ['spec.containers[0].ports[0].containerPort Required']],
  ['pod', 'protocols are TCP, UDP, SCTP', { 'spec.containers[0].ports[0].protocol': 'HTTP' },
    ['spec.containers[0].ports[0].protocol NotSupported']],
  ['pod', 'port names are IANA service names',
    { 'spec.containers[0].ports[0].name': 'http-port-number-1' },
    ['spec.containers[0].ports[0].name Invalid']],
  ['pod', 'port names need a letter', { 'spec.containers[0].ports[0].name': '8080' },
    ['spec.containers[0].ports[0].name Invalid']],
  ['pod', 'port names are unique', { 'spec.containers[0].ports[1].name': 'http' },
    ['spec.containers[0].ports[1].name Duplicate']],
  ['pod', 'hostPort is not supported', { 'spec.containers[0].ports[0].hostPort': 8080 },
    ['spec.containers[0].ports[0].hostPort Forbidden']],
  ['pod', 'env names are required', { 'spec.containers[0].env[0].name': undefined },
    ['spec.containers[0].env[0].name Required']],
  ['pod', 'env values are strings', { 'spec.containers[0].env[0].value': 3 },
    ['spec.containers[0].env[0].value Invalid']],
  ['pod', 'value and valueFrom exclude each other', { 'spec.containers[0].env[1].value': 'x' },
    ['spec.containers[0].env[1].valueFrom Invalid']],
  ['pod', 'fieldRef paths strata fills',
    { 'spec.containers[0].env[1].valueFrom.fieldRef.fieldPath': 'metadata.uid' },
    ['spec.containers[0].env[1].valueFrom.fieldRef.fieldPath NotSupported']],
  ['pod', 'Secret references are not supported',
    { 'spec.containers[0].env[1].valueFrom': { secretKeyRef: { name: 's', key: 'k' } } },
    ['spec.containers[0].env[1].valueFrom.secretKeyRef Forbidden']],
  ['pod', 'restartPolicy values', { 'spec.restartPolicy': 'Sometimes' },
    ['spec.restartPolicy NotSupported']],
  ['pod', 'terminationGracePeriodSeconds >= 0', { 'spec.terminationGracePeriodSeconds': -1 },
    ['spec.terminationGracePeriodSeconds Invalid']],
  ['pod', 'nodeName is a DNS subdomain', { 'spec.nodeName': 'Node_1' }, ['spec.nodeName Invalid']],
  // validateHandler counts handlers in the order exec, httpGet, tcpSocket: the later ones are refused.
  ['pod', 'a probe has one handler',
    { 'spec.containers[0].livenessProbe.exec': { command: ['true'] } },
    ['spec.containers[0].livenessProbe.tcpSocket Forbidden']],
  ['pod', 'a probe needs a handler', { 'spec.containers[0].livenessProbe': { periodSeconds: 5 } },
    ['spec.containers[0].livenessProbe Required']],
  ['pod', 'probe ports are numbers or names',
    { 'spec.containers[0].readinessProbe.httpGet.port': 0 },
    ['spec.containers[0].readinessProbe.httpGet.port Invalid']],
  ['pod', 'liveness successThreshold is 1',
    { 'spec.containers[0].livenessProbe.successThreshold': 2 },
    ['spec.containers[0].livenessProbe.successThreshold Invalid']],
  ['pod', 'volumes are not supported yet', { 'spec.volumes': [{ name: 'data', emptyDir: {} }] },
    ['spec.volumes Forbidden']],
  ['pod', 'unknown fields are rejected', { 'spec.containers[0].imagePolicy': 'x' },
    ['spec.containers[0].imagePolicy Forbidden']],
  ['pod', 'host-network pods are not supported', { 'spec.hostNetwork': true },
    ['spec.hostNetwork Forbidden']],
  ['pod', 'who a container runs as is not supported yet',
    { 'spec.containers[0].securityContext': { runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true, capabilities: { add: ['NET_ADMIN'] }, privileged: true } },
    ['spec.containers[0].securityContext.capabilities Forbidden', 'spec.containers[0].securityContext.privileged Forbidden',
      'spec.containers[0].securityContext.runAsGroup Forbidden', 'spec.containers[0].securityContext.runAsNonRoot Forbidden',
      'spec.containers[0].securityContext.runAsUser Forbidden']],
  ['pod', 'who a pod runs as is not supported yet',
    { 'spec.securityContext': { runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, fsGroup: 2000 } },
    ['spec.securityContext.runAsGroup Forbidden', 'spec.securityContext.runAsNonRoot Forbidden',
      'spec.securityContext.runAsUser Forbidden']],
  ['pod', 'unknown securityContext fields are rejected', { 'spec.containers[0].securityContext.runAs': 1 },
    ['spec.containers[0].securityContext.runAs Forbidden']],
  ['pod', 'activeDeadlineSeconds is not supported yet', { 'spec.activeDeadlineSeconds': 60 },
    ['spec.activeDeadlineSeconds Forbidden']],
  ['deployment', 'a template takes no activeDeadlineSeconds (upstream)',
    { 'spec.template.spec.activeDeadlineSeconds': 60 }, ['spec.template.spec.activeDeadlineSeconds Invalid']],
  ['pod', 'an httpGet path is a URL path', { 'spec.containers[0].readinessProbe.httpGet.path': '/a b' },
    ['spec.containers[0].readinessProbe.httpGet.path Invalid']],
  ['pod', 'an httpGet path has no control characters',
    { 'spec.containers[0].readinessProbe.httpGet.path': '/ok\r\nX-Injected: 1' },
    ['spec.containers[0].readinessProbe.httpGet.path Invalid']],
  ['pod', 'an httpGet path is absolute', { 'spec.containers[0].readinessProbe.httpGet.path': 'healthz' },
    ['spec.containers[0].readinessProbe.httpGet.path Invalid']],
  ['pod', 'an httpGet header value has no CR or LF',
    { 'spec.containers[0].readinessProbe.httpGet.httpHeaders': [{ name: 'X-A', value: 'a\r\nX-B: b' }, { name: 'X-C', value: 'tab\tok' }] },
    ['spec.containers[0].readinessProbe.httpGet.httpHeaders[0].value Invalid']],
  ['service', 'LoadBalancer is not supported yet', { 'spec.type': 'LoadBalancer' },
    ['spec.type NotSupported']],
  ['service', 'ExternalName is not supported yet', { 'spec.type': 'ExternalName' },
    ['spec.type NotSupported']],
  ['service', 'ports are required', { 'spec.ports': [] }, ['spec.ports Required']],
  ['service', 'port is 1-65535', { 'spec.ports[0].port': 0 }, ['spec.ports[0].port Invalid']],
  ['service', 'targetPort is a number or IANA name', { 'spec.ports[0].targetPort': 'Not_A_Name' },
    ['spec.ports[0].targetPort Invalid']],
  ['service', 'protocol values', { 'spec.ports[0].protocol': 'ICMP' },
    ['spec.ports[0].protocol NotSupported']],
  ['multiPortService', 'names are required with several ports', { 'spec.ports[1].name': undefined },
    ['spec.ports[1].name Required']],
  ['multiPortService', 'port names are unique', { 'spec.ports[1].name': 'http' },
    ['spec.ports[1].name Duplicate']],
  ['multiPortService', 'port and protocol are unique', { 'spec.ports[1].port': 80 },
    ['spec.ports[1] Duplicate']],
  // The node port range is the API server's, checked where it allocates (apiserver-node-ports.test.ts).
  ['multiPortService', 'nodePorts are unique per protocol', { 'spec.ports[1].nodePort': 30080 },
    ['spec.ports[1].nodePort Duplicate']],
  ['service', 'nodePort needs type NodePort', { 'spec.ports[0].nodePort': 30080 },
    ['spec.ports[0].nodePort Forbidden']],
  ['service', 'clusterIP is an IP or None', { 'spec.clusterIP': '10.0.0.300' },
    ['spec.clusterIP Invalid', 'spec.clusterIPs[0] Invalid']],
  ['multiPortService', 'headless is ClusterIP only', { 'spec.clusterIP': 'None' },
    ['spec.clusterIP Invalid']],
  ['multiPortService', 'affinity timeout is 1-86400',
    { 'spec.sessionAffinityConfig.clientIP.timeoutSeconds': 86401 },
    ['spec.sessionAffinityConfig.clientIP.timeoutSeconds Invalid']],
  ['service', 'affinity config needs ClientIP',
    { 'spec.sessionAffinityConfig': { clientIP: { timeoutSeconds: 60 } } },
    ['spec.sessionAffinityConfig Forbidden']],
  ['service', 'sessionAffinity values', { 'spec.sessionAffinity': 'Cookie' },
    ['spec.sessionAffinity NotSupported']],
  ['service', 'selector label values', { 'spec.selector.app': 'not valid!' },
    ['spec.selector[app] Invalid']],
  ['service', 'a Service name is a DNS-1035 label', { 'metadata.name': '1st-service' },
    ['metadata.name Invalid']],
  ['service', 'externalIPs are not supported', { 'spec.externalIPs': ['192.0.2.10'] },
    ['spec.externalIPs Forbidden']],
  ['endpointSlice', 'addressType values', { addressType: 'IPv5' }, ['addressType NotSupported']],
  ['endpointSlice', 'addresses match addressType', { 'endpoints[0].addresses[0]': 'fd00::1' },
    ['endpoints[0].addresses[0] Invalid']],
  ['endpointSlice', 'no loopback endpoints', { 'endpoints[0].addresses[0]': '127.0.0.1' },
    ['endpoints[0].addresses[0] Invalid']],
  ['endpointSlice', 'addresses are required', { 'endpoints[0].addresses': [] },
    ['endpoints[0].addresses Required']],
  ['endpointSlice', 'conditions are booleans', { 'endpoints[0].conditions.ready': 'yes' },
    ['endpoints[0].conditions.ready Invalid']],
  ['endpointSlice', 'port names are unique', { 'ports[1]': { name: 'http', port: 81 } },
    ['ports[1].name Duplicate']],
  ['deployment', 'selector is required', { 'spec.selector': undefined },
    ['spec.selector Required']],
  ['deployment', 'selector matches the template', { 'spec.selector.matchLabels.app': 'web' },
    ['spec.template.metadata.labels Invalid']],
  ['deployment', 'an empty selector is invalid', { 'spec.selector': {} },
    ['spec.selector Invalid']],
  ['deployment', 'replicas >= 0', { 'spec.replicas': -1 }, ['spec.replicas Invalid']],
  ['deployment', 'the template is a pod spec',
    { 'spec.template.spec.containers[0].ports[0].containerPort': 0 },
    ['spec.template.spec.containers[0].ports[0].containerPort Invalid']],
  ['deployment', 'template restartPolicy is Always',
    { 'spec.template.spec.restartPolicy': 'Never' },
    ['spec.template.spec.restartPolicy NotSupported']],
  ['deployment', 'strategy types', { 'spec.strategy.type': 'BlueGreen' },
    ['spec.strategy.type NotSupported']],
  ['deployment', 'Recreate takes no rollingUpdate',
    { 'spec.strategy': { type: 'Recreate', rollingUpdate: { maxSurge: 1 } } },
    ['spec.strategy.rollingUpdate Forbidden']],
  ['deployment', 'maxSurge and maxUnavailable not both 0',
    { 'spec.strategy.rollingUpdate': { maxSurge: 0, maxUnavailable: '0%' } },
    ['spec.strategy.rollingUpdate.maxUnavailable Invalid']],
  ['deployment', 'maxUnavailable is an int or percentage',
    { 'spec.strategy.rollingUpdate': { maxUnavailable: 'half' } },
    ['spec.strategy.rollingUpdate.maxUnavailable Invalid']],
  ['deployment', 'maxUnavailable at most 100%',
    { 'spec.strategy.rollingUpdate': { maxUnavailable: '150%' } },
    ['spec.strategy.rollingUpdate.maxUnavailable Invalid']],
  ['deployment', 'progressDeadlineSeconds > minReadySeconds', { 'spec.minReadySeconds': 600 },
    ['spec.progressDeadlineSeconds Invalid']],
  ['networkPolicy', 'podSelector is required', { 'spec.podSelector': undefined },
    ['spec.podSelector Required']],
  ['networkPolicy', 'policyTypes values', { 'spec.policyTypes[1]': 'Both' },
    ['spec.policyTypes[1] NotSupported']],
  ['networkPolicy', 'at most two policyTypes', { 'spec.policyTypes[2]': 'Ingress' },
    ['spec.policyTypes TooMany']],
  ['networkPolicy', 'a peer needs a selector or ipBlock', { 'spec.ingress[0].from[1]': {} },
    ['spec.ingress[0].from[1] Required']],
  ['networkPolicy', 'ipBlock stands alone', { 'spec.ingress[0].from[0].podSelector': {} },
    ['spec.ingress[0].from[0] Forbidden']],
  ['networkPolicy', 'ipBlock.cidr is a CIDR',
    { 'spec.ingress[0].from[0].ipBlock.cidr': '172.17.0.0/33' },
    ['spec.ingress[0].from[0].ipBlock.cidr Invalid']],
  ['networkPolicy', 'ipBlock.cidr is required',
    { 'spec.egress[0].to[0].ipBlock': { except: ['10.0.0.0/25'] } },
    ['spec.egress[0].to[0].ipBlock.cidr Required']],
  ['networkPolicy', 'except is strictly inside cidr',
    { 'spec.ingress[0].from[0].ipBlock.except[0]': '172.17.0.0/16' },
    ['spec.ingress[0].from[0].ipBlock.except[0] Invalid']],
  ['networkPolicy', 'except is inside cidr',
    { 'spec.ingress[0].from[0].ipBlock.except[0]': '10.1.0.0/24' },
    ['spec.ingress[0].from[0].ipBlock.except[0] Invalid']],
  ['networkPolicy', 'port protocols', { 'spec.ingress[0].ports[0].protocol': 'ICMP' },
    ['spec.ingress[0].ports[0].protocol NotSupported']],
  ['networkPolicy', 'port is 1-65535', { 'spec.ingress[0].ports[0].port': 65536 },
    ['spec.ingress[0].ports[0].port Invalid']],
  ['networkPolicy', 'a named port is an IANA name',
    { 'spec.ingress[0].ports[0].port': 'Redis_Port' },
    ['spec.ingress[0].ports[0].port Invalid']],
  ['networkPolicy', 'endPort needs a numeric port', { 'spec.egress[0].ports[0].port': 'http' },
    ['spec.egress[0].ports[0].endPort Invalid']],
  ['networkPolicy', 'endPort needs a port', { 'spec.egress[0].ports[0].port': undefined },
    ['spec.egress[0].ports[0].endPort Invalid']],
  ['networkPolicy', 'endPort >= port', { 'spec.egress[0].ports[0].endPort': 31000 },
    ['spec.egress[0].ports[0].endPort Invalid']],
  ['networkPolicy', 'In needs values',
    { 'spec.podSelector.matchExpressions': [{ key: 'tier', operator: 'In', values: [] }] },
    ['spec.podSelector.matchExpressions[0].values Required']],
  ['networkPolicy', 'Exists takes no values',
    { 'spec.ingress[0].from[1].namespaceSelector.matchExpressions': [{ key: 'team', operator: 'Exists', values: ['a'] }] },
    ['spec.ingress[0].from[1].namespaceSelector.matchExpressions[0].values Forbidden']],
  ['networkPolicy', 'operators are In, NotIn, Exists, DoesNotExist',
    { 'spec.podSelector.matchExpressions': [{ key: 'tier', operator: 'Equals', values: ['a'] }] },
    ['spec.podSelector.matchExpressions[0].operator Invalid']],
  ['networkPolicy', 'expression keys are label keys',
    { 'spec.podSelector.matchExpressions': [{ key: 'bad key', operator: 'Exists' }] },
    ['spec.podSelector.matchExpressions[0].key Invalid']],
  ['networkPolicy', 'matchLabels keys are label keys',
    { 'spec.podSelector.matchLabels': { '-role': 'db' } },
    ['spec.podSelector.matchLabels Invalid']],
  ['networkPolicy', 'unknown fields are rejected', { 'spec.ingress[0].sources': [] },
    ['spec.ingress[0].sources Forbidden']],
];

describe('each rule reports its field path and error type', () => {
  for (const [example, rule, changes, expected] of violations) {
    it(`${examples[example].kind}: ${rule}`, () => {
      const { errors } = admit(change(examples[example], changes));
      assert.deepEqual(problems(errors), [...expected].sort(), JSON.stringify(errors));
    });
  }
});

// [example, changes before admission, field, the value upstream defaults it to].
// prettier-ignore
const defaults: [Example, Record<string, unknown>, string, unknown][] = [
  ['namespace', {}, 'metadata.labels[kubernetes.io/metadata.name]', 'production'],
  ['node', { 'spec.podCIDRs': undefined }, 'spec.podCIDRs', ['10.244.1.0/24']],
  ['pod', {}, 'spec.containers[0].ports[0].protocol', 'TCP'],
  ['pod', { 'spec.restartPolicy': undefined }, 'spec.restartPolicy', 'Always'],
  ['pod', { 'spec.terminationGracePeriodSeconds': undefined }, 'spec.terminationGracePeriodSeconds', 30],
  ['pod', {}, 'spec.dnsPolicy', 'ClusterFirst'],
  ['pod', { 'spec.serviceAccountName': undefined }, 'spec.serviceAccountName', 'default'],
  ['pod', {}, 'spec.containers[0].imagePullPolicy', 'IfNotPresent'],
  ['pod', { 'spec.containers[0].image': 'nginx' }, 'spec.containers[0].imagePullPolicy', 'Always'],
  ['pod', {}, 'spec.containers[0].env[1].valueFrom.fieldRef.apiVersion', 'v1'],
  ['pod', {}, 'spec.containers[0].readinessProbe.timeoutSeconds', 1],
  ['pod', {}, 'spec.containers[0].livenessProbe.failureThreshold', 3],
  ['pod', { 'spec.containers[0].readinessProbe.httpGet.path': undefined }, 'spec.containers[0].readinessProbe.httpGet.path', '/'],
  ['service', {}, 'spec.type', 'ClusterIP'],
  ['service', {}, 'spec.sessionAffinity', 'None'],
  ['service', { 'spec.ports[0].protocol': undefined }, 'spec.ports[0].protocol', 'TCP'],
  ['service', { 'spec.ports[0].targetPort': undefined }, 'spec.ports[0].targetPort', 80],
  ['service', {}, 'spec.internalTrafficPolicy', 'Cluster'],
  ['multiPortService', { 'spec.sessionAffinityConfig': undefined }, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', 10800],
  ['multiPortService', {}, 'spec.externalTrafficPolicy', 'Cluster'],
  ['endpointSlice', { 'ports[0].protocol': undefined }, 'ports[0].protocol', 'TCP'],
  ['deployment', { 'spec.replicas': undefined }, 'spec.replicas', 1],
  ['deployment', {}, 'spec.strategy', { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } }],
  ['deployment', {}, 'spec.revisionHistoryLimit', 10],
  ['deployment', {}, 'spec.progressDeadlineSeconds', 600],
  ['deployment', {}, 'spec.template.spec.restartPolicy', 'Always'],
  ['deployment', {}, 'spec.template.spec.containers[0].ports[0].protocol', 'TCP'],
  ['networkPolicy', { 'spec.policyTypes': undefined }, 'spec.policyTypes', ['Ingress', 'Egress']],
  ['networkPolicy', { 'spec.policyTypes': undefined, 'spec.egress': undefined }, 'spec.policyTypes', ['Ingress']],
  ['networkPolicy', { 'spec.policyTypes': undefined, 'spec.egress': [] }, 'spec.policyTypes', ['Ingress']],
  ['networkPolicy', { 'spec.ingress[0].ports[0].protocol': undefined }, 'spec.ingress[0].ports[0].protocol', 'TCP'],
];

describe('upstream defaults are applied', () => {
  for (const [example, changes, field, value] of defaults) {
    it(`${examples[example].kind} ${field}`, () => {
      const { object, errors } = admit(change(examples[example], changes));
      assert.deepEqual(errors, []);
      assert.deepEqual(get(object, field), value);
    });
  }

  it('keeps values a manifest sets', () => {
    const { object } = admit(examples.multiPortService);
    assert.equal(get(object, 'spec.ports[0].targetPort'), 'http');
    assert.equal(get(object, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds'), 600);
  });

  it('survives fields of the wrong type and leaves them to validation', () => {
    const { errors } = admit(
      change(examples.deployment, { 'spec.template.spec': 'nginx', 'spec.strategy': 3 }),
    );
    assert.deepEqual(errors.map((e) => e.field).sort(), ['spec.strategy', 'spec.template.spec']);
  });
});

describe('malformed objects', () => {
  // A manifest can hold anything: defaulting and validation report it, never throw.
  const garbage: Record<string, unknown>[] = [
    { spec: 'web' },
    { spec: [] },
    { metadata: null },
    { metadata: 'web' },
    { 'spec.containers': {}, 'spec.ports': 80, endpoints: 'x', 'spec.rules': [null, 3] },
  ];
  for (const [name, manifest] of Object.entries(examples)) {
    it(name, () => {
      for (const changes of garbage) {
        const { errors } = admit(change(manifest, changes));
        assert.ok(errors.length > 0, JSON.stringify(changes));
      }
      // No spec at all is the same as an empty one.
      assert.doesNotThrow(() => admit(change(manifest, { spec: null })));
    });
  }
});

describe('updates', () => {
  it('a Deployment selector is immutable', () => {
    const updated = change(examples.deployment, {
      'spec.selector.matchLabels': { app: 'nginx', tier: 'web' },
      'spec.template.metadata.labels.tier': 'web',
    });
    const { errors } = admit(updated, examples.deployment);
    assert.deepEqual(
      errors.map((e) => `${e.field} ${e.type}`),
      ['spec.selector Invalid'],
    );
  });

  it('a Service keeps its cluster IP', () => {
    const stored = change(examples.service, { 'spec.clusterIP': '10.96.0.10' });
    assert.deepEqual(admit(change(stored, { 'spec.clusterIPs': undefined }), stored).errors, []);
    const moved = change(stored, { 'spec.clusterIP': '10.96.0.11', 'spec.clusterIPs': undefined });
    assert.deepEqual(
      admit(moved, stored).errors.map((e) => `${e.field} ${e.type}`),
      ['spec.clusterIP Invalid'],
    );
  });

  it('a Pod update may change only images, activeDeadlineSeconds and added tolerations', () => {
    const stored = admit(examples.pod).object;
    const update = (changes: Record<string, unknown>) =>
      admit(change(stored, changes), stored).errors.map((e) => `${e.field} ${e.type}`);
    assert.deepEqual(
      update({ 'spec.containers[0].image': 'nginx:1.27', 'metadata.labels.v': '2' }),
      [],
    );
    assert.deepEqual(update({ 'spec.tolerations[1]': { key: 'more', operator: 'Exists' } }), []);
    // null and empty are the same as unset, as upstream's semantic equality has them.
    assert.deepEqual(update({ 'spec.hostAliases': null, 'spec.imagePullSecrets': [] }), []);
    for (const changes of [
      { 'spec.nodeName': 'node-2' },
      { 'spec.nodeName': undefined },
      { 'spec.containers[0].command': ['sh'] },
      { 'spec.restartPolicy': 'Never' },
      { 'spec.terminationGracePeriodSeconds': 5 },
    ]) {
      assert.deepEqual(update(changes), ['spec Forbidden'], JSON.stringify(changes));
    }
    assert.deepEqual(update({ 'spec.tolerations[0].operator': 'Equal' }), [
      'spec.tolerations Forbidden',
    ]);
    assert.deepEqual(update({ 'spec.containers[1]': { name: 'side', image: 'busybox' } }), [
      'spec.containers Forbidden',
    ]);
    const [error] = admit(change(stored, { 'spec.nodeName': 'node-2' }), stored).errors;
    assert.match(
      error?.detail ?? '',
      /^pod updates may not change fields other than `spec.containers\[\*\].image`,`spec.initContainers\[\*\].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` \(only additions to existing tolerations\),`spec.terminationGracePeriodSeconds` .*\nspec.nodeName: "node-1" → "node-2"$/,
    );
  });

  it('a Node pod CIDR may be assigned once, not changed', () => {
    const bare = change(examples.node, { spec: {} });
    assert.deepEqual(admit(examples.node, bare).errors, []);
    const moved = change(examples.node, {
      'spec.podCIDR': '10.244.2.0/24',
      'spec.podCIDRs': undefined,
    });
    assert.deepEqual(
      admit(moved, examples.node).errors.map((e) => `${e.field} ${e.type}`),
      ['spec.podCIDRs Forbidden'],
    );
  });

  it('an EndpointSlice keeps its addressType', () => {
    const changed = change(examples.endpointSlice, {
      addressType: 'IPv6',
      'endpoints[0].addresses': ['fd00::5'],
    });
    assert.deepEqual(
      admit(changed, examples.endpointSlice).errors.map((e) => `${e.field} ${e.type}`),
      ['addressType Invalid'],
    );
  });
});

describe('error details name what was expected', () => {
  it('lists the supported values', () => {
    const { errors } = admit(change(examples.service, { 'spec.type': 'LoadBalancer' }));
    assert.equal(errors[0]?.detail, 'supported values: "ClusterIP", "NodePort"');
    assert.equal(errors[0]?.value, 'LoadBalancer');
  });

  it('says why a field strata lacks is refused', () => {
    const { errors } = admit(
      change(examples.pod, { 'spec.initContainers': [{ name: 'init', image: 'busybox' }] }),
    );
    assert.deepEqual(errors, [
      {
        field: 'spec.initContainers',
        type: 'Forbidden',
        detail: 'strata does not support init containers yet',
      },
    ]);
  });
});
