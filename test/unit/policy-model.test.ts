// The NetworkPolicy model as a reachability truth table, built the way
// upstream's e2e suite (test/e2e/network/netpol) builds it: namespaces x, y, z
// × pods a, b, c labelled pod=<name>, each serving TCP 80, 81 and UDP 80, 81
// on named container ports serve-<port>-<protocol>. For every case the
// expected matrix comes from `reference` below, a direct reading of the
// upstream API reference written apart from src/policy/model.ts, and is
// compared with decide() for every ordered pair and port.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../src/policy/decide.js';
import { buildPolicyModel } from '../../src/policy/model.js';
import type {
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  PolicyNamespace,
  PolicyPod,
  Protocol,
} from '../../src/policy/types.js';

interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

interface World {
  namespaces: PolicyNamespace[];
  pods: PolicyPod[];
  policies: NetworkPolicy[];
}

const nodes = [
  { name: 'n1', ips: ['192.168.0.1'] },
  { name: 'n2', ips: ['192.168.0.2'] },
];
const probes: [Protocol, number][] = [
  ['TCP', 80],
  ['TCP', 81],
  ['UDP', 80],
  ['UDP', 81],
];

function makePod(ns: string, nsIndex: number, name: string, index: number): PolicyPod {
  return {
    namespace: ns,
    name,
    labels: { pod: name },
    ips: [`10.1.${nsIndex}.${index + 2}`],
    node: index % 2 === 0 ? 'n1' : 'n2',
    containerPorts: probes.map(([protocol, port]) => ({
      name: `serve-${port}-${protocol.toLowerCase()}`,
      port,
      protocol,
    })),
  };
}

function world(policies: NetworkPolicy[]): World {
  const names = ['x', 'y', 'z'];
  return {
    namespaces: names.map((n) => ({ name: n, labels: { ns: n } })),
    pods: names.flatMap((ns, i) => ['a', 'b', 'c'].map((p, j) => makePod(ns, i, p, j))),
    policies,
  };
}

// ---- The reference: upstream's rules, read directly --------------------------

function selects(selector: Selector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {}))
    if (labels[k] !== v) return false;
  return (selector.matchExpressions ?? []).every((e) => {
    const has = k(labels, e.key);
    switch (e.operator) {
      case 'In':
        return has && (e.values ?? []).includes(labels[e.key] ?? '');
      case 'NotIn':
        return !has || !(e.values ?? []).includes(labels[e.key] ?? '');
      case 'Exists':
        return has;
      default:
        return !has;
    }
  });
}

function k(labels: Record<string, string>, key: string): boolean {
  return Object.hasOwn(labels, key);
}

function ipNumber(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function inCidr(cidr: string, ip: string): boolean {
  const [base = '', bits = '0'] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipNumber(ip) / size) === Math.floor(ipNumber(base) / size);
}

function policyTypes(p: NetworkPolicy): string[] {
  if (p.spec.policyTypes?.length) return p.spec.policyTypes;
  return p.spec.egress?.length ? ['Ingress', 'Egress'] : ['Ingress'];
}

/** NetworkPolicyPeer: ipBlock by address; otherwise namespace (selected or the policy's) AND pod selector. */
function peerMatches(
  w: World,
  peer: NetworkPolicyPeer,
  policyNs: string,
  other: PolicyPod,
): boolean {
  const ip = other.ips[0] ?? '';
  if (peer.ipBlock) {
    return inCidr(peer.ipBlock.cidr, ip) && !(peer.ipBlock.except ?? []).some((e) => inCidr(e, ip));
  }
  const nsLabels = w.namespaces.find((n) => n.name === other.namespace)?.labels ?? {};
  const nsOk = peer.namespaceSelector
    ? selects(peer.namespaceSelector, nsLabels)
    : other.namespace === policyNs;
  return nsOk && (!peer.podSelector || selects(peer.podSelector, other.labels));
}

