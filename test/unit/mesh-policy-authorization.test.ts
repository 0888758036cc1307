// AuthorizationPolicy at L4 as the destination's ztunnel evaluates it. Each
// row names the upstream rule it checks: the AuthorizationPolicy reference
// (istio.io/latest/docs/reference/config/security/authorization-policy/),
// the ambient L4 policy page (istio.io/latest/docs/ambient/usage/l4-policy/),
// istiod's conversion for ztunnel (pilot/pkg/serviceregistry/kube/controller/
// ambient/authorization.go, handleRule) and ztunnel's matcher (src/rbac.rs,
// whose own tests give the plaintext rows).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import type { SpiffeId } from '../../src/mesh/identity/spiffe.js';
import {
  type AuthorizationDecision,
  type AuthorizationWorkload,
  type MeshConnection,
  authorize,
  meshAuthorizationPolicy,
} from '../../src/mesh/policy/index.js';

function ap(name: string, spec: Record<string, unknown>, namespace = 'shop'): KubeObject {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace },
    spec,
  };
}

const web: AuthorizationWorkload = {
  namespace: 'shop',
  labels: { app: 'web' },
  serviceAccount: 'web',
};

const frontend: SpiffeId = {
  trustDomain: 'cluster.local',
  namespace: 'shop',
  serviceAccount: 'frontend',
};
const admin: SpiffeId = { trustDomain: 'cluster.local', namespace: 'ops', serviceAccount: 'admin' };
const plaintext = undefined;

function conn(
  identity: SpiffeId | undefined,
  more: Partial<Omit<MeshConnection, 'sourceIdentity'>> = {},
): MeshConnection {
  return {
    ...(identity ? { sourceIdentity: identity } : {}),
    sourceIp: '10.244.1.5',
    destinationIp: '10.244.2.7',
    destinationPort: 8080,
    ...more,
  };
}

const allowFrom = (source: Record<string, unknown>) => ({
  action: 'ALLOW',
  rules: [{ from: [{ source }] }],
});
const allowTo = (operation: Record<string, unknown>) => ({
  action: 'ALLOW',
  rules: [{ to: [{ operation }] }],
});
const allowWhen = (when: Record<string, unknown>[]) => ({ action: 'ALLOW', rules: [{ when }] });

interface Row {
  name: string;
  upstream: string;
  policies: KubeObject[];
  /** Connections and the verdict each gets: `allow`, `deny`, optionally `by ns/name#rule`. */
  cases: [MeshConnection, string][];
  workload?: AuthorizationWorkload;
  warning?: RegExp;
}

