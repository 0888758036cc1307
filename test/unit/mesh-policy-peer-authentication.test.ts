// PeerAuthentication's effective mode for a workload and port. Rows cite the
// upstream rule: the security concepts page (istio.io/latest/docs/concepts/
// security/#peer-authentication), istiod's ambient conversion
// (pilot/pkg/serviceregistry/kube/controller/ambient/authorization.go) and the
// ambient L4 policy page (istio.io/latest/docs/ambient/usage/l4-policy/).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import {
  type EffectiveMtlsMode,
  type MtlsSource,
  effectiveMtls,
  meshPeerAuthentication,
} from '../../src/mesh/policy/index.js';

interface PolicySpec {
  ns: string;
  name: string;
  created?: string;
  selector?: Record<string, string>;
  mode?: string;
  ports?: Record<string, string>;
}

function peerAuthentication(p: PolicySpec): KubeObject {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: {
      name: p.name,
      namespace: p.ns,
      ...(p.created ? { creationTimestamp: p.created } : {}),
    },
    spec: {
      ...(p.selector ? { selector: { matchLabels: p.selector } } : {}),
      ...(p.mode ? { mtls: { mode: p.mode } } : {}),
      ...(p.ports
        ? {
            portLevelMtls: Object.fromEntries(
              Object.entries(p.ports).map(([port, mode]) => [port, { mode }]),
            ),
          }
        : {}),
    },
  };
}

const workload = { namespace: 'shop', labels: { app: 'web', version: 'v1' } };
const web = { app: 'web' };

interface Row {
  name: string;
  upstream: string;
  policies: PolicySpec[];
  port?: number;
  expect: { mode: EffectiveMtlsMode; source: MtlsSource; acceptsPlaintext: boolean };
}

