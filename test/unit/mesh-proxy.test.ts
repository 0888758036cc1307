// The node proxy's pure parts: the workload index (src/mesh/proxy/workloads.ts)
// and the capture table's compilation (src/mesh/proxy/capture.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import {
  compileCapture,
  policyRoutingCommands,
  renderCapture,
  renderCaptureChange,
} from '../../src/mesh/proxy/capture.js';
import type { CertificateManager } from '../../src/mesh/certificates/manager.js';
import type { WorkloadCertificates } from '../../src/mesh/proxy/proxy.js';
import { WorkloadIndex } from '../../src/mesh/proxy/workloads.js';

function pod(
  namespace: string,
  name: string,
  ip: string,
  options: { node?: string; sa?: string; labels?: Record<string, string>; phase?: string } = {},
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace, name, labels: options.labels ?? { app: name } },
    spec: { nodeName: options.node ?? 'n1', serviceAccountName: options.sa ?? name },
    status: {
      podIP: ip,
      podIPs: [{ ip }],
      hostIP: '192.168.0.1',
      phase: options.phase ?? 'Running',
    },
  };
}

function namespace(name: string, labels: Record<string, string> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

const ambient = { 'istio.io/dataplane-mode': 'ambient' };

describe('WorkloadIndex', () => {
  it('indexes pods by address with identity, node and enrollment', () => {
    const index = WorkloadIndex.from({
      namespaces: [namespace('mesh', ambient), namespace('plain')],
      pods: [
        pod('mesh', 'a', '10.0.0.2'),
        pod('mesh', 'b', '10.0.0.3', { node: 'n2' }),
        pod('plain', 'c', '10.0.0.4'),
      ],
    });
    const a = index.byIp('10.0.0.2');
    assert.equal(a?.enrolled, true);
    assert.deepEqual(a?.identity, {
      trustDomain: 'cluster.local',
      namespace: 'mesh',
      serviceAccount: 'a',
    });
    assert.equal(a?.hostIP, '192.168.0.1');
    assert.equal(a?.telemetry.workload, 'a');
    assert.equal(index.byIp('10.0.0.4')?.enrolled, false);
    assert.deepEqual(
      index.enrolledOn('n1').map((w) => w.ip),
      ['10.0.0.2'],
    );
  });

  it('follows namespace and pod changes: enrolling, opting out, deleting, finishing', () => {
    const index = WorkloadIndex.from({
      namespaces: [namespace('ns')],
      pods: [pod('ns', 'a', '10.0.0.2'), pod('ns', 'b', '10.0.0.3')],
    });
    assert.equal(index.enrolledOn('n1').length, 0);
    const before = index.generation;
    index.upsertNamespace(namespace('ns', ambient));
    assert.ok(index.generation > before);
    assert.equal(index.enrolledOn('n1').length, 2);
    index.upsertPod(pod('ns', 'b', '10.0.0.3', { labels: { 'istio.io/dataplane-mode': 'none' } }));
    assert.deepEqual(
      index.enrolledOn('n1').map((w) => w.name),
      ['a'],
    );
    index.upsertPod(pod('ns', 'a', '10.0.0.2', { phase: 'Succeeded' }));
    assert.equal(index.byIp('10.0.0.2'), undefined);
    index.deletePod('ns/b');
    assert.equal(index.byIp('10.0.0.3'), undefined);
    // An address reused by a new pod belongs to it.
    index.upsertPod(pod('ns', 'd', '10.0.0.2'));
    assert.equal(index.byIp('10.0.0.2')?.name, 'd');
  });

  it('keeps policies reduced for the proxy', () => {
    const index = WorkloadIndex.from({
      peerAuthentications: [
        {
          apiVersion: 'security.istio.io/v1',
          kind: 'PeerAuthentication',
          metadata: { namespace: 'ns', name: 'strict' },
          spec: { mtls: { mode: 'STRICT' } },
        },
      ],
    });
    assert.equal(index.peerAuthentications()[0]?.mtls, 'STRICT');
    index.deletePeerAuthentication('ns/strict');
    assert.equal(index.peerAuthentications().length, 0);
  });
});

describe('compileCapture', () => {
  it('compiles the node table', () => {
    const state = compileCapture({ enrolled: ['10.0.0.2', '10.0.0.3', 'fd00::2'] });
    const text = renderCapture(state);
    assert.match(text, /^add table inet strata_mesh\ndelete table inet strata_mesh\n/);
    assert.match(text, /add element inet strata_mesh enrolled_v4 \{ 10\.0\.0\.2, 10\.0\.0\.3 \}/);
    assert.match(text, /add element inet strata_mesh enrolled_v6 \{ fd00::2 \}/);
    const pre = state.chains.get('prerouting');
    assert.equal(pre?.hook, 'type filter hook prerouting priority dstnat + 15; policy accept;');
    assert.deepEqual(pre?.rules.slice(0, 4), [
      'ct mark 0x539 ct direction reply meta mark set 0x111 accept',
      // The proxy's own tunnel to a pod of this node, from a pod's address: to the HBONE server, not 15001.
      'ct mark 0x539 ip daddr @enrolled_v4 tcp dport 15008 tproxy ip to :15008 meta mark set 0x111 accept',
      'ct mark 0x539 ip6 daddr @enrolled_v6 tcp dport 15008 tproxy ip6 to :15008 meta mark set 0x111 accept',
      'meta l4proto tcp ip saddr @enrolled_v4 fib daddr type != local tproxy ip to :15001 meta mark set 0x111 accept',
    ]);
    // 15008 before the catch-all 15006.
    const hbone = pre?.rules.findIndex((r) =>
      r.startsWith('ip daddr @enrolled_v4 tcp dport 15008'),
    );
    const plain = pre?.rules.findIndex((r) => r.includes('tproxy ip to :15006'));
    assert.ok(hbone !== undefined && plain !== undefined && hbone >= 0 && hbone < plain);
    assert.deepEqual(state.chains.get('output')?.rules, [
      'ct mark 0x539 ct direction reply meta mark set 0x111 accept',
      'meta mark 0x539 ip daddr @enrolled_v4 tcp dport 15008 ct mark set 0x539 meta mark set 0x111 accept',
      'meta mark 0x539 ip6 daddr @enrolled_v6 tcp dport 15008 ct mark set 0x539 meta mark set 0x111 accept',
      'meta mark 0x539 ct mark set 0x539 accept',
      'ip daddr @enrolled_v4 tcp dport 15008 meta mark set 0x111',
      'ip6 daddr @enrolled_v6 tcp dport 15008 meta mark set 0x111',
    ]);
    assert.match(state.chains.get('output')?.hook ?? '', /^type route hook output/);
  });

  it('enrolling and un-enrolling a pod is a set element change', () => {
    const before = compileCapture({ enrolled: ['10.0.0.2'] });
    const next = compileCapture({ enrolled: ['10.0.0.3'] });
    assert.equal(
      renderCaptureChange(before, next),
      'delete element inet strata_mesh enrolled_v4 { 10.0.0.2 }\n' +
        'add element inet strata_mesh enrolled_v4 { 10.0.0.3 }\n',
    );
    assert.equal(renderCaptureChange(next, compileCapture({ enrolled: ['10.0.0.3'] })), '');
  });

  it('rejects what is not an address', () => {
    assert.throws(() => compileCapture({ enrolled: ['pod-a'] }), TypeError);
  });

  it('names the policy routing', () => {
    assert.deepEqual(policyRoutingCommands([4]), [
      ['-4', 'route', 'replace', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '133'],
      ['-4', 'rule', 'add', 'pref', '133', 'fwmark', '0x111', 'lookup', '133'],
    ]);
  });
});

describe('WorkloadCertificates', () => {
  it('is what CertificateManager offers (checked by the compiler)', () => {
    const fits = (manager: CertificateManager): WorkloadCertificates => manager;
    assert.equal(typeof fits, 'function');
  });
});
