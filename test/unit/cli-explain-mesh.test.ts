// `strata explain`'s mesh layer (src/mesh/decide.ts through src/cli/explain.ts):
// both identities, the mTLS mode in force, and the L4 AuthorizationPolicy verdict
// with the deciding policy, next to NetworkPolicy's; the overall verdict denies
// when either layer denies (the layered model of issue 6). From literal API
// objects: no cluster.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import {
  type ClusterObjects,
  explainConnection,
  explainText,
  parseExplainQuery,
} from '../../src/cli/explain.js';

const lines = (...rows: string[]): string => rows.map((row) => `${row}\n`).join('');

function namespace(name: string, labels: Record<string, string> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

function pod(key: string, ip: string, node: string, serviceAccount = 'default'): KubeObject {
  const [ns = '', name = ''] = key.split('/');
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: ns, name, labels: { app: name } },
    spec: { nodeName: node, serviceAccountName: serviceAccount, containers: [] },
    status: { phase: 'Running', podIPs: [{ ip }] },
  };
}

function security(kind: string, key: string, spec: Record<string, unknown>): KubeObject {
  const [ns = '', name = ''] = key.split('/');
  return {
    apiVersion: 'security.istio.io/v1',
    kind,
    metadata: { namespace: ns, name, creationTimestamp: '2026-11-21T10:00:00Z' },
    spec,
  };
}

const ambient = { 'istio.io/dataplane-mode': 'ambient' };

function cluster(extra: Partial<ClusterObjects> = {}): ClusterObjects {
  return {
    namespaces: [namespace('shop', ambient), namespace('ops', ambient), namespace('legacy')],
    nodes: [],
    pods: [
      pod('shop/web', '10.244.1.5', 'n1', 'web'),
      pod('shop/db', '10.244.2.7', 'n2', 'db'),
      pod('ops/admin', '10.244.1.9', 'n1', 'admin'),
      pod('legacy/old', '10.244.2.9', 'n2'),
    ],
    policies: [],
    ...extra,
  };
}

function report(
  objects: ClusterObjects,
  from: string,
  to: string,
): { text: string; verdict: string } {
  const explanation = explainConnection(objects, parseExplainQuery([from, to], 'default'));
  return { text: explainText(explanation), verdict: explanation.decision.verdict };
}

const networkPolicyAllows = ['', 'NetworkPolicy (kernel, nftables):'];