const rows: Row[] = [
  {
    name: 'no policy: PERMISSIVE by default',
    upstream: 'concepts/security: the default mode is PERMISSIVE',
    policies: [],
    expect: { mode: 'PERMISSIVE', source: 'default', acceptsPlaintext: true },
  },
  {
    name: 'a mesh-wide STRICT policy in the root namespace applies everywhere',
    upstream: 'concepts/security: mesh-wide policy in the root namespace, no selector',
    policies: [{ ns: 'istio-system', name: 'default', mode: 'STRICT' }],
    expect: {
      mode: 'STRICT',
      source: { level: 'mesh', namespace: 'istio-system', name: 'default' },
      acceptsPlaintext: false,
    },
  },
  {
    name: 'a namespace policy overrides the mesh policy',
    upstream: 'concepts/security: namespace-wide policy takes precedence over mesh-wide',
    policies: [
      { ns: 'istio-system', name: 'default', mode: 'STRICT' },
      { ns: 'shop', name: 'relaxed', mode: 'PERMISSIVE' },
    ],
    expect: {
      mode: 'PERMISSIVE',
      source: { level: 'namespace', namespace: 'shop', name: 'relaxed' },
      acceptsPlaintext: true,
    },
  },
  {
    name: "another namespace's policy does not apply",
    upstream: 'concepts/security: a namespace policy applies to its own namespace',
    policies: [{ ns: 'billing', name: 'strict', mode: 'STRICT' }],
    expect: { mode: 'PERMISSIVE', source: 'default', acceptsPlaintext: true },
  },
  {
    name: 'a workload policy overrides the namespace policy',
    upstream: 'concepts/security: workload-specific policy takes precedence',
    policies: [
      { ns: 'shop', name: 'ns', mode: 'PERMISSIVE' },
      { ns: 'shop', name: 'web', selector: web, mode: 'STRICT' },
    ],
    expect: {
      mode: 'STRICT',
      source: { level: 'workload', namespace: 'shop', name: 'web' },
      acceptsPlaintext: false,
    },
  },
  {
    name: 'a workload policy that does not select the pod does not apply',
    upstream: 'concepts/security: selector matchLabels must match the workload',
    policies: [{ ns: 'shop', name: 'db', selector: { app: 'db' }, mode: 'STRICT' }],
    expect: { mode: 'PERMISSIVE', source: 'default', acceptsPlaintext: true },
  },
  {
    name: 'UNSET at namespace level inherits the mesh mode',
    upstream:
      'istiod ambient: "Process in mesh, namespace, workload order to resolve inheritance (UNSET)"',
    policies: [
      { ns: 'istio-system', name: 'default', mode: 'STRICT' },
      { ns: 'shop', name: 'ns', mode: 'UNSET' },
    ],
    expect: {
      mode: 'STRICT',
      source: { level: 'mesh', namespace: 'istio-system', name: 'default' },
      acceptsPlaintext: false,
    },
  },
  {
    name: 'a workload policy without mtls inherits the namespace mode',
    upstream: 'concepts/security: UNSET inherits from the parent',
    policies: [
      { ns: 'shop', name: 'ns', mode: 'STRICT' },
      { ns: 'shop', name: 'web', selector: web },
    ],
    expect: {
      mode: 'STRICT',
      source: { level: 'namespace', namespace: 'shop', name: 'ns' },
      acceptsPlaintext: false,
    },
  },
  {
    name: 'portLevelMtls sets the mode of the workload port it names',
    upstream: 'concepts/security: port-level mTLS on a workload policy',
    policies: [
      { ns: 'istio-system', name: 'default', mode: 'STRICT' },
      { ns: 'shop', name: 'web', selector: web, ports: { '8080': 'PERMISSIVE' } },
    ],
    port: 8080,
    expect: {
      mode: 'PERMISSIVE',
      source: { level: 'workload', namespace: 'shop', name: 'web', port: 8080 },
      acceptsPlaintext: true,
    },
  },
  {
    name: 'other ports keep the inherited mode',
    upstream: 'istiod ambient: ports not listed follow the workload mode',
    policies: [
      { ns: 'istio-system', name: 'default', mode: 'STRICT' },
      { ns: 'shop', name: 'web', selector: web, ports: { '8080': 'PERMISSIVE' } },
    ],
    port: 9090,
    expect: {
      mode: 'STRICT',
      source: { level: 'mesh', namespace: 'istio-system', name: 'default' },
      acceptsPlaintext: false,
    },
  },
  {
    name: 'a STRICT port under a PERMISSIVE workload policy',
    upstream: 'istiod ambient convertPeerAuthentication: a STRICT port gets its own deny rule',
    policies: [
      { ns: 'shop', name: 'web', selector: web, mode: 'PERMISSIVE', ports: { '5432': 'STRICT' } },
    ],
    port: 5432,
    expect: {
      mode: 'STRICT',
      source: { level: 'workload', namespace: 'shop', name: 'web', port: 5432 },
      acceptsPlaintext: false,
    },
  },
  {
    name: 'an UNSET port inherits the workload mode',
    upstream: 'istiod ambient convertPeerAuthentication: UNSET ports are skipped',
    policies: [
      { ns: 'shop', name: 'web', selector: web, mode: 'STRICT', ports: { '8080': 'UNSET' } },
    ],
    port: 8080,
    expect: {
      mode: 'STRICT',
      source: { level: 'workload', namespace: 'shop', name: 'web' },
      acceptsPlaintext: false,
    },
  },
  {
    name: 'portLevelMtls on a namespace policy is ignored',
    upstream: 'ValidatePeerAuthentication: mesh/namespace policy cannot have port level mTLS',
    policies: [{ ns: 'shop', name: 'ns', mode: 'STRICT', ports: { '8080': 'PERMISSIVE' } }],
    port: 8080,
    expect: {
      mode: 'STRICT',
      source: { level: 'namespace', namespace: 'shop', name: 'ns' },
      acceptsPlaintext: false,
    },
  },
  {
    name: 'among namespace policies the oldest wins',
    upstream: 'istiod getOldestPeerAuthn / sortConfigByCreationTime',
    policies: [
      { ns: 'shop', name: 'newer', mode: 'PERMISSIVE', created: '2025-02-01T00:00:00Z' },
      { ns: 'shop', name: 'older', mode: 'STRICT', created: '2025-01-01T00:00:00Z' },
    ],
    expect: {
      mode: 'STRICT',
      source: { level: 'namespace', namespace: 'shop', name: 'older' },
      acceptsPlaintext: false,
    },
  },
  {
    name: 'same creation time: the name decides',
    upstream: 'sortConfigByCreationTime: then by name, then namespace',
    policies: [
      { ns: 'shop', name: 'b', mode: 'PERMISSIVE', created: '2025-01-01T00:00:00Z' },
      { ns: 'shop', name: 'a', mode: 'STRICT', created: '2025-01-01T00:00:00Z' },
    ],
    expect: {
      mode: 'STRICT',
      source: { level: 'namespace', namespace: 'shop', name: 'a' },
      acceptsPlaintext: false,
    },
  },
  {
    name: 'among workload policies the oldest wins',
    upstream: 'istiod convertedSelectorPeerAuthentications: oldest workload policy',
    policies: [
      {
        ns: 'shop',
        name: 'web-v1',
        selector: { version: 'v1' },
        mode: 'STRICT',
        created: '2025-03-01T00:00:00Z',
      },
      {
        ns: 'shop',
        name: 'web',
        selector: web,
        mode: 'PERMISSIVE',
        created: '2025-01-01T00:00:00Z',
      },
    ],
    expect: {
      mode: 'PERMISSIVE',
      source: { level: 'workload', namespace: 'shop', name: 'web' },
      acceptsPlaintext: true,
    },
  },
  {
    name: 'a selector policy in the root namespace is not mesh-wide',
    upstream: 'istiod ambient: workload policies in the root namespace are skipped',
    policies: [{ ns: 'istio-system', name: 'web', selector: web, mode: 'STRICT' }],
    expect: { mode: 'PERMISSIVE', source: 'default', acceptsPlaintext: true },
  },
  {
    name: 'DISABLE is reported as written and accepts plaintext like PERMISSIVE',
    upstream: 'l4-policy: "it is not possible to use the DISABLE mode"; istiod: not STRICT',
    policies: [
      { ns: 'istio-system', name: 'default', mode: 'STRICT' },
      { ns: 'shop', name: 'off', mode: 'DISABLE' },
    ],
    expect: {
      mode: 'DISABLE',
      source: { level: 'namespace', namespace: 'shop', name: 'off' },
      acceptsPlaintext: true,
    },
  },
];

