// Structural validation and defaulting of the mesh kinds (Istio
// VirtualService, DestinationRule, Gateway, PeerAuthentication,
// AuthorizationPolicy, RequestAuthentication; Gateway API Gateway and
// HTTPRoute): the fields and enums of the upstream API references, the rules
// of istio/pkg/config/validation and of the Gateway API CRDs' CEL, each
// reported at its field path.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Example, admit, change, examples, get, problems } from '../support/api-examples.js';

// [example, what the rule is, changes, expected errors as "field Type"].
// prettier-ignore
const violations: [Example, string, Record<string, unknown>, string[]][] = [
  ['virtualService', 'a route needs a destination host',
    { 'spec.http[0].route[0].destination.host': undefined },
    ['spec.http[0].route[0].destination.host Required']],
  ['virtualService', 'a route, redirect or direct response is required',
    { 'spec.http[1].route': undefined, 'spec.http[1].fault': undefined },
    ['spec.http[1].route Required']],
  ['virtualService', 'redirect excludes route',
    { 'spec.http[0].redirect': { uri: '/v1' }, 'spec.http[0].rewrite': undefined },
    ['spec.http[0].route Forbidden']],
  ['virtualService', 'http, tcp or tls is required',
    { 'spec.http': undefined, 'spec.tcp': undefined },
    ['spec.http Required']],
  ['virtualService', 'weights are not negative', { 'spec.http[1].route[0].weight': -5 },
    ['spec.http[1].route[0].weight Invalid']],
  ['virtualService', 'timeouts are durations', { 'spec.http[0].timeout': '10 seconds' },
    ['spec.http[0].timeout Invalid']],
  ['virtualService', 'retryOn policies', { 'spec.http[0].retries.retryOn': '5xx,sometimes' },
    ['spec.http[0].retries.retryOn Invalid']],
  ['virtualService', 'abort status is 200-599', { 'spec.http[1].fault.abort.httpStatus': 700 },
    ['spec.http[1].fault.abort.httpStatus Invalid']],
  ['virtualService', 'fault percentage is 0-100',
    { 'spec.http[1].fault.delay.percentage.value': 101 },
    ['spec.http[1].fault.delay.percentage.value Invalid']],
  ['virtualService', 'a string match has one kind', { 'spec.http[0].match[0].uri.exact': '/x' },
    ['spec.http[0].match[0].uri.prefix Forbidden']],
  ['virtualService', 'unknown fields are rejected', { 'spec.http[0].retry': {} },
    ['spec.http[0].retry Forbidden']],
  ['virtualService', 'destination ports are 1-65535',
    { 'spec.tcp[0].route[0].destination.port.number': 0 },
    ['spec.tcp[0].route[0].destination.port.number Invalid']],
  ['destinationRule', 'host is required', { 'spec.host': undefined }, ['spec.host Required']],
  ['destinationRule', 'load balancer values',
    { 'spec.trafficPolicy.loadBalancer.simple': 'FASTEST' },
    ['spec.trafficPolicy.loadBalancer.simple NotSupported']],
  ['destinationRule', 'subset names are unique', { 'spec.subsets[1].name': 'v1' },
    ['spec.subsets[1].name Duplicate']],
  ['destinationRule', 'maxEjectionPercent is 0-100',
    { 'spec.trafficPolicy.outlierDetection.maxEjectionPercent': 150 },
    ['spec.trafficPolicy.outlierDetection.maxEjectionPercent Invalid']],
  ['destinationRule', 'TLS modes', { 'spec.trafficPolicy.tls.mode': 'STRICT' },
    ['spec.trafficPolicy.tls.mode NotSupported']],
  ['destinationRule', 'a traffic policy is not empty', { 'spec.subsets[1].trafficPolicy': {} },
    ['spec.subsets[1].trafficPolicy Required']],
  ['istioGateway', 'servers are required', { 'spec.servers': [] }, ['spec.servers Required']],
  ['istioGateway', 'HTTPS needs TLS settings', { 'spec.servers[1].tls': undefined },
    ['spec.servers[1].tls Required']],
  ['istioGateway', 'SIMPLE TLS needs a certificate',
    { 'spec.servers[2].tls.privateKey': undefined },
    ['spec.servers[2].tls.privateKey Required']],
  ['istioGateway', 'server port names are unique', { 'spec.servers[2].port.name': 'https-443' },
    ['spec.servers[2].port.name Duplicate']],
  ['istioGateway', 'server protocols', { 'spec.servers[0].port.protocol': 'QUIC' },
    ['spec.servers[0].port.protocol Invalid']],
  ['istioGateway', 'server hosts', { 'spec.servers[0].hosts': [] },
    ['spec.servers[0].hosts Required']],
  ['peerAuthentication', 'mTLS modes', { 'spec.mtls.mode': 'ON' }, ['spec.mtls.mode NotSupported']],
  ['peerAuthentication', 'port-level mTLS needs a selector', { 'spec.selector': undefined },
    ['spec.portLevelMtls Forbidden']],
  ['peerAuthentication', 'port-level keys are ports',
    { 'spec.portLevelMtls': { 0: { mode: 'STRICT' } } },
    ['spec.portLevelMtls[0] Invalid']],
  ['authorizationPolicy', 'actions', { 'spec.action': 'PERMIT' }, ['spec.action NotSupported']],
  ['authorizationPolicy', 'a source is not empty', { 'spec.rules[0].from[0].source': {} },
    ['spec.rules[0].from[0].source Required']],
  ['authorizationPolicy', 'ipBlocks are IPs or CIDRs',
    { 'spec.rules[0].from[1].source.ipBlocks[0]': '10.0.0.0/99' },
    ['spec.rules[0].from[1].source.ipBlocks[0] Invalid']],
  ['authorizationPolicy', 'operation ports', { 'spec.rules[0].to[0].operation.ports[0]': '80000' },
    ['spec.rules[0].to[0].operation.ports[0] Invalid']],
  ['authorizationPolicy', 'condition keys are attributes',
    { 'spec.rules[0].when[0].key': 'request.colour' },
    ['spec.rules[0].when[0].key Invalid']],
  ['authorizationPolicy', 'conditions need values',
    { 'spec.rules[0].when[1].notValues': undefined },
    ['spec.rules[0].when[1].values Required']],
  ['authorizationPolicy', 'selector or targetRef, not both',
    { 'spec.targetRef': { kind: 'Service', name: 'httpbin' } },
    ['spec.targetRef Forbidden']],
  ['authorizationPolicy', 'provider is for CUSTOM only', { 'spec.provider': { name: 'x' } },
    ['spec.provider Forbidden']],
  ['customAuthorizationPolicy', 'CUSTOM needs a provider name', { 'spec.provider': undefined },
    ['spec.provider.name Required']],
  ['customAuthorizationPolicy', 'DENY needs rules',
    { 'spec.action': 'DENY', 'spec.provider': undefined, 'spec.rules': undefined },
    ['spec.rules Required']],
  ['requestAuthentication', 'issuer is required', { 'spec.jwtRules[0].issuer': undefined },
    ['spec.jwtRules[0].issuer Required']],
  ['requestAuthentication', 'jwksUri is a URL', { 'spec.jwtRules[0].jwksUri': 'not a url' },
    ['spec.jwtRules[0].jwksUri Invalid']],
  ['gateway', 'gatewayClassName is required', { 'spec.gatewayClassName': undefined },
    ['spec.gatewayClassName Required']],
  ['gateway', 'listener ports are 1-65535', { 'spec.listeners[0].port': 0 },
    ['spec.listeners[0].port Invalid']],
  ['gateway', 'listener names are unique', { 'spec.listeners[1].name': 'http' },
    ['spec.listeners[1].name Duplicate']],
  ['gateway', 'HTTPS needs tls', { 'spec.listeners[1].tls': undefined },
    ['spec.listeners[1].tls Required']],
  ['gateway', 'HTTP takes no tls',
    { 'spec.listeners[0].tls': { certificateRefs: [{ name: 'c' }] } },
    ['spec.listeners[0].tls Forbidden']],
  ['gateway', 'allowedRoutes from values',
    { 'spec.listeners[0].allowedRoutes.namespaces.from': 'Any' },
    ['spec.listeners[0].allowedRoutes.namespaces.from NotSupported']],
  ['gateway', 'listener protocol format', { 'spec.listeners[0].protocol': 'HTTP/1.1' },
    ['spec.listeners[0].protocol Invalid']],
  ['httpRoute', 'parentRefs name the parent', { 'spec.parentRefs[0].name': undefined },
    ['spec.parentRefs[0].name Required']],
  ['httpRoute', 'hostnames are DNS names', { 'spec.hostnames[0]': 'Bar.Example.com' },
    ['spec.hostnames[0] Invalid']],
  ['httpRoute', 'path types', { 'spec.rules[1].matches[0].path.type': 'Prefix' },
    ['spec.rules[1].matches[0].path.type NotSupported']],
  ['httpRoute', 'paths are absolute', { 'spec.rules[1].matches[0].path.value': 'api' },
    ['spec.rules[1].matches[0].path.value Invalid']],
  ['httpRoute', 'methods', { 'spec.rules[1].matches[0].method': 'FETCH' },
    ['spec.rules[1].matches[0].method NotSupported']],
  ['httpRoute', 'Service backends need a port', { 'spec.rules[0].backendRefs[0].port': undefined },
    ['spec.rules[0].backendRefs[0].port Required']],
  ['httpRoute', 'weights are 0-1000000', { 'spec.rules[1].backendRefs[0].weight': 1000001 },
    ['spec.rules[1].backendRefs[0].weight Invalid']],
  ['httpRoute', 'a filter sets the field of its type',
    { 'spec.rules[1].filters[0].type': 'ResponseHeaderModifier' },
    ['spec.rules[1].filters[0].responseHeaderModifier Required', 'spec.rules[1].filters[0].requestHeaderModifier Forbidden']],
  ['httpRoute', 'redirect and backendRefs exclude each other',
    { 'spec.rules[1].filters[0]': { type: 'RequestRedirect', requestRedirect: { scheme: 'https' } } },
    ['spec.rules[1].filters Forbidden']],
  ['httpRoute', 'backendRequest within request timeout',
    { 'spec.rules[1].timeouts.backendRequest': '20s' },
    ['spec.rules[1].timeouts.backendRequest Invalid']],
  ['httpRoute', 'durations', { 'spec.rules[1].timeouts.request': '1.5s' },
    ['spec.rules[1].timeouts.request Invalid']],
  ['httpRoute', 'unknown fields are rejected', { 'spec.rules[0].backends': [] },
    ['spec.rules[0].backends Forbidden']],
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
  ['gateway', {}, 'spec.listeners[1].tls.mode', 'Terminate'],
  ['gateway', {}, 'spec.listeners[1].allowedRoutes.namespaces.from', 'Same'],
  ['gateway', {}, 'spec.listeners[1].tls.certificateRefs[0].kind', 'Secret'],
  ['httpRoute', {}, 'spec.parentRefs[0]', { name: 'example-gateway', group: 'gateway.networking.k8s.io', kind: 'Gateway' }],
  ['httpRoute', {}, 'spec.rules[0].matches[0].path', { type: 'PathPrefix', value: '/' }],
  ['httpRoute', {}, 'spec.rules[0].backendRefs[0]', { name: 'bar-svc-canary', port: 8080, group: '', kind: 'Service', weight: 1 }],
  ['httpRoute', { 'spec.rules': undefined }, 'spec.rules', [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }]],
];

describe('upstream defaults are applied', () => {
  for (const [example, changes, field, value] of defaults) {
    it(`${examples[example].kind} ${field}`, () => {
      const { object, errors } = admit(change(examples[example], changes));
      assert.deepEqual(errors, []);
      assert.deepEqual(get(object, field), value);
    });
  }
});