/** NetworkPolicyPort: protocol (TCP by default), then a number, a range, or a name on the destination pod. */
function portMatches(
  ports: NetworkPolicyPort[] | undefined,
  proto: Protocol,
  port: number,
  dst: PolicyPod,
): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => {
    if ((p.protocol ?? 'TCP') !== proto) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'number') return port >= p.port && port <= (p.endPort ?? p.port);
    return dst.containerPorts.some(
      (c) => c.name === p.port && c.port === port && c.protocol === proto,
    );
  });
}

function reference(
  w: World,
  src: PolicyPod,
  dst: PolicyPod,
  proto: Protocol,
  port: number,
): boolean {
  if (src === dst) return true; // a pod cannot block traffic to itself
  const side = (type: 'Ingress' | 'Egress', target: PolicyPod, other: PolicyPod): boolean => {
    const selecting = w.policies.filter(
      (p) =>
        p.metadata.namespace === target.namespace &&
        selects(p.spec.podSelector, target.labels) &&
        policyTypes(p).includes(type),
    );
    if (selecting.length === 0) return true; // not isolated
    return selecting.some((p) =>
      (type === 'Ingress'
        ? (p.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }))
        : (p.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }))
      ).some(
        (r) =>
          (!r.peers?.length ||
            r.peers.some((peer) => peerMatches(w, peer, target.namespace, other))) &&
          portMatches(r.ports, proto, port, dst),
      ),
    );
  };
  return side('Egress', src, dst) && side('Ingress', dst, src);
}

// ---- The table --------------------------------------------------------------

type Matrix = Map<string, boolean>;

function matrices(w: World): { expected: Matrix; actual: Matrix } {
  const model = buildPolicyModel({ ...w, nodes });
  const expected: Matrix = new Map();
  const actual: Matrix = new Map();
  for (const src of w.pods) {
    for (const dst of w.pods) {
      for (const [proto, port] of probes) {
        const id = `${src.namespace}/${src.name} -> ${dst.namespace}/${dst.name} ${proto}/${port}`;
        expected.set(id, reference(w, src, dst, proto, port));
        const d = decide(
          model,
          { pod: `${src.namespace}/${src.name}` },
          { pod: `${dst.namespace}/${dst.name}` },
          proto,
          port,
        );
        actual.set(id, d.verdict === 'allow');
      }
    }
  }
  return { expected, actual };
}

function diff(expected: Matrix, actual: Matrix): string[] {
  return [...expected]
    .filter(([id, v]) => actual.get(id) !== v)
    .map(([id, v]) => `${id}: expected ${v ? 'allow' : 'deny'}`);
}