describe('PeerAuthentication effective mode', () => {
  for (const row of rows) {
    it(`${row.name} [${row.upstream}]`, () => {
      const result = effectiveMtls(
        workload,
        row.port,
        row.policies.map((p) => meshPeerAuthentication(peerAuthentication(p))),
      );
      assert.deepEqual(
        { mode: result.mode, source: result.source, acceptsPlaintext: result.acceptsPlaintext },
        row.expect,
      );
    });
  }

  it('uses the configured root namespace', () => {
    const policies = [
      meshPeerAuthentication(
        peerAuthentication({ ns: 'mesh-root', name: 'default', mode: 'STRICT' }),
      ),
    ];
    assert.equal(effectiveMtls(workload, undefined, policies).mode, 'PERMISSIVE');
    assert.equal(
      effectiveMtls(workload, undefined, policies, { rootNamespace: 'mesh-root' }).mode,
      'STRICT',
    );
  });

  it('warns when DISABLE is in force and when a root-namespace selector is skipped', () => {
    const disabled = effectiveMtls(workload, undefined, [
      meshPeerAuthentication(peerAuthentication({ ns: 'shop', name: 'off', mode: 'DISABLE' })),
    ]);
    assert.match(disabled.warnings.join('\n'), /shop\/off sets DISABLE.*acts as PERMISSIVE/);
    const rootWorkload = { namespace: 'istio-system', labels: { app: 'web' } };
    const skipped = effectiveMtls(rootWorkload, undefined, [
      meshPeerAuthentication(
        peerAuthentication({ ns: 'istio-system', name: 'web', selector: web, mode: 'STRICT' }),
      ),
    ]);
    assert.equal(skipped.mode, 'PERMISSIVE');
    assert.match(
      skipped.warnings.join('\n'),
      /istio-system\/web selects workloads in the root namespace/,
    );
  });
});
