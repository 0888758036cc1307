// The nftables ruleset compiled from the policy model for one node: its
// shape (docs/policy-enforcement.md section 7), its sets, and, as root, the
// kernel's acceptance of it inside a throwaway network namespace.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  compileGrantElements,
  compilePolicyRuleset,
  compilePolicyState,
  podCounterName,
  podObjectName,
  policyCounterName,
  renderPolicyChange,
  renderPolicyRuleset,
} from '../../src/policy/compile.js';
import { buildPolicyModel } from '../../src/policy/model.js';
import type { NetworkPolicy, PolicyPod } from '../../src/policy/types.js';

const T = 'inet strata_policy';

function pod(
  ns: string,
  name: string,
  ip: string,
  node: string,
  labels: Record<string, string> = {},
): PolicyPod {
  return {
    namespace: ns,
    name,
    labels: { pod: name, ...labels },
    ips: [ip],
    node,
    containerPorts: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

const pods = [
  pod('x', 'a', '10.1.0.2', 'n1'),
  pod('x', 'b', '10.1.0.3', 'n1'),
  pod('x', 'c', '10.1.1.2', 'n2'),
  pod('y', 'a', '10.1.0.4', 'n1'),
];
const namespaces = [
  { name: 'x', labels: {} },
  { name: 'y', labels: {} },
];
const nodes = [{ name: 'n1', ips: ['192.168.0.1'] }];

function policy(ns: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy {
  return { metadata: { namespace: ns, name }, spec };
}

const policies = [
  // x/a: ingress from x's pods b and c on TCP 80, and the named port http.
  policy('x', 'to-a', {
    podSelector: { matchLabels: { pod: 'a' } },
    ingress: [
      {
        from: [
          {
            podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] },
          },
        ],
        ports: [{ port: 80 }, { port: 'http' }],
      },
    ],
  }),
  // x/b and x/c: egress only to 10.0.0.0/8 except 10.1.1.0/24.
  policy('x', 'out', {
    podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] },
    policyTypes: ['Egress'],
    egress: [
      {
        to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.1.0/24'] } }],
        ports: [{ protocol: 'UDP', port: 53 }],
      },
    ],
  }),
];

const model = buildPolicyModel({ policies, pods, namespaces, nodes });
const script = compilePolicyRuleset(model, 'n1');
const lines = script.trimEnd().split('\n');

function elementsOf(target: string): string[] {
  return lines
    .filter((l) => l.startsWith(`add element ${T} ${target} {`))
    .flatMap((l) => l.slice(l.indexOf('{') + 2, -2).split(', '));
}

function rulesOf(chain: string): string[] {
  return lines
    .filter((l) => l.startsWith(`add rule ${T} ${chain} `))
    .map((l) => l.slice(`add rule ${T} ${chain} `.length));
}