function policy(ns: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy {
  return { metadata: { namespace: ns, name }, spec };
}

const toA = { matchLabels: { pod: 'a' } };

interface Case {
  name: string;
  /** The upstream rule the case exercises. */
  rule: string;
  policies: NetworkPolicy[];
  /** A change made after the first matrix; the matrix must change with it. */
  change?: (w: World) => void;
  /** Hand-checked probes: `from to PROTOCOL/port allow|deny`. */
  spot: string[];
}

const cases: Case[] = [
  {
    name: 'default deny ingress',
    rule: 'podSelector {} with policyTypes [Ingress] and no rules isolates every pod of the namespace for ingress',
    policies: [policy('x', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] })],
    spot: ['y/a x/a TCP/80 deny', 'x/a y/a TCP/80 allow', 'x/b x/a UDP/81 deny'],
  },
  {
    name: 'default deny egress',
    rule: 'policyTypes [Egress] without egress rules isolates for egress only',
    policies: [policy('x', 'deny-out', { podSelector: {}, policyTypes: ['Egress'] })],
    spot: ['x/a y/a TCP/80 deny', 'y/a x/a TCP/80 allow', 'x/a x/b UDP/80 deny'],
  },
  {
    name: 'deny all',
    rule: 'both policyTypes, no rules',
    policies: [policy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })],
    spot: ['x/a y/a TCP/80 deny', 'y/a x/a TCP/80 deny', 'x/a x/a TCP/80 allow'],
  },
  {
    name: 'allow all',
    rule: 'an ingress rule with neither from nor ports allows every peer on every port',
    policies: [
      policy('x', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] }),
      policy('x', 'allow-all', { podSelector: {}, ingress: [{}] }),
    ],
    spot: ['z/c x/a UDP/81 allow'],
  },
  {
    name: 'pod selector',
    rule: 'a podSelector peer alone selects pods in the policy namespace',
    policies: [
      policy('x', 'from-b', {
        podSelector: toA,
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
    ],
    spot: ['x/b x/a TCP/80 allow', 'y/b x/a TCP/80 deny', 'x/c x/a TCP/80 deny'],
  },
  {
    name: 'namespace selector',
    rule: 'a namespaceSelector peer alone selects every pod of matching namespaces',
    policies: [
      policy('x', 'from-y', {
        podSelector: toA,
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
      }),
    ],
    spot: ['y/c x/a UDP/80 allow', 'x/b x/a TCP/80 deny'],
  },
  {
    name: 'pod and namespace selector in one peer (AND)',
    rule: 'podSelector and namespaceSelector in the same peer must both match',
    policies: [
      policy('x', 'and', {
        podSelector: toA,
        ingress: [
          {
            from: [
              {
                namespaceSelector: { matchLabels: { ns: 'y' } },
                podSelector: { matchLabels: { pod: 'b' } },
              },
            ],
          },
        ],
      }),
    ],
    spot: ['y/b x/a TCP/80 allow', 'y/a x/a TCP/80 deny', 'x/b x/a TCP/80 deny'],
  },
  {
    name: 'pod and namespace selector as two peers (OR)',
    rule: 'separate peers are alternatives',
    policies: [
      policy('x', 'or', {
        podSelector: toA,
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { ns: 'y' } } },
              { podSelector: { matchLabels: { pod: 'b' } } },
            ],
          },
        ],
      }),
    ],
    spot: ['y/a x/a TCP/80 allow', 'x/b x/a TCP/80 allow', 'z/b x/a TCP/80 deny'],
  },
  {
    name: 'matchExpressions',
    rule: 'In, NotIn, Exists and DoesNotExist',
    policies: [
      policy('x', 'expr', {
        podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['a', 'b'] }] },
        ingress: [
          {
            from: [
              {
                namespaceSelector: {
                  matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }],
                },
                podSelector: {
                  matchExpressions: [
                    { key: 'pod', operator: 'Exists' },
                    { key: 'team', operator: 'DoesNotExist' },
                  ],
                },
              },
            ],
          },
        ],
      }),
    ],
    spot: ['y/c x/b TCP/81 allow', 'x/c x/a TCP/80 deny', 'x/a x/c TCP/80 allow'],
  },
  {
    name: 'named ports',
    rule: 'a named port resolves against the destination pod; a name it lacks matches nothing',
    policies: [
      policy('x', 'named-in', {
        podSelector: toA,
        ingress: [{ ports: [{ protocol: 'UDP', port: 'serve-81-udp' }, { port: 'serve-99-tcp' }] }],
      }),
      policy('y', 'named-out', {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [{ ports: [{ port: 'serve-80-tcp' }] }],
      }),
    ],
    spot: [
      'z/a x/a UDP/81 allow',
      'z/a x/a TCP/81 deny',
      'y/a z/a TCP/80 allow',
      'y/a z/a TCP/81 deny',
    ],
  },
  {
    name: 'endPort',
    rule: 'port with endPort is an inclusive range',
    policies: [
      policy('x', 'range', {
        podSelector: toA,
        ingress: [
          {
            ports: [
              { protocol: 'TCP', port: 79, endPort: 80 },
              { protocol: 'UDP', port: 81, endPort: 90 },
            ],
          },
        ],
      }),
    ],
    spot: [
      'y/a x/a TCP/80 allow',
      'y/a x/a TCP/81 deny',
      'y/a x/a UDP/81 allow',
      'y/a x/a UDP/80 deny',
    ],
  },
  {
    name: 'ipBlock with except',
    rule: 'ipBlock matches any address in cidr but not in except, pod addresses included',
    policies: [
      policy('x', 'block', {
        podSelector: toA,
        ingress: [
          { from: [{ ipBlock: { cidr: '10.1.0.0/16', except: ['10.1.1.0/24', '10.1.2.4/32'] } }] },
        ],
      }),
      policy('z', 'block-out', {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: '10.1.0.0/24', except: ['10.1.0.2/32'] } }] }],
      }),
    ],
    spot: [
      'z/a x/a TCP/80 deny',
      'y/a x/a TCP/80 deny',
      'z/c x/a TCP/80 deny',
      'x/b x/a TCP/80 allow',
      'z/b x/b TCP/80 allow',
      'z/a x/c UDP/81 allow',
    ],
  },
  {
    name: 'stacked policies',
    rule: 'policies are additive: the union of every selecting policy',
    policies: [
      policy('x', 'one', {
        podSelector: toA,
        ingress: [
          { from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80 }] },
        ],
      }),
      policy('x', 'two', {
        podSelector: {},
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }],
            ports: [{ protocol: 'UDP', port: 81 }],
          },
        ],
      }),
    ],
    spot: [
      'x/b x/a TCP/80 allow',
      'x/b x/a UDP/81 deny',
      'z/c x/a UDP/81 allow',
      'z/c x/b UDP/81 allow',
    ],
  },
  {
    name: 'egress deny overriding an allowing ingress',
    rule: "both the source's egress and the destination's ingress must allow",
    policies: [
      policy('x', 'allow-in', { podSelector: {}, ingress: [{}] }),
      policy('y', 'deny-out', { podSelector: {}, policyTypes: ['Egress'] }),
    ],
    spot: ['y/a x/a TCP/80 deny', 'z/a x/a TCP/80 allow'],
  },
  {
    name: 'protocol-only rules',
    rule: 'a port with a protocol and no number allows every port of that protocol only',
    policies: [
      policy('x', 'udp-only', { podSelector: toA, ingress: [{ ports: [{ protocol: 'UDP' }] }] }),
    ],
    spot: ['y/a x/a UDP/80 allow', 'y/a x/a TCP/80 deny'],
  },
  {
    name: 'policy update',
    rule: 'a changed policy replaces the old one',
    policies: [
      policy('x', 'p', {
        podSelector: toA,
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
    ],
    change: (w) => {
      w.policies = [
        policy('x', 'p', {
          podSelector: toA,
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'c' } } }] }],
        }),
      ];
    },
    spot: ['x/c x/a TCP/80 allow', 'x/b x/a TCP/80 deny'],
  },
  {
    name: 'policy delete',
    rule: 'with no policy selecting it, a pod is not isolated',
    policies: [policy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })],
    change: (w) => {
      w.policies = [];
    },
    spot: ['y/a x/a TCP/80 allow'],
  },
  {
    name: 'pod relabel',
    rule: 'selectors follow the current labels',
    policies: [
      policy('x', 'from-b', {
        podSelector: toA,
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
    ],
    change: (w) => {
      const c = w.pods.find((p) => p.namespace === 'x' && p.name === 'c');
      if (c) c.labels = { pod: 'b' };
    },
    spot: ['x/c x/a TCP/80 allow'],
  },
  {
    name: 'namespace relabel',
    rule: 'namespaceSelectors follow the current namespace labels',
    policies: [
      policy('x', 'from-blue', {
        podSelector: toA,
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }],
      }),
    ],
    change: (w) => {
      const z = w.namespaces.find((n) => n.name === 'z');
      if (z) z.labels = { ns: 'z', team: 'blue' };
    },
    spot: ['z/b x/a TCP/81 allow', 'y/b x/a TCP/81 deny'],
  },
  {
    name: 'a pod created after the policy',
    rule: 'a new pod matching podSelector is isolated like the others',
    policies: [policy('x', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] })],
    change: (w) => {
      w.pods.push(makePod('x', 0, 'd', 3));
    },
    spot: ['y/a x/d TCP/80 deny', 'x/d y/a TCP/80 allow'],
  },
];