const rows: Row[] = [
  {
    name: 'no policy: allowed',
    upstream: 'reference: if there are no ALLOW policies for the workload, allow the request',
    policies: [],
    cases: [[conn(plaintext), 'allow']],
  },
  {
    name: 'allow-all: rules [{}]',
    upstream: 'reference: an empty rule is always matched (allow-all example)',
    policies: [ap('allow-all', { rules: [{}] })],
    cases: [
      [conn(plaintext), 'allow by shop/allow-all#0'],
      [conn(admin), 'allow by shop/allow-all#0'],
    ],
  },
  {
    name: 'deny-all: spec {}',
    upstream: 'reference: ALLOW without rules never matches, the deny-all example',
    policies: [ap('deny-all', {})],
    cases: [
      [conn(frontend), 'deny'],
      [conn(plaintext), 'deny'],
    ],
  },
  {
    name: 'an empty rules list matches nothing either',
    upstream: 'ztunnel rbac.rs: "empty rules" → no match',
    policies: [ap('empty', { rules: [] })],
    cases: [[conn(frontend), 'deny']],
  },
  {
    name: 'DENY is evaluated before ALLOW',
    upstream: 'reference: DENY policies are evaluated before ALLOW policies',
    policies: [
      ap('allow-all', { rules: [{}] }),
      ap('deny-ops', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['ops'] } }] }] }),
    ],
    cases: [
      [conn(admin), 'deny by shop/deny-ops#0'],
      [conn(frontend), 'allow by shop/allow-all#0'],
    ],
  },
  {
    name: 'ALLOW policies exist but none matches: denied',
    upstream: 'reference: ... if any of the ALLOW policies match, allow; otherwise deny',
    policies: [
      ap('frontend-only', allowFrom({ principals: ['cluster.local/ns/shop/sa/frontend'] })),
    ],
    cases: [
      [conn(frontend), 'allow by shop/frontend-only#0'],
      [conn(admin), 'deny'],
    ],
  },
  {
    name: 'the matching rule is named by its index',
    upstream: 'reference: a match occurs when at least one rule matches',
    policies: [
      ap('two-rules', {
        rules: [
          { from: [{ source: { namespaces: ['billing'] } }] },
          { from: [{ source: { namespaces: ['ops'] } }] },
        ],
      }),
    ],
    cases: [[conn(admin), 'allow by shop/two-rules#1']],
  },
  {
    name: 'principals: prefix wildcard',
    upstream: 'reference: prefix match "abc*"; istiod stringToMatch',
    policies: [ap('shop-ns', allowFrom({ principals: ['cluster.local/ns/shop/*'] }))],
    cases: [
      [conn(frontend), 'allow'],
      [conn(admin), 'deny'],
    ],
  },
  {
    name: 'principals: suffix wildcard',
    upstream: 'reference: suffix match "*abc"',
    policies: [ap('admins', allowFrom({ principals: ['*/sa/admin'] }))],
    cases: [
      [conn(admin), 'allow'],
      [conn(frontend), 'deny'],
    ],
  },
  {
    name: 'principals ["*"]: any authenticated peer, never plaintext',
    upstream: 'reference: presence match "*"; ztunnel matches_principal needs an identity',
    policies: [ap('any-mtls', allowFrom({ principals: ['*'] }))],
    cases: [
      [conn(frontend), 'allow'],
      [conn(plaintext), 'deny'],
    ],
  },
  {
    name: 'notPrincipals: plaintext has no principal, so it is not excluded',
    upstream: 'ztunnel rbac.rs test not_principals: plaintext => true',
    policies: [ap('not-admin', allowFrom({ notPrincipals: ['cluster.local/ns/ops/sa/admin'] }))],
    cases: [
      [conn(frontend), 'allow'],
      [conn(admin), 'deny'],
      [conn(plaintext), 'allow'],
    ],
  },
  {
    name: 'namespaces need mTLS: a plaintext source has no namespace',
    upstream: 'ztunnel rbac.rs test namespaces: plaintext => false',
    policies: [ap('from-ops', allowFrom({ namespaces: ['ops'] }))],
    cases: [
      [conn(admin), 'allow'],
      [conn(frontend), 'deny'],
      [conn(plaintext), 'deny'],
    ],
  },
  {
    name: 'notNamespaces holds for plaintext: a DENY on it refuses plaintext',
    upstream: 'ztunnel rbac.rs test not_namespaces: plaintext => true',
    policies: [
      ap('only-shop', {
        action: 'DENY',
        rules: [{ from: [{ source: { notNamespaces: ['shop'] } }] }],
      }),
    ],
    cases: [
      [conn(frontend), 'allow'],
      [conn(admin), 'deny by shop/only-shop#0'],
      [conn(plaintext), 'deny by shop/only-shop#0'],
    ],
  },
  {
    name: 'namespaces ["*"] is a presence match: not plaintext',
    upstream: 'istiod stringToMatch "*" → presence; ztunnel presence needs a non-empty value',
    policies: [ap('any-ns', allowFrom({ namespaces: ['*'] }))],
    cases: [
      [conn(admin), 'allow'],
      [conn(plaintext), 'deny'],
    ],
  },
  {
    name: 'serviceAccounts: "sa" is in the policy namespace, "ns/sa" anywhere',
    upstream: 'istiod stringToServiceAccountMatch; ztunnel ServiceAccountMatch',
    policies: [ap('sas', allowFrom({ serviceAccounts: ['frontend', 'ops/admin'] }))],
    cases: [
      [conn(frontend), 'allow'],
      [conn(admin), 'allow'],
      [conn({ ...admin, serviceAccount: 'other' }), 'deny'],
      [conn(plaintext), 'deny'],
    ],
  },
  {
    name: 'ipBlocks match the source address (CIDR or single address)',
    upstream: 'reference: ipBlocks are source IPs; istiod stringToIP',
    policies: [ap('pods', allowFrom({ ipBlocks: ['10.244.1.0/24', '192.168.7.7'] }))],
    cases: [
      [conn(plaintext), 'allow'],
      [conn(plaintext, { sourceIp: '192.168.7.7' }), 'allow'],
      [conn(plaintext, { sourceIp: '192.168.7.8' }), 'deny'],
      [conn(plaintext, { sourceIp: '10.244.3.9' }), 'deny'],
      [conn(plaintext, { sourceIp: 'fd00::5' }), 'deny'],
    ],
  },
  {
    name: 'notIpBlocks in a DENY: everything outside the block is refused',
    upstream: 'ztunnel matches_internal: negative list holds when no value matches',
    policies: [
      ap('outside', {
        action: 'DENY',
        rules: [{ from: [{ source: { notIpBlocks: ['10.244.0.0/16'] } }] }],
      }),
    ],
    cases: [
      [conn(plaintext), 'allow'],
      [conn(plaintext, { sourceIp: '172.16.0.1' }), 'deny by shop/outside#0'],
    ],
  },
  {
    name: 'ports and notPorts compare the destination port',
    upstream: 'reference: Operation ports/notPorts',
    policies: [
      ap('port-8080', allowTo({ ports: ['8080'] })),
      ap('not-9090', allowTo({ notPorts: ['9090', '8080'] })),
    ],
    cases: [
      [conn(plaintext), 'allow by shop/port-8080#0'],
      [conn(plaintext, { destinationPort: 9090 }), 'deny'],
      [conn(plaintext, { destinationPort: 7000 }), 'allow by shop/not-9090#0'],
    ],
  },
  {
    name: 'from and to must both hold',
    upstream: 'reference: a rule matches when all of from, to and when match',
    policies: [
      ap('both', {
        rules: [
          { from: [{ source: { namespaces: ['ops'] } }], to: [{ operation: { ports: ['9090'] } }] },
        ],
      }),
    ],
    cases: [
      [conn(admin, { destinationPort: 9090 }), 'allow'],
      [conn(admin), 'deny'],
      [conn(frontend, { destinationPort: 9090 }), 'deny'],
    ],
  },
  {
    name: 'any entry of from may match; fields of one source all must',
    upstream: 'reference: from entries are ORed, fields in a source are ANDed',
    policies: [
      ap('entries', {
        rules: [
          {
            from: [
              {
                source: {
                  principals: ['cluster.local/ns/shop/sa/frontend'],
                  ipBlocks: ['10.9.0.0/16'],
                },
              },
              { source: { namespaces: ['ops'] } },
            ],
          },
        ],
      }),
    ],
    cases: [
      [conn(admin), 'allow'],
      [conn(frontend), 'deny'],
      [conn(frontend, { sourceIp: '10.9.1.1' }), 'allow'],
    ],
  },
  {
    name: 'when on L4 keys: source.ip, source.namespace, source.principal',
    upstream: 'istiod l4WhenAttributes; reference Condition',
    policies: [
      ap(
        'when-src',
        allowWhen([
          { key: 'source.ip', values: ['10.244.1.0/24'] },
          { key: 'source.namespace', notValues: ['ops'] },
          { key: 'source.principal', values: ['cluster.local/ns/shop/*'] },
        ]),
      ),
    ],
    cases: [
      [conn(frontend), 'allow'],
      [conn(frontend, { sourceIp: '10.244.9.9' }), 'deny'],
      [conn(admin), 'deny'],
      [conn(plaintext), 'deny'],
    ],
  },
  {
    name: 'when on L4 keys: destination.ip and destination.port',
    upstream: 'istiod l4WhenAttributes; ztunnel destination_ips / destination_ports',
    policies: [
      ap(
        'when-dst',
        allowWhen([
          { key: 'destination.ip', values: ['10.244.2.0/24'] },
          { key: 'destination.port', values: ['8080', '8443'] },
        ]),
      ),
    ],
    cases: [
      [conn(plaintext), 'allow'],
      [conn(plaintext, { destinationPort: 8443 }), 'allow'],
      [conn(plaintext, { destinationPort: 9000 }), 'deny'],
      [conn(plaintext, { destinationIp: '10.244.3.7' }), 'deny'],
    ],
  },
  {
    name: 'ALLOW with HTTP operations: that rule is omitted, the others still count',
    upstream: 'istiod handleRule: "L7 policies never match for ALLOW"',
    policies: [
      ap('get-only', {
        rules: [
          {
            from: [{ source: { namespaces: ['shop'] } }],
            to: [{ operation: { methods: ['GET'] } }],
          },
          { from: [{ source: { namespaces: ['ops'] } }] },
        ],
      }),
    ],
    cases: [
      [conn(frontend), 'deny'],
      [conn(admin), 'allow by shop/get-only#1'],
    ],
    warning: /shop\/get-only \(ALLOW\) uses HTTP attributes .*found: methods.*rule 0 is omitted/,
  },
  {
    name: 'ALLOW with HTTP and L4 fields in one entry: the whole rule is omitted, not just the HTTP part',
    upstream: 'istiod handleRule: an ALLOW rule with HTTP attributes returns no rules at all',
    policies: [
      ap('get-8080', allowTo({ methods: ['GET'], ports: ['8080'] })),
      ap('jwt-shop', allowFrom({ requestPrincipals: ['*'], namespaces: ['shop'] })),
    ],
    cases: [
      [conn(frontend), 'deny'],
      [conn(admin), 'deny'],
    ],
    warning: /shop\/jwt-shop \(ALLOW\) uses HTTP attributes .*found: requestPrincipals/,
  },
  {
    name: 'ALLOW whose only rule is HTTP denies everything (fail closed)',
    upstream: 'l4-policy: an L7 policy without a waypoint makes ztunnel deny the connection',
    policies: [ap('paths', allowTo({ paths: ['/api/*'] }))],
    cases: [[conn(frontend), 'deny']],
    warning: /found: paths/,
  },
  {
    name: 'ALLOW with requestPrincipals, remoteIpBlocks or an HTTP when key: omitted',
    upstream: 'istiod httpSources and l4WhenAttributes: these are HTTP attributes for ztunnel',
    policies: [
      ap('jwt', allowFrom({ requestPrincipals: ['*'] })),
      ap('remote', allowFrom({ remoteIpBlocks: ['10.244.1.0/24'] })),
      ap('header', allowWhen([{ key: 'request.headers[x-user]', values: ['alice'] }])),
      ap('sni', allowWhen([{ key: 'connection.sni', values: ['web.shop'] }])),
    ],
    cases: [
      [conn(frontend), 'deny'],
      [conn(plaintext), 'deny'],
    ],
    warning: /found: request\.headers\[x-user\]/,
  },
  {
    name: 'DENY with HTTP and L4 fields in one entry: enforced without the HTTP part',
    upstream: 'istiod: "DENY policy with HTTP attributes is enforced without the HTTP rules"',
    policies: [
      ap('no-post', {
        action: 'DENY',
        rules: [{ to: [{ operation: { methods: ['POST'], ports: ['8080'] } }] }],
      }),
    ],
    cases: [
      [conn(frontend), 'deny by shop/no-post#0'],
      [conn(frontend, { destinationPort: 9090 }), 'allow'],
    ],
    warning: /rule 0 is enforced without them and denies more than written/,
  },
  {
    name: 'DENY with HTTP fields beside L4 fields in a source: the L4 part still denies',
    upstream: 'istiod handleRule keeps the L4 fields of a DENY source',
    policies: [
      ap('no-ops-jwt', {
        action: 'DENY',
        rules: [{ from: [{ source: { requestPrincipals: ['*'], namespaces: ['ops'] } }] }],
      }),
    ],
    cases: [
      [conn(admin), 'deny by shop/no-ops-jwt#0'],
      [conn(frontend), 'allow'],
    ],
  },
  {
    name: 'DENY with only HTTP attributes fails closed: it denies what its L4 part matches',
    upstream:
      'Istio docs: ztunnel fails closed on HTTP attributes; strata departs from istio/istio#61126 (empty matches skipped)',
    policies: [
      ap('deny-no-jwt', {
        action: 'DENY',
        rules: [{ from: [{ source: { notRequestPrincipals: ['*'] } }] }],
      }),
      ap('deny-header', {
        action: 'DENY',
        rules: [
          {
            from: [{ source: { namespaces: ['ops'] } }],
            when: [{ key: 'request.headers[x]', values: ['1'] }],
          },
        ],
      }),
    ],
    cases: [
      [conn(plaintext), 'deny by shop/deny-no-jwt#0'],
      // deny-header (sorted first) denies the ops source its L4 part names.
      [conn(admin), 'deny by shop/deny-header#0'],
    ],
    warning: /shop\/deny-no-jwt \(DENY\).*rule 0 has nothing left to match.*fail closed/,
  },
  {
    name: 'CUSTOM is not supported: deny, and say so',
    upstream:
      'reference: CUSTOM is evaluated first; istiod builder: an unusable provider gives a deny-all',
    policies: [
      ap('allow-all', { rules: [{}] }),
      ap('ext-authz', {
        action: 'CUSTOM',
        provider: { name: 'opa' },
        rules: [{ to: [{ operation: { paths: ['/admin'] } }] }],
      }),
    ],
    cases: [[conn(frontend), 'deny by shop/ext-authz']],
  },
  {
    name: 'AUDIT does not change the verdict',
    upstream: 'reference: AUDIT policies do not affect whether requests are allowed or denied',
    policies: [ap('audit-all', { action: 'AUDIT', rules: [{}] })],
    cases: [[conn(frontend), 'allow']],
  },
  {
    name: 'a mesh-wide policy in the root namespace applies to every namespace',
    upstream: 'l4-policy: a policy in the root namespace targets all namespaces',
    policies: [ap('mesh-ops-only', allowFrom({ namespaces: ['ops'] }), 'istio-system')],
    cases: [
      [conn(admin), 'allow by istio-system/mesh-ops-only#0'],
      [conn(frontend), 'deny'],
    ],
  },
  {
    name: 'a root-namespace selector selects workloads in any namespace',
    upstream:
      'istiod buildWorkloadPolicies: policy namespace is the root or the workload namespace',
    policies: [
      ap(
        'web-everywhere',
        { selector: { matchLabels: { app: 'web' } }, rules: [] },
        'istio-system',
      ),
    ],
    cases: [[conn(frontend), 'deny']],
  },
  {
    name: 'a policy in another namespace does not apply',
    upstream: 'l4-policy: otherwise a policy targets only its own namespace',
    policies: [ap('billing-deny-all', {}, 'billing')],
    cases: [[conn(frontend), 'allow']],
  },
  {
    name: 'a selector limits the policy to the workloads it selects',
    upstream: 'reference: selector matchLabels',
    policies: [
      ap('db-deny-all', { selector: { matchLabels: { app: 'db' } } }),
      ap('web-deny-all', { selector: { matchLabels: { app: 'web' } } }),
    ],
    cases: [[conn(frontend), 'deny']],
    workload: { namespace: 'shop', labels: { app: 'web' } },
  },
  {
    name: 'a selector that selects nothing here leaves the workload unrestricted',
    upstream: 'reference: selector matchLabels',
    policies: [ap('db-deny-all', { selector: { matchLabels: { app: 'db' } } })],
    cases: [[conn(frontend), 'allow']],
  },
  {
    name: 'a selector without matchLabels attaches to no workload',
    upstream: 'istiod buildWorkloadPolicies keeps only policies with a non-nil label selector',
    policies: [ap('odd', { selector: {} })],
    cases: [[conn(frontend), 'allow']],
    warning: /shop\/odd has a selector without matchLabels/,
  },
  {
    name: 'a targetRefs policy is for a waypoint: ztunnel does not enforce it',
    upstream: 'istiod convertAuthorizationPolicy: "TargetRef is not intended for ztunnel"',
    policies: [ap('waypoint-deny', { targetRefs: [{ kind: 'Service', group: '', name: 'web' }] })],
    cases: [[conn(frontend), 'allow']],
  },
];