function inNetns<R>(fn: (ns: string) => R): R {
  const ns = `strata-pol-${randomBytes(4).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    return fn(ns);
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

function nft(ns: string, args: string[], input: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, 'nft', ...args], { input, encoding: 'utf8' });
}

const root = process.getuid?.() === 0;

describe('compilePolicyRuleset', () => {
  it('hooks prerouting at dstnat + 10 and output at filter, accepting established flows first', () => {
    assert.ok(
      lines.includes(
        `add chain ${T} prerouting { type filter hook prerouting priority dstnat + 10; policy accept; }`,
      ),
    );
    assert.ok(
      lines.includes(
        `add chain ${T} output { type filter hook output priority filter; policy accept; }`,
      ),
    );
    assert.deepEqual(rulesOf('prerouting'), [
      'ct state established,related accept',
      'goto pod_policy',
    ]);
    assert.deepEqual(rulesOf('output'), [
      'ct state established,related accept',
      'fib saddr type local accept',
      'goto pod_policy',
    ]);
    // O(1) dispatch: the dispatch chain holds only map lookups, whatever the number of pods.
    assert.deepEqual(rulesOf('pod_policy'), [
      'ip saddr vmap @egress_pods_v4',
      'ip6 saddr vmap @egress_pods_v6',
      'ip daddr vmap @ingress_pods_v4',
      'ip6 daddr vmap @ingress_pods_v6',
    ]);
    assert.ok(!lines.some((l) => l.startsWith('delete table')));
  });

  it('keys the verdict maps by the isolated pods of this node only', () => {
    const a = podObjectName('x/a');
    const b = podObjectName('x/b');
    assert.deepEqual(elementsOf('ingress_pods_v4'), [`10.1.0.2 : goto ${a}_in`]);
    assert.deepEqual(elementsOf('egress_pods_v4'), [`10.1.0.3 : jump ${b}_eg`]); // x/c is on n2
    assert.deepEqual(elementsOf('ingress_pods_v6'), []);
  });

  it('fills each set with exactly the allowed peers, ports resolved per pod', () => {
    const a = podObjectName('x/a');
    const aRules = rulesOf(`${a}_in`);
    const aSet = /@(\S+)/.exec(aRules[1] ?? '')?.[1] ?? '';
    // b and c on TCP 80 and http (8080); y/a and a itself are not peers.
    assert.deepEqual(elementsOf(aSet), [
      '10.1.0.3 . tcp . 80',
      '10.1.0.3 . tcp . 8080',
      '10.1.1.2 . tcp . 80',
      '10.1.1.2 . tcp . 8080',
    ]);
    assert.deepEqual(aRules, [
      'ip saddr 10.1.0.2 accept',
      `ip saddr . meta l4proto . th dport @${aSet} accept`,
      `counter name ${policyCounterName('x/to-a', 'ingress')}`,
      `counter name ${podCounterName('x/a', 'ingress')} drop`,
    ]);
    const b = podObjectName('x/b');
    const bRules = rulesOf(`${b}_eg`);
    assert.deepEqual(bRules.slice(0, 2), [
      'ip daddr 10.1.0.3 return',
      'fib daddr type local return',
    ]);
    const bSet = /@(\S+)/.exec(bRules[2] ?? '')?.[1] ?? '';
    assert.deepEqual(elementsOf(bSet), [
      '10.0.0.0-10.1.0.255 . udp . 53',
      '10.1.2.0-10.255.255.255 . udp . 53',
    ]);
  });

  it('shares one set between pods granted the same rules', () => {
    const twin = pod('x', 'a2', '10.1.0.9', 'n1', { pod: 'a' });
    const shared = compilePolicyState(
      buildPolicyModel({ policies, pods: [...pods, twin], namespaces, nodes }),
      'n1',
    );
    const setOf = (key: string) =>
      /@(\S+)/.exec(shared.chains.get(`${podObjectName(key)}_in`)?.[1] ?? '')?.[1];
    assert.ok(setOf('x/a'));
    assert.equal(setOf('x/a'), setOf('x/a2'));
    assert.equal([...shared.sets.keys()].filter((n) => n.endsWith('_in_v4')).length, 1);
  });

  it('logs drops to NFLOG, rate-limited, with the pod in the prefix, for namespaces that ask', () => {
    assert.ok(!compilePolicyRuleset(model, 'n1', { logGroup: 7 }).includes(' log group '));
    const marked = namespaces.map((n) => (n.name === 'x' ? { ...n, logDrops: true } : n));
    const logged = compilePolicyRuleset(
      buildPolicyModel({ policies, pods, namespaces: marked, nodes }),
      'n1',
      { logGroup: 7 },
    );
    assert.ok(
      logged.includes(
        `add rule ${T} ${podObjectName('x/a')}_in limit rate 100/second burst 50 packets log group 7 prefix "ingress x/a"`,
      ),
    );
  });

  it('emits disjoint elements for overlapping rules', () => {
    const overlapping = buildPolicyModel({
      policies: [
        policy('x', 'wide', {
          podSelector: {},
          ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ port: 80 }] }],
        }),
        policy('x', 'pods', {
          podSelector: {},
          ingress: [
            {
              from: [{ podSelector: {} }],
              ports: [{ port: 80, endPort: 90 }, { protocol: 'UDP' }],
            },
          ],
        }),
        policy('x', 'all', {
          podSelector: { matchLabels: { pod: 'b' } },
          ingress: [{ from: [{ ipBlock: { cidr: '10.1.0.0/24' } }] }],
        }),
      ],
      pods,
      namespaces,
      nodes,
    });
    const grants = overlapping.pods.get('x/a')?.ingress.grants ?? [];
    const elements = compileGrantElements(grants, 4);
    const parsed = elements.map((e) => {
      const [addr = '', proto = '', port = ''] = e.split(' . ');
      const ip = (s: string) => s.split('.').reduce((n, p) => n * 256 + Number(p), 0);
      const [lo = '', hi = lo] = addr.includes('/')
        ? [addr.split('/')[0] ?? '', '']
        : addr.split('-');
      const low = ip(lo);
      const high = addr.includes('/') ? low + 2 ** (32 - Number(addr.split('/')[1])) - 1 : ip(hi);
      const [pf = '', pt = pf] = port.split('-');
      return { low, high, proto, pf: Number(pf), pt: Number(pt) };
    });
    for (const [i, p] of parsed.entries()) {
      for (const q of parsed.slice(i + 1)) {
        const overlap =
          p.low <= q.high && q.low <= p.high && p.proto === q.proto && p.pf <= q.pt && q.pf <= p.pt;
        assert.ok(!overlap, `${JSON.stringify(p)} overlaps ${JSON.stringify(q)}`);
      }
    }
    assert.deepEqual(elements, [
      '10.0.0.0-10.1.0.1 . tcp . 80',
      // x's pods a and b; y/a (10.1.0.4) is not in the policy's namespace.
      '10.1.0.2/31 . tcp . 80-90',
      '10.1.0.2/31 . udp . 0-65535',
      '10.1.0.4-10.1.1.1 . tcp . 80',
      '10.1.1.2 . tcp . 80-90',
      '10.1.1.2 . udp . 0-65535',
      '10.1.1.3-10.255.255.255 . tcp . 80',
    ]);
    const whole = compileGrantElements(overlapping.pods.get('x/b')?.ingress.grants ?? [], 4);
    assert.ok(whole.includes('10.1.0.0/24 . 0-255 . 0-65535'));
  });

  it('changes only what differs, and deletes what is no longer needed', () => {
    const before = compilePolicyState(model, 'n1');
    assert.equal(renderPolicyChange(before, compilePolicyState(model, 'n1')), '');
    // A new peer for x/a: one element more in its set, nothing else.
    const d = pod('x', 'd', '10.1.0.7', 'n1', { pod: 'b' });
    const grown = compilePolicyState(
      buildPolicyModel({ policies, pods: [...pods, d], namespaces, nodes }),
      'n1',
    );
    const delta = renderPolicyChange(before, grown).trimEnd().split('\n');
    assert.ok(
      delta.every((l) => !l.startsWith('flush') && !l.startsWith('delete')),
      delta.join('\n'),
    );
    assert.ok(
      delta.some((l) =>
        /^add element .* \{ 10\.1\.0\.7 \. tcp \. 80, 10\.1\.0\.7 \. tcp \. 8080 \}$/.test(l),
      ),
    );
    // x/b no longer isolated: its map entry, chain, set and counter go, in that order.
    const next = compilePolicyState(
      buildPolicyModel({ policies: policies.slice(0, 1), pods, namespaces, nodes }),
      'n1',
    );
    const update = renderPolicyChange(before, next).trimEnd().split('\n');
    const b = podObjectName('x/b');
    const at = (line: string) => update.indexOf(line);
    assert.ok(at(`delete element ${T} egress_pods_v4 { 10.1.0.3 }`) >= 0, update.join('\n'));
    assert.ok(
      at(`delete chain ${T} ${b}_eg`) > at(`delete element ${T} egress_pods_v4 { 10.1.0.3 }`),
    );
    assert.ok(update.some((l) => l.startsWith(`delete set ${T} g_`)));
    assert.ok(at(`delete counter ${T} ${podCounterName('x/b', 'egress')}`) >= 0);
    assert.ok(!update.some((l) => l.includes(`${podObjectName('x/a')}_in`)));
  });

  it(
    'is accepted by the kernel, reloads over what it finds and applies changes',
    { skip: !root && 'needs root for a network namespace' },
    () => {
      inNetns((ns) => {
        nft(ns, ['-c', '-f', '-'], script);
        nft(ns, ['-f', '-'], script);
        const state = compilePolicyState(model, 'n1');
        const found = {
          chains: [...state.chains.keys(), 'stale_chain'],
          sets: [...state.sets.keys()],
          counters: [...state.counters],
        };
        nft(ns, ['-f', '-'], `add chain ${T} stale_chain\n`);
        nft(ns, ['-f', '-'], renderPolicyRuleset(state, found));
        assert.ok(!nft(ns, ['list', 'table', T], '').includes('stale_chain'));
        const d = pod('x', 'd', '10.1.0.7', 'n1', { pod: 'b' });
        const grown = compilePolicyState(
          buildPolicyModel({ policies, pods: [...pods, d], namespaces, nodes }),
          'n1',
        );
        nft(ns, ['-f', '-'], renderPolicyChange(state, grown));
        const next = compilePolicyState(
          buildPolicyModel({
            policies: policies.slice(0, 1),
            pods: [...pods, d],
            namespaces,
            nodes,
          }),
          'n1',
        );
        nft(ns, ['-f', '-'], renderPolicyChange(grown, next));
        const listed = nft(ns, ['list', 'table', T], '');
        assert.ok(!listed.includes(`${podObjectName('x/b')}_eg`));
        assert.ok(listed.includes('10.1.0.7 . tcp . 8080'));
        assert.ok(listed.includes('10.1.1.2 . tcp . 8080'));
      });
    },
  );
});

describe('compile time', () => {
  it('compiles 1,000 policies over 1,000 pods in under a second', { skip: false }, () => {
    const manyPods: PolicyPod[] = [];
    for (let i = 0; i < 1000; i++) {
      manyPods.push(
        pod(
          'bench',
          `p${i}`,
          `10.2.${Math.floor(i / 250)}.${(i % 250) + 2}`,
          i % 2 === 0 ? 'n1' : 'n2',
          { app: `app${i % 50}` },
        ),
      );
    }
    const manyPolicies: NetworkPolicy[] = [];
    for (let i = 0; i < 1000; i++) {
      manyPolicies.push(
        policy('bench', `pol${i}`, {
          podSelector: { matchLabels: { pod: `p${i}` } },
          ingress: [
            {
              from: [{ podSelector: { matchLabels: { app: `app${(i + 1) % 50}` } } }],
              ports: [{ port: 80 }, { protocol: 'UDP', port: 5000, endPort: 5010 }],
            },
          ],
        }),
      );
    }
    const started = performance.now();
    const big = buildPolicyModel({
      policies: manyPolicies,
      pods: manyPods,
      namespaces: [{ name: 'bench', labels: {} }],
      nodes,
    });
    const built = performance.now();
    const text = compilePolicyRuleset(big, 'n1');
    const done = performance.now();
    console.log(
      `# 1,000 policies x 1,000 pods: model ${(built - started).toFixed(0)} ms, compile ${(done - built).toFixed(0)} ms, ${text.split('\n').length} lines`,
    );
    assert.ok(done - started < 1000);
    if (root) {
      inNetns((ns) => {
        const t0 = performance.now();
        nft(ns, ['-f', '-'], text);
        console.log(`# nft -f of that ruleset: ${(performance.now() - t0).toFixed(0)} ms`);
      });
    }
  });
});
