// Ambient enrollment: which pods the node proxy captures. Each row names the
// upstream rule it follows: istio-cni's PodRedirectionEnabled
// (cni/pkg/util/podutil.go), the "Pod selection logic" section of
// istio.io/latest/docs/ambient/usage/add-workloads/, the istio-cni chart's
// excludeNamespaces default, and the sidecar injector's documented policy.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import {
  type Enrollment,
  type EnrollmentOptions,
  isEnrolled,
  meshNamespace,
  meshPod,
} from '../../src/mesh/policy/index.js';

function pod(
  labels: Record<string, string> = {},
  annotations: Record<string, string> = {},
  spec: Record<string, unknown> = {},
  namespace = 'shop',
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-1', namespace, labels, annotations },
    spec: { containers: [{ name: 'web', image: 'web' }], ...spec },
  };
}

function namespace(labels: Record<string, string> = {}, name = 'shop'): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

const ambient = { 'istio.io/dataplane-mode': 'ambient' };
const none = { 'istio.io/dataplane-mode': 'none' };

interface Row {
  name: string;
  upstream: string;
  pod: KubeObject;
  namespace?: KubeObject;
  options?: EnrollmentOptions;
  expect:
    | { enrolled: true; via: Extract<Enrollment, { enrolled: true }>['via'] }
    | { enrolled: false; why: Extract<Enrollment, { enrolled: false }>['why'] };
}