/** `allow`, `deny`, or either with ` by ns/name#rule` (`#rule` absent for CUSTOM). */
function summary(d: AuthorizationDecision, withBy: boolean): string {
  if (!withBy) return d.verdict;
  if (!('decidedBy' in d)) return d.verdict;
  const by = d.decidedBy;
  const rule = 'ruleIndex' in by ? `#${by.ruleIndex}` : '';
  return `${d.verdict} by ${by.namespace}/${by.name}${rule}`;
}

describe('AuthorizationPolicy at L4 (ztunnel)', () => {
  for (const row of rows) {
    it(`${row.name} [${row.upstream}]`, () => {
      const policies = row.policies.map(meshAuthorizationPolicy);
      for (const [connection, expected] of row.cases) {
        const decision = authorize(row.workload ?? web, connection, policies);
        const who = connection.sourceIdentity?.serviceAccount ?? 'plaintext';
        assert.equal(
          summary(decision, expected.includes(' by ')),
          expected,
          `${who} from ${connection.sourceIp} to port ${connection.destinationPort}`,
        );
        if (row.warning) assert.match(decision.warnings.join('\n'), row.warning);
      }
    });
  }

  it('the reasons tell the cases apart', () => {
    const none = authorize(web, conn(frontend), []);
    assert.equal(none.reason, 'no-allow-policy');
    const denyAll = authorize(web, conn(frontend), [meshAuthorizationPolicy(ap('deny-all', {}))]);
    assert.equal(denyAll.reason, 'no-allow-rule-matched');
    assert.ok(denyAll.reason === 'no-allow-rule-matched');
    assert.deepEqual(denyAll.allowPolicies, [
      { namespace: 'shop', name: 'deny-all', action: 'ALLOW' },
    ]);
  });

  it('CUSTOM: the decision carries the unsupported message', () => {
    const decision = authorize(web, conn(frontend), [
      meshAuthorizationPolicy(
        ap('ext-authz', { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{}] }),
      ),
    ]);
    assert.equal(decision.reason, 'custom-unsupported');
    assert.ok(decision.reason === 'custom-unsupported');
    assert.match(decision.unsupported, /CUSTOM action \(provider opa\).*not support/);
    assert.deepEqual(decision.decidedBy, {
      namespace: 'shop',
      name: 'ext-authz',
      action: 'CUSTOM',
    });
  });

  it('AUDIT matches are recorded', () => {
    const policies = [
      ap('audit-ops', {
        action: 'AUDIT',
        rules: [{ from: [{ source: { namespaces: ['ops'] } }] }],
      }),
      ap('allow-all', { rules: [{}] }),
    ].map(meshAuthorizationPolicy);
    const fromOps = authorize(web, conn(admin), policies);
    assert.equal(fromOps.verdict, 'allow');
    assert.deepEqual(fromOps.audited, [
      { namespace: 'shop', name: 'audit-ops', action: 'AUDIT', ruleIndex: 0 },
    ]);
    assert.deepEqual(authorize(web, conn(frontend), policies).audited, []);
  });

  it('targetRefs policies are listed as not enforced, narrowed by the Services given', () => {
    const policies = [
      ap('svc-web', { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], rules: [] }),
      ap('svc-db', { targetRef: { kind: 'Service', name: 'db' }, rules: [] }),
    ].map(meshAuthorizationPolicy);
    const all = authorize(web, conn(frontend), policies);
    assert.deepEqual(
      all.notEnforced.map((p) => p.name),
      ['svc-db', 'svc-web'],
    );
    const narrowed = authorize({ ...web, services: ['web'] }, conn(frontend), policies);
    assert.deepEqual(
      narrowed.notEnforced.map((p) => p.name),
      ['svc-web'],
    );
    assert.equal(narrowed.verdict, 'allow');
  });

  it('uses the configured root namespace', () => {
    const policies = [meshAuthorizationPolicy(ap('deny-all', {}, 'mesh-root'))];
    assert.equal(authorize(web, conn(frontend), policies).verdict, 'allow');
    assert.equal(
      authorize(web, conn(frontend), policies, { rootNamespace: 'mesh-root' }).verdict,
      'deny',
    );
  });
});