describe('explain: the mesh layer', () => {
  it('both ends in the mesh, no policy: both identities, HBONE, PERMISSIVE by default, allowed', () => {
    const { text, verdict } = report(cluster(), 'shop/web', 'shop/db:5432');
    assert.equal(verdict, 'allow');
    assert.ok(text.includes(networkPolicyAllows.join('\n')));
    assert.match(
      text,
      new RegExp(
        lines(
          'Mesh \\(ambient, L4 node proxies\\):',
          '  shop/web: +spiffe://cluster\\.local/ns/shop/sa/web — .*ambient.*',
          '  shop/db: +spiffe://cluster\\.local/ns/shop/sa/db — .*',
          '  transport: +HBONE: HTTP/2 CONNECT over mutual TLS between the node proxies \\(port 15008\\)',
          '  mTLS at port 5432: +PERMISSIVE \\(no PeerAuthentication applies: the default; plaintext accepted\\)',
          '  authorization: +allowed — no ALLOW or DENY AuthorizationPolicy matches it',
        ),
      ),
    );
  });

  it('STRICT refuses a source outside the mesh, while NetworkPolicy allows: DENIED', () => {
    const objects = cluster({
      peerAuthentications: [
        security('PeerAuthentication', 'shop/strict', { mtls: { mode: 'STRICT' } }),
      ],
    });
    const { text, verdict } = report(objects, 'legacy/old', 'shop/db:5432');
    assert.equal(verdict, 'deny');
    assert.match(text, /^legacy\/old .* TCP\/5432: DENIED$/m);
    assert.match(text, / {2}legacy\/old: +outside the mesh — /);
    assert.match(
      text,
      / {2}mTLS at port 5432: +STRICT \(PeerAuthentication shop\/strict, namespace level; plaintext refused\)/,
    );
    assert.match(text, /verdict: +denied — legacy\/old is outside the mesh .* STRICT refuses/);
    // Under PERMISSIVE the same plaintext connection is accepted.
    assert.equal(report(cluster(), 'legacy/old', 'shop/db:5432').verdict, 'allow');
  });

  it('AuthorizationPolicy: allowed by principal, denied with the policies that apply, by port', () => {
    const objects = cluster({
      authorizationPolicies: [
        security('AuthorizationPolicy', 'shop/db-from-web', {
          selector: { matchLabels: { app: 'db' } },
          action: 'ALLOW',
          rules: [
            {
              from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }],
              to: [{ operation: { ports: ['5432'] } }],
            },
          ],
        }),
      ],
    });
    const allowed = report(objects, 'shop/web', 'shop/db:5432');
    assert.equal(allowed.verdict, 'allow');
    assert.match(
      allowed.text,
      /authorization: +allowed by AuthorizationPolicy shop\/db-from-web rules\[0\]/,
    );
    const otherPrincipal = report(objects, 'ops/admin', 'shop/db:5432');
    assert.equal(otherPrincipal.verdict, 'deny');
    assert.match(
      otherPrincipal.text,
      /authorization: +denied — ALLOW policies apply \(shop\/db-from-web\) and none of their rules matches/,
    );
    assert.equal(report(objects, 'shop/web', 'shop/db:9000').verdict, 'deny');
  });

  it('a NetworkPolicy deny still denies inside the mesh (layered)', () => {
    const objects = cluster({
      policies: [
        {
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { namespace: 'shop', name: 'deny-all' },
          spec: { podSelector: {}, policyTypes: ['Ingress'] },
        },
      ],
    });
    const { text, verdict } = report(objects, 'shop/web', 'shop/db:5432');
    assert.equal(verdict, 'deny');
    assert.match(
      text,
      /ingress to shop\/db: +denied — shop\/db is isolated for ingress by shop\/deny-all/,
    );
    assert.match(text, /authorization: +allowed — no ALLOW or DENY AuthorizationPolicy matches it/);
  });

  it('between two pods in the mesh, NetworkPolicy also judges the tunnel on TCP/15008', () => {
    const allowDbFromWeb = (ports: number[]): KubeObject => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { namespace: 'shop', name: 'db-from-web' },
      spec: {
        podSelector: { matchLabels: { app: 'db' } },
        policyTypes: ['Ingress'],
        ingress: [
          {
            from: [{ podSelector: { matchLabels: { app: 'web' } } }],
            ports: ports.map((port) => ({ protocol: 'TCP', port })),
          },
        ],
      },
    });
    // Only the application's port: the kernel drops the tunnel, so the mesh denies it.
    const onlyApp = report(
      cluster({ policies: [allowDbFromWeb([5432])] }),
      'shop/web',
      'shop/db:5432',
    );
    assert.equal(onlyApp.verdict, 'deny');
    assert.match(onlyApp.text, /ingress to shop\/db: +allowed by shop\/db-from-web ingress\[0\]/);
    assert.match(
      onlyApp.text,
      new RegExp(
        lines(
          'NetworkPolicy on the mesh tunnel \\(kernel, nftables; TCP/15008 pod to pod\\):',
          '  egress  from shop/web: +allowed — shop/web is not isolated for egress .*',
          '  ingress to shop/db: +denied — shop/db is isolated for ingress by shop/db-from-web; no rule allows TCP/15008 from shop/web',
          '  hint: in ambient mode the mesh carries the connection over TCP/15008; .*',
        ),
      ),
    );
    // With 15008 beside it, as Istio asks: allowed, by the same rule.
    const both = report(
      cluster({ policies: [allowDbFromWeb([5432, 15008])] }),
      'shop/web',
      'shop/db:5432',
    );
    assert.equal(both.verdict, 'allow');
    assert.doesNotMatch(both.text, /hint:/);
    // A source outside the mesh arrives in plaintext: no tunnel, no such layer.
    const plain = report(cluster(), 'legacy/old', 'shop/db:5432');
    assert.doesNotMatch(plain.text, /mesh tunnel/);
  });

  it('a DENY policy names itself; the mesh says nothing when neither end is in it, and UDP passes it by', () => {
    const objects = cluster({
      authorizationPolicies: [
        security('AuthorizationPolicy', 'shop/no-ops', {
          action: 'DENY',
          rules: [{ from: [{ source: { namespaces: ['ops'] } }] }],
        }),
      ],
    });
    assert.match(
      report(objects, 'ops/admin', 'shop/web:80').text,
      /authorization: +denied by AuthorizationPolicy shop\/no-ops rules\[0\] \(DENY\)/,
    );
    const outside = cluster({
      namespaces: [namespace('shop'), namespace('ops'), namespace('legacy')],
    });
    assert.doesNotMatch(report(outside, 'shop/web', 'shop/db:5432').text, /Mesh/);
    assert.match(
      report(objects, 'ops/admin', 'shop/web:53/udp').text,
      /verdict: +allowed — the mesh carries TCP only; UDP passes it by/,
    );
  });
});