const rows: Row[] = [
  {
    name: 'a pod in a namespace labelled ambient is enrolled',
    upstream: 'add-workloads: the namespace or pod has istio.io/dataplane-mode=ambient',
    pod: pod(),
    namespace: namespace(ambient),
    expect: { enrolled: true, via: 'namespace-label' },
  },
  {
    name: 'a pod in an unlabelled namespace is not',
    upstream: 'PodRedirectionEnabled: neither namespace nor pod has ambient mode enabled',
    pod: pod(),
    namespace: namespace(),
    expect: { enrolled: false, why: 'not-labelled' },
  },
  {
    name: 'the pod label alone enrolls a pod in an unlabelled namespace',
    upstream:
      'PodRedirectionEnabled accepts the pod label; label reference: "latter has precedence"',
    pod: pod(ambient),
    namespace: namespace(),
    expect: { enrolled: true, via: 'pod-label' },
  },
  {
    name: 'the pod label enrolls a pod even in a namespace labelled none',
    upstream: 'istio-cni enablementSelectors: podSelector istio.io/dataplane-mode=ambient alone',
    pod: pod(ambient),
    namespace: namespace(none),
    expect: { enrolled: true, via: 'pod-label' },
  },
  {
    name: 'a namespace labelled none enrolls nobody',
    upstream: 'only the value ambient enables capture',
    pod: pod(),
    namespace: namespace(none),
    expect: { enrolled: false, why: 'not-labelled' },
  },
  {
    name: 'the pod label none opts a pod out of an ambient namespace',
    upstream: 'add-workloads: the pod does not have the opt-out label istio.io/dataplane-mode=none',
    pod: pod(none),
    namespace: namespace(ambient),
    expect: { enrolled: false, why: 'opted-out' },
  },
  {
    name: 'a pod with a sidecar (sidecar.istio.io/status) is not captured',
    upstream: 'add-workloads: the annotation sidecar.istio.io/status is not present on the pod',
    pod: pod({}, { 'sidecar.istio.io/status': '{"containers":["istio-proxy"]}' }),
    namespace: namespace(ambient),
    expect: { enrolled: false, why: 'sidecar' },
  },
  {
    name: 'a pod asking for a sidecar by label is not captured',
    upstream: 'sidecar-injection: pod label sidecar.istio.io/inject="true" enables injection',
    pod: pod({ 'sidecar.istio.io/inject': 'true' }),
    namespace: namespace(ambient),
    expect: { enrolled: false, why: 'sidecar' },
  },
  {
    name: 'the legacy annotation sidecar.istio.io/inject=true asks for one too',
    upstream:
      'sidecar-injection: "If a pod is annotated with sidecar.istio.io/inject: true/false then it will be honored"',
    pod: pod({}, { 'sidecar.istio.io/inject': 'true' }),
    namespace: namespace(ambient),
    expect: { enrolled: false, why: 'sidecar' },
  },
  {
    name: 'a namespace with istio-injection=enabled gives its pods sidecars, which win',
    upstream: 'add-workloads: "the sidecar mode currently takes precedence"',
    pod: pod(),
    namespace: namespace({ ...ambient, 'istio-injection': 'enabled' }),
    expect: { enrolled: false, why: 'sidecar' },
  },
  {
    name: 'a pod opting out of injection stays in ambient',
    upstream: 'sidecar-injection: "If either label is disabled, the pod is not injected"',
    pod: pod({ 'sidecar.istio.io/inject': 'false' }),
    namespace: namespace({ ...ambient, 'istio-injection': 'enabled' }),
    expect: { enrolled: true, via: 'namespace-label' },
  },
  {
    name: 'istio-injection=disabled overrides a pod asking for a sidecar',
    upstream: 'sidecar-injection: "If either label is disabled, the pod is not injected"',
    pod: pod({ 'sidecar.istio.io/inject': 'true' }),
    namespace: namespace({ ...ambient, 'istio-injection': 'disabled' }),
    expect: { enrolled: true, via: 'namespace-label' },
  },
  {
    name: 'the pod label beats the legacy annotation',
    upstream: 'injector: "The label is the new API; if both are present we prefer the label"',
    pod: pod({ 'sidecar.istio.io/inject': 'false' }, { 'sidecar.istio.io/inject': 'true' }),
    namespace: namespace(ambient),
    expect: { enrolled: true, via: 'namespace-label' },
  },
  {
    name: 'istio.io/rev on an ambient namespace picks a control plane, not a sidecar',
    upstream: 'ambient/upgrade/helm: ambient namespaces use the istio.io/rev label',
    pod: pod(),
    namespace: namespace({ ...ambient, 'istio.io/rev': 'stable' }),
    expect: { enrolled: true, via: 'namespace-label' },
  },
  {
    name: 'hostNetwork pods are never captured',
    upstream: 'PodRedirectionEnabled: host network pods cannot be captured',
    pod: pod({}, {}, { hostNetwork: true }),
    namespace: namespace(ambient),
    expect: { enrolled: false, why: 'host-network' },
  },
  {
    name: 'a hostNetwork pod asking for a sidecar is reported as hostNetwork (no injection there)',
    upstream: 'injectRequired: skip injection when host networking is enabled',
    pod: pod({ 'sidecar.istio.io/inject': 'true' }, {}, { hostNetwork: true }),
    namespace: namespace(ambient),
    expect: { enrolled: false, why: 'host-network' },
  },
  {
    name: 'kube-system is excluded by default',
    upstream: 'istio-cni chart values: excludeNamespaces [kube-system]',
    pod: pod(ambient, {}, {}, 'kube-system'),
    namespace: namespace(ambient, 'kube-system'),
    expect: { enrolled: false, why: 'excluded-namespace' },
  },
  {
    name: 'the exclude list is configurable',
    upstream: 'istio-cni excludeNamespaces is a chart value',
    pod: pod(),
    namespace: namespace(ambient),
    options: { excludeNamespaces: ['shop'] },
    expect: { enrolled: false, why: 'excluded-namespace' },
  },
  {
    name: 'an unknown namespace counts as unlabelled',
    upstream: 'a namespace without labels does not enable capture',
    pod: pod(),
    expect: { enrolled: false, why: 'not-labelled' },
  },
];

describe('mesh enrollment (istio-cni PodRedirectionEnabled)', () => {
  for (const row of rows) {
    it(`${row.name} [${row.upstream}]`, () => {
      const result = isEnrolled(
        meshPod(row.pod),
        row.namespace ? meshNamespace(row.namespace) : undefined,
        row.options,
      );
      const { reason, ...rest } = result;
      assert.deepEqual(rest, row.expect);
      assert.match(reason, /\S/);
    });
  }

  it('says in its reason which switch decided', () => {
    const optOut = isEnrolled(meshPod(pod(none)), meshNamespace(namespace(ambient)));
    assert.match(optOut.reason, /istio\.io\/dataplane-mode=none/);
    const sidecar = isEnrolled(
      meshPod(pod({ 'sidecar.istio.io/inject': 'true' })),
      meshNamespace(namespace(ambient)),
    );
    assert.match(sidecar.reason, /label sidecar\.istio\.io\/inject=true/);
    assert.match(sidecar.reason, /strata has no sidecar mode yet/);
  });
});
