// A pod's resolv.conf as kubelet writes it (src/agent/resolv-conf.ts): the
// ClusterFirst search path and ndots, the fallback to the node's file,
// dnsPolicy None, and dnsConfig merged over the policy's result.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import { formatResolvConf, parseResolvConf, podResolvConf } from '../../src/agent/resolv-conf.js';

const cluster = { clusterDns: ['10.96.0.10'], clusterDomain: 'cluster.local' };
const nodeFile = 'domain corp.example\nnameserver 192.0.2.53\noptions timeout:2\n';

function pod(spec: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: 'shop', name: 'web' },
    spec: { containers: [], ...spec },
  };
}

function text(p: KubeObject, settings = cluster): string | undefined {
  const conf = podResolvConf(p, settings, () => nodeFile);
  return conf && formatResolvConf(conf);
}

describe('podResolvConf', () => {
  it('ClusterFirst: the cluster server, the namespace search path and ndots:5', () => {
    const expected =
      'search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n';
    assert.equal(text(pod()), expected);
    assert.equal(text(pod({ dnsPolicy: 'ClusterFirstWithHostNet' })), expected);
  });

  it('follows the cluster domain', () => {
    assert.match(
      text(pod(), { clusterDns: ['10.96.0.10'], clusterDomain: 'corp.internal' }) ?? '',
      /^search shop\.svc\.corp\.internal svc\.corp\.internal corp\.internal$/m,
    );
  });

  it('Default, or ClusterFirst without a cluster server: the node’s own file (none written)', () => {
    assert.equal(text(pod({ dnsPolicy: 'Default' })), undefined);
    assert.equal(text(pod(), { clusterDns: [], clusterDomain: 'cluster.local' }), undefined);
  });

  it('None: only the pod’s dnsConfig', () => {
    const conf = text(
      pod({
        dnsPolicy: 'None',
        dnsConfig: {
          nameservers: ['10.0.0.53'],
          searches: ['a.example'],
          options: [{ name: 'ndots', value: '2' }, { name: 'edns0' }],
        },
      }),
    );
    assert.equal(conf, 'search a.example\nnameserver 10.0.0.53\noptions ndots:2 edns0\n');
  });

  it('merges dnsConfig: servers and searches appended once, options by name', () => {
    const conf = text(
      pod({
        dnsConfig: {
          nameservers: ['10.96.0.10', '10.0.0.53', '10.0.0.54', '10.0.0.55'],
          searches: ['svc.cluster.local', 'extra.example'],
          options: [{ name: 'ndots', value: '1' }, { name: 'single-request-reopen' }],
        },
      }),
    );
    assert.equal(
      conf,
      'search shop.svc.cluster.local svc.cluster.local cluster.local extra.example\n' +
        'nameserver 10.96.0.10\nnameserver 10.0.0.53\nnameserver 10.0.0.54\n' +
        'options ndots:1 single-request-reopen\n',
    );
  });

  it('Default with dnsConfig starts from the node’s file', () => {
    const conf = text(pod({ dnsPolicy: 'Default', dnsConfig: { searches: ['x.example'] } }));
    assert.equal(conf, 'search corp.example x.example\nnameserver 192.0.2.53\noptions timeout:2\n');
  });
});

describe('parseResolvConf', () => {
  it('reads servers, the last search or domain line, options, and skips comments', () => {
    assert.deepEqual(
      parseResolvConf(
        '# made by hand\nsearch a b\nnameserver 1.1.1.1 ; first\nnameserver ::1\noptions ndots:3 rotate\n',
      ),
      { nameservers: ['1.1.1.1', '::1'], searches: ['a', 'b'], options: ['ndots:3', 'rotate'] },
    );
  });
});