function run(w: World): Matrix {
  const { expected, actual } = matrices(w);
  assert.deepEqual(diff(expected, actual), []);
  return expected;
}

describe('NetworkPolicy truth table', () => {
  for (const c of cases) {
    it(`${c.name}: ${c.rule}`, () => {
      const w = world(structuredClone(c.policies));
      const before = run(w);
      if (c.change) {
        c.change(w);
        const after = run(w);
        assert.ok(
          diff(before, after).length > 0 || after.size !== before.size,
          'the change changes the matrix',
        );
      }
      const model = buildPolicyModel({ ...w, nodes });
      for (const probe of c.spot) {
        const [from = '', to = '', service = '', verdict] = probe.split(' ');
        const [proto, port] = service.split('/') as [Protocol, string];
        const d = decide(model, { pod: from }, { pod: to }, proto, Number(port));
        assert.equal(d.verdict, verdict, probe);
      }
      const denied = [...run(w).values()].filter((v) => !v).length;
      if (c.name === 'allow all' || c.name === 'policy delete') assert.equal(denied, 0);
      else assert.ok(denied > 0, 'the case denies something');
    });
  }
});

describe('decide', () => {
  const base = world([
    policy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    policy('y', 'web', {
      podSelector: toA,
      ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 80 }] }],
    }),
  ]);
  const model = buildPolicyModel({ ...base, nodes });

  it('names the deciding policy and rule on each side', () => {
    const d = decide(model, { pod: 'z/a' }, { pod: 'y/a' }, 'TCP', 80);
    assert.equal(d.verdict, 'allow');
    assert.deepEqual(d.egress, { result: 'allow', reason: 'not-isolated' });
    assert.deepEqual(d.ingress, {
      result: 'allow',
      reason: 'rules',
      by: [{ policy: 'y/web', rule: 0 }],
    });
    assert.deepEqual(d.layers, [
      { layer: 'networkpolicy', verdict: 'allow', egress: d.egress, ingress: d.ingress },
    ]);
  });

  it('names the isolating policies when nothing allows', () => {
    const d = decide(model, { pod: 'x/a' }, { pod: 'y/a' }, 'TCP', 80);
    assert.equal(d.verdict, 'deny');
    assert.deepEqual(d.egress, {
      result: 'deny',
      reason: 'no-rule-allows',
      isolatedBy: ['x/deny-all'],
    });
  });

  // Upstream: traffic to and from the node a pod runs on is always allowed.
  it("lets the pod's own node in, but not another node", () => {
    assert.deepEqual(decide(model, { ip: '192.168.0.1' }, { pod: 'x/a' }, 'TCP', 81).ingress, {
      result: 'allow',
      reason: 'node',
    });
    assert.equal(decide(model, { ip: '192.168.0.2' }, { pod: 'x/a' }, 'TCP', 81).verdict, 'deny');
    assert.equal(decide(model, { pod: 'x/a' }, { ip: '192.168.0.1' }, 'TCP', 22).verdict, 'allow');
    assert.equal(decide(model, { pod: 'x/a' }, { ip: '192.168.0.2' }, 'TCP', 22).verdict, 'deny');
  });

  it('resolves a pod address to the pod, and treats other addresses as outside the cluster', () => {
    assert.deepEqual(
      decide(model, { ip: '10.1.2.2' }, { pod: 'y/a' }, 'TCP', 80).ingress.result,
      'allow',
    );
    assert.equal(decide(model, { ip: '8.8.8.8' }, { pod: 'y/a' }, 'TCP', 80).verdict, 'deny');
    assert.deepEqual(decide(model, { pod: 'y/b' }, { ip: '8.8.8.8' }, 'UDP', 53).ingress, {
      result: 'allow',
      reason: 'not-a-pod',
    });
    assert.deepEqual(decide(model, { pod: 'x/a' }, { ip: '10.1.0.2' }, 'TCP', 80).egress, {
      result: 'allow',
      reason: 'self',
    });
    assert.equal(decide(model, { pod: 'q/none' }, { pod: 'y/a' }, 'TCP', 80).verdict, 'deny');
  });

  it('lists the pods each policy selects', () => {
    assert.deepEqual(model.selected.get('y/web'), ['y/a']);
    assert.deepEqual(model.selected.get('x/deny-all'), ['x/a', 'x/b', 'x/c']);
  });
});
