// The NetworkPolicy truth table end to end, as upstream's e2e (kubernetes
// test/e2e/network/netpol/network_policy.go) runs it: one real cluster
// (`strata up --nodes 2`), namespaces x, y, z with pods a, b, c each, spread
// over both nodes, every pod serving TCP and UDP on 80 and 81. After each change
// every pod probes every pod (itself too) on every port with real connections,
// and the grid must equal the expected one, else the test prints upstream's
// grids (`.` connected, `X` blocked) for each port that differs.
//
// The expected grids come from a reference evaluator written from the
// Kubernetes documentation alone (test/support/policy-matrix.ts, no code of
// src/policy/), and each step also states its truth table by hand, in
// upstream's Reachability terms; the two are held against each other first.
// SCTP is not probed: this kernel has no CONFIG_IP_SCTP.
//
// Each case quotes the documentation (kubernetes.io/docs/concepts/
// services-networking/network-policies/, or the NetworkPolicy API reference)
// sentence it tests. Between cases every policy is deleted and every label
// restored, and the probes must all connect again before the next case starts.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { clusterSkipReason } from '../support/cluster.js';
import { sh } from '../support/netns.js';
import { LiveCluster } from '../support/live-cluster.js';
import { PolicyLab } from '../support/policy-cluster.js';
import {
  type NetworkPolicy,
  type ProbePort,
  Reachability,
  podKey,
  portLabel,
  probePorts,
  renderComparison,
} from '../support/policy-matrix.js';
import type { ProbeTarget } from '../support/policy-prober.js';

const namespaces = ['x', 'y', 'z'];
const podNames = ['a', 'b', 'c'];

function netpol(namespace: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  };
}

const denyIngress = (ns: string): NetworkPolicy =>
  netpol(ns, 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });
const denyEgress = (ns: string): NetworkPolicy =>
  netpol(ns, 'deny-egress', { podSelector: {}, policyTypes: ['Egress'] });
const denyAll = (ns: string): NetworkPolicy =>
  netpol(ns, 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
const pod = (name: string): { matchLabels: Record<string, string> } => ({
  matchLabels: { pod: name },
});
const ns = (name: string): { matchLabels: Record<string, string> } => ({
  matchLabels: { ns: name },
});

type PortKey = 'all' | 'tcp/80' | 'tcp/81' | 'udp/80' | 'udp/81';
/** A truth table as upstream writes one: start from all connected, then say what is not. */
type Expectation = (r: Reachability, lab: PolicyLab) => void;

interface Step {
  /** What the step does, for messages. */
  what: string;
  act: (lab: PolicyLab) => Promise<void>;
  /**
   * The hand-written truth table, per port (`all`: every port not named);
   * loopback is added after it ("a pod cannot block access to itself").
   */
  expect: Partial<Record<PortKey, Expectation>>;
}

interface Case {
  name: string;
  steps: Step[];
}

const allConnected: Expectation = () => undefined;

/** The step's hand-written grid for `port`. */
function handWritten(step: Step, port: ProbePort, lab: PolicyLab): Reachability {
  const write = step.expect[portLabel(port) as PortKey] ?? step.expect.all;
  if (!write) throw new Error(`Step "${step.what}" states no truth table for ${portLabel(port)}`);
  const r = new Reachability(lab.world.pods.map(podKey), true);
  write(r, lab);
  return r.allowLoopback();
}

/**
 * Runs a case's steps: each changes the cluster, then the probes must show
 * the grids the step expects. A step whose grids equal the state before it
 * could pass without enforcement doing anything, so that is refused.
 */
async function runCase(lab: PolicyLab, testCase: Case): Promise<void> {
  for (const step of testCase.steps) {
    const before = probePorts.map((port) => lab.expected(port));
    await step.act(lab);
    const after = probePorts.map((port) => lab.expected(port));
    probePorts.forEach((port, i) => {
      const evaluated = after[i] as Reachability;
      const written = handWritten(step, port, lab);
      if (written.differences(evaluated).length > 0) {
        assert.fail(
          renderComparison(
            `${testCase.name}, ${step.what}: the hand-written truth table ("expected") and the reference evaluator ("observed") disagree on ${portLabel(port)}`,
            written,
            evaluated,
          ),
        );
      }
    });
    const changed = after.some((grid, i) => {
      const previous = before[i] as Reachability;
      return previous.pods.length !== grid.pods.length || previous.differences(grid).length > 0;
    });
    assert.ok(changed, `${testCase.name}, ${step.what}: the step changes no expected probe`);
    await lab.expectReachability(`${testCase.name}, ${step.what}`);
  }
}

/** Pods on `node`, by key, in order. */
function podsOn(lab: PolicyLab, node: string): string[] {
  return lab.world.pods.filter((p) => p.node === node).map(podKey);
}

// The ipBlock case picks its exceptions once the pods have addresses. With two nodes,
// node-1's pods are exactly those outside node-2's pod CIDR.
const ipBlock = {
  ingressExcept: '',
  egressExcept: '',
  ingressNode: 'node-1',
  egressNode: 'node-2',
};

const cases: Case[] = [
  {
    // "When a pod is isolated for ingress, the only allowed connections into the pod are
    // those from the pod's node and those allowed by the ingress list of some
    // NetworkPolicy that applies to the pod for ingress."
    name: 'default deny ingress',
    steps: [
      {
        what: 'deny-ingress in x',
        act: (lab) => lab.apply(denyIngress('x')),
        expect: { all: (r) => r.expectAllIngress('x/*', false) },
      },
    ],
  },
  {
    // "When a pod is isolated for egress, the only allowed connections from the pod are
    // those allowed by the egress list of some NetworkPolicy that applies to the pod for
    // egress." Traffic to itself stays: "a pod cannot block access to itself".
    name: 'default deny egress',
    steps: [
      {
        what: 'deny-egress in x',
        act: (lab) => lab.apply(denyEgress('x')),
        expect: { all: (r) => r.expectAllEgress('x/*', false) },
      },
    ],
  },
  {
    // "Default deny all ingress and all egress traffic ... This ensures that even pods
    // without any other NetworkPolicy selected will not be allowed any ingress or egress
    // traffic."
    name: 'deny all ingress and egress',
    steps: [
      {
        what: 'deny-all in x',
        act: (lab) => lab.apply(denyAll('x')),
        expect: { all: (r) => r.expectAllIngress('x/*', false).expectAllEgress('x/*', false) },
      },
    ],
  },
  {
    // "Allow all ingress traffic: If you want to allow all traffic to all pods in a
    // namespace (even if policies are added that cause some pods to be treated as
    // "isolated"), you can create a policy that explicitly allows all ingress traffic."
    // (`ingress: [{}]`: one rule matching every source and every port.)
    name: 'allow all ingress',
    steps: [
      {
        what: 'deny-ingress in x',
        act: (lab) => lab.apply(denyIngress('x')),
        expect: { all: (r) => r.expectAllIngress('x/*', false) },
      },
      {
        what: 'and allow-all-ingress in x',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-all-ingress', {
              podSelector: {},
              ingress: [{}],
              policyTypes: ['Ingress'],
            }),
          ),
        expect: { all: allConnected },
      },
    ],
  },
  {
    // "podSelector: This selects particular Pods in the same namespace as the
    // NetworkPolicy which should be allowed as ingress sources or egress destinations."
    // (y/b and z/b carry pod=b too, but are in other namespaces.)
    name: 'pod selector',
    steps: [
      {
        what: 'x/a admits pod=b',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-b', {
              podSelector: pod('a'),
              ingress: [{ from: [{ podSelector: pod('b') }] }],
            }),
          ),
        expect: { all: (r) => r.expectAllIngress('x/a', false).expectPeer('x/b', 'x/a', true) },
      },
    ],
  },
  {
    // "namespaceSelector: This selects particular namespaces for which all Pods should be
    // allowed as ingress sources or egress destinations."
    name: 'namespace selector',
    steps: [
      {
        what: 'x/a admits namespace ns=y',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-ns-y', {
              podSelector: pod('a'),
              ingress: [{ from: [{ namespaceSelector: ns('y') }] }],
            }),
          ),
        expect: { all: (r) => r.expectAllIngress('x/a', false).expectPeer('y/*', 'x/a', true) },
      },
    ],
  },
  {
    // "The Kubernetes control plane sets an immutable label kubernetes.io/metadata.name on
    // all namespaces, the value of the label is the namespace name." Here on egress.
    name: 'namespace selected by its name label, egress',
    steps: [
      {
        what: 'x/a may reach namespace z only',
        act: (lab) =>
          lab.apply(
            netpol('x', 'egress-to-z', {
              podSelector: pod('a'),
              policyTypes: ['Egress'],
              egress: [
                {
                  to: [
                    { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } },
                  ],
                },
              ],
            }),
          ),
        expect: { all: (r) => r.expectAllEgress('x/a', false).expectPeer('x/a', 'z/*', true) },
      },
    ],
  },
  {
    // "A single to/from entry that specifies both namespaceSelector and podSelector selects
    // particular Pods within particular namespaces."
    name: 'namespace and pod selector in one peer (AND)',
    steps: [
      {
        what: 'x/a admits pod=b in namespace ns=y',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-y-b', {
              podSelector: pod('a'),
              ingress: [{ from: [{ namespaceSelector: ns('y'), podSelector: pod('b') }] }],
            }),
          ),
        expect: { all: (r) => r.expectAllIngress('x/a', false).expectPeer('y/b', 'x/a', true) },
      },
    ],
  },
  {
    // "It contains two elements in the from array, and allows connections from Pods in
    // the local Namespace with the label role=client, or from any Pod in any namespace
    // with the label user=alice."
    name: 'namespace and pod selector in separate peers (OR)',
    steps: [
      {
        what: 'x/a admits namespace ns=y, or pod=b of x',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-y-or-b', {
              podSelector: pod('a'),
              ingress: [{ from: [{ namespaceSelector: ns('y') }, { podSelector: pod('b') }] }],
            }),
          ),
        expect: {
          all: (r) =>
            r
              .expectAllIngress('x/a', false)
              .expectPeer('y/*', 'x/a', true)
              .expectPeer('x/b', 'x/a', true),
        },
      },
    ],
  },
  {
    // LabelSelectorRequirement: "operator represents a key's relationship to a set of
    // values. Valid operators are In, NotIn, Exists and DoesNotExist." In:
    name: 'matchExpressions In',
    steps: [
      {
        what: 'x/a admits pod In (b, c)',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-in', {
              podSelector: pod('a'),
              ingress: [
                {
                  from: [
                    {
                      podSelector: {
                        matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }],
                      },
                    },
                  ],
                },
              ],
            }),
          ),
        expect: {
          all: (r) => r.expectAllIngress('x/a', false).expectPeer(['x/b', 'x/c'], 'x/a', true),
        },
      },
    ],
  },
  {
    // NotIn, on namespaces; and NotIn selects an object without the key at all (label
    // selector semantics: `team notin (red)` matches a namespace with no team label).
    name: 'matchExpressions NotIn',
    steps: [
      {
        what: 'x/a admits namespaces ns NotIn (y) and team NotIn (red)',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-not-in', {
              podSelector: pod('a'),
              ingress: [
                {
                  from: [
                    {
                      namespaceSelector: {
                        matchExpressions: [
                          { key: 'ns', operator: 'NotIn', values: ['y'] },
                          { key: 'team', operator: 'NotIn', values: ['red'] },
                        ],
                      },
                    },
                  ],
                },
              ],
            }),
          ),
        expect: { all: (r) => r.expectPeer('y/*', 'x/a', false) },
      },
    ],
  },
  {
    // Exists: pods that carry the key, whatever its value, in any namespace
    // (`namespaceSelector: {}` "selects all namespaces").
    name: 'matchExpressions Exists',
    steps: [
      {
        what: 'y/b and z/c get tier=back; x/a admits pods where tier Exists',
        act: async (lab) => {
          await lab.labelPod('y/b', { pod: 'b', tier: 'back' });
          await lab.labelPod('z/c', { pod: 'c', tier: 'back' });
          await lab.apply(
            netpol('x', 'allow-tier', {
              podSelector: pod('a'),
              ingress: [
                {
                  from: [
                    {
                      namespaceSelector: {},
                      podSelector: { matchExpressions: [{ key: 'tier', operator: 'Exists' }] },
                    },
                  ],
                },
              ],
            }),
          );
        },
        expect: {
          all: (r) => r.expectAllIngress('x/a', false).expectPeer(['y/b', 'z/c'], 'x/a', true),
        },
      },
    ],
  },
  {
    // DoesNotExist: pods without the key.
    name: 'matchExpressions DoesNotExist',
    steps: [
      {
        what: 'y/b and z/c get tier=back; x/a admits pods where tier DoesNotExist',
        act: async (lab) => {
          await lab.labelPod('y/b', { pod: 'b', tier: 'back' });
          await lab.labelPod('z/c', { pod: 'c', tier: 'back' });
          await lab.apply(
            netpol('x', 'allow-no-tier', {
              podSelector: pod('a'),
              ingress: [
                {
                  from: [
                    {
                      namespaceSelector: {},
                      podSelector: {
                        matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }],
                      },
                    },
                  ],
                },
              ],
            }),
          );
        },
        expect: { all: (r) => r.expectPeer(['y/b', 'z/c'], 'x/a', false) },
      },
    ],
  },
  {
    // NetworkPolicyPort.port: "This can either be a numerical or named port on a pod ...
    // If present, only traffic on the specified protocol AND port will be matched." A
    // name is the destination pod's container port of that name, on ingress and egress.
    name: 'named ports',
    steps: [
      {
        what: 'x/a admits serve-81-tcp only',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-serve-81-tcp', {
              podSelector: pod('a'),
              ingress: [{ ports: [{ protocol: 'TCP', port: 'serve-81-tcp' }] }],
            }),
          ),
        expect: { 'tcp/81': allConnected, all: (r) => r.expectAllIngress('x/a', false) },
      },
      {
        what: 'and x/b may send to serve-80-udp only',
        act: (lab) =>
          lab.apply(
            netpol('x', 'egress-serve-80-udp', {
              podSelector: pod('b'),
              policyTypes: ['Egress'],
              egress: [{ ports: [{ protocol: 'UDP', port: 'serve-80-udp' }] }],
            }),
          ),
        expect: {
          'tcp/81': (r) => r.expectAllEgress('x/b', false),
          'udp/80': (r) => r.expectAllIngress('x/a', false),
          all: (r) => r.expectAllIngress('x/a', false).expectAllEgress('x/b', false),
        },
      },
    ],
  },
  {
    // The same, where the name means another number: "named port on a pod" is resolved
    // on each destination pod. x/d declares TCP 80 as serve-81-tcp and 81 as serve-80-tcp.
    name: 'named ports resolve on each destination pod',
    steps: [
      {
        what: 'x/d created, its TCP port names swapped',
        act: (lab) =>
          lab.addPod('x', 'd', [
            { name: 'serve-81-tcp', containerPort: 80, protocol: 'TCP' },
            { name: 'serve-80-tcp', containerPort: 81, protocol: 'TCP' },
            { name: 'serve-80-udp', containerPort: 80, protocol: 'UDP' },
            { name: 'serve-81-udp', containerPort: 81, protocol: 'UDP' },
          ]),
        expect: { all: allConnected },
      },
      {
        what: 'x admits serve-81-tcp only',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-serve-81-tcp', {
              podSelector: {},
              ingress: [{ ports: [{ protocol: 'TCP', port: 'serve-81-tcp' }] }],
            }),
          ),
        expect: {
          'tcp/80': (r) => r.expectAllIngress(['x/a', 'x/b', 'x/c'], false),
          'tcp/81': (r) => r.expectAllIngress('x/d', false),
          all: (r) => r.expectAllIngress('x/*', false),
        },
      },
      {
        what: 'instead, y/a may send to serve-80-tcp only',
        act: async (lab) => {
          await lab.delete('x', 'allow-serve-81-tcp');
          await lab.apply(
            netpol('y', 'egress-serve-80-tcp', {
              podSelector: pod('a'),
              policyTypes: ['Egress'],
              egress: [{ ports: [{ protocol: 'TCP', port: 'serve-80-tcp' }] }],
            }),
          );
        },
        expect: {
          'tcp/80': (r) => r.expect('y/a', 'x/d', false),
          'tcp/81': (r) => r.expectAllEgress('y/a', false).expect('y/a', 'x/d', true),
          all: (r) => r.expectAllEgress('y/a', false),
        },
      },
    ],
  },
  {
    // NetworkPolicyPort.endPort: "endPort indicates that the range of ports from port to
    // endPort if set, inclusive, should be allowed by the policy."
    name: 'endPort',
    steps: [
      {
        what: 'x/a admits TCP 80-81',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-range', {
              podSelector: pod('a'),
              ingress: [{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }],
            }),
          ),
        expect: {
          'tcp/80': allConnected,
          'tcp/81': allConnected,
          all: (r) => r.expectAllIngress('x/a', false),
        },
      },
      {
        what: 'updated to TCP 81-81',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-range', {
              podSelector: pod('a'),
              ingress: [{ ports: [{ protocol: 'TCP', port: 81, endPort: 81 }] }],
            }),
          ),
        expect: { 'tcp/81': allConnected, all: (r) => r.expectAllIngress('x/a', false) },
      },
    ],
  },
  {
    // "ipBlock: This selects particular IP CIDR ranges to allow as ingress sources or
    // egress destinations"; IPBlock: "The except entry describes CIDRs that should not be
    // included within this rule." Here the CIDR is one node's pod CIDR and the exception
    // one pod's /32 in it (upstream's e2e uses pod IPs the same way).
    name: 'ipBlock with except',
    steps: [
      {
        what: "x/a admits node-1's pod CIDR except one pod",
        act: async (lab) => {
          const cidr = await lab.podCidr(ipBlock.ingressNode);
          ipBlock.ingressExcept = podsOn(lab, ipBlock.ingressNode).find((k) => k !== 'x/a') ?? '';
          await lab.apply(
            netpol('x', 'allow-cidr', {
              podSelector: pod('a'),
              ingress: [
                {
                  from: [
                    {
                      ipBlock: { cidr, except: [`${lab.pod(ipBlock.ingressExcept).ip}/32`] },
                    },
                  ],
                },
              ],
            }),
          );
        },
        expect: {
          all: (r, lab) =>
            r
              .expectAllIngress('x/a', false)
              .expectPeer(podsOn(lab, ipBlock.ingressNode), 'x/a', true)
              .expect(ipBlock.ingressExcept, 'x/a', false),
        },
      },
      {
        what: "and x/b may reach node-2's pod CIDR except one pod",
        act: async (lab) => {
          const cidr = await lab.podCidr(ipBlock.egressNode);
          ipBlock.egressExcept = podsOn(lab, ipBlock.egressNode).find((k) => k !== 'x/b') ?? '';
          await lab.apply(
            netpol('x', 'egress-cidr', {
              podSelector: pod('b'),
              policyTypes: ['Egress'],
              egress: [
                {
                  to: [{ ipBlock: { cidr, except: [`${lab.pod(ipBlock.egressExcept).ip}/32`] } }],
                },
              ],
            }),
          );
        },
        expect: {
          all: (r, lab) =>
            r
              .expectAllIngress('x/a', false)
              .expectPeer(podsOn(lab, ipBlock.ingressNode), 'x/a', true)
              .expect(ipBlock.ingressExcept, 'x/a', false)
              // Egress only takes away (both sides must allow): x/b reaches no pod
              // outside node-2's pod CIDR, nor the one excepted.
              .expectPeer('x/b', podsOn(lab, ipBlock.ingressNode), false)
              .expect('x/b', ipBlock.egressExcept, false),
        },
      },
    ],
  },
  {
    // "If no policyTypes are specified on a NetworkPolicy then by default Ingress will
    // always be set and Egress will be set if the NetworkPolicy has any egress rules." So
    // a policy with only egress rules, and no policyTypes, isolates its pods for ingress
    // too.
    name: 'policyTypes default with egress rules',
    steps: [
      {
        what: 'x/a: egress rules to namespace ns=y, no policyTypes',
        act: (lab) =>
          lab.apply(
            netpol('x', 'egress-to-y', {
              podSelector: pod('a'),
              egress: [{ to: [{ namespaceSelector: ns('y') }] }],
            }),
          ),
        expect: {
          all: (r) =>
            r
              .expectAllIngress('x/a', false)
              .expectAllEgress('x/a', false)
              .expectPeer('x/a', 'y/*', true),
        },
      },
    ],
  },
  {
    // "Network policies do not conflict; they are additive. If any policy or policies
    // apply to a given pod for a given direction, the connections allowed in that
    // direction from that pod is the union of what the applicable policies allow."
    name: 'stacked policies are additive',
    steps: [
      {
        what: 'x/a admits pod=b',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-b', {
              podSelector: pod('a'),
              ingress: [{ from: [{ podSelector: pod('b') }] }],
            }),
          ),
        expect: { all: (r) => r.expectAllIngress('x/a', false).expectPeer('x/b', 'x/a', true) },
      },
      {
        what: 'and a second policy admits namespace ns=y',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-ns-y', {
              podSelector: pod('a'),
              ingress: [{ from: [{ namespaceSelector: ns('y') }] }],
            }),
          ),
        expect: {
          all: (r) =>
            r
              .expectAllIngress('x/a', false)
              .expectPeer('x/b', 'x/a', true)
              .expectPeer('y/*', 'x/a', true),
        },
      },
    ],
  },
  {
    // "For a connection from a source pod to a destination pod to be allowed, both the
    // egress policy on the source pod and the ingress policy on the destination pod need
    // to allow the connection. If either side does not allow the connection, it will not
    // happen."
    name: 'egress deny overrides an allowing ingress',
    steps: [
      {
        what: 'y admits x/a only',
        act: (lab) =>
          lab.apply(
            netpol('y', 'allow-x-a', {
              podSelector: {},
              ingress: [{ from: [{ namespaceSelector: ns('x'), podSelector: pod('a') }] }],
            }),
          ),
        expect: { all: (r) => r.expectAllIngress('y/*', false).expectPeer('x/a', 'y/*', true) },
      },
      {
        what: 'and x/a may send nothing',
        act: (lab) =>
          lab.apply(
            netpol('x', 'deny-egress-a', { podSelector: pod('a'), policyTypes: ['Egress'] }),
          ),
        expect: { all: (r) => r.expectAllIngress('y/*', false).expectAllEgress('x/a', false) },
      },
    ],
  },
  {
    // NetworkPolicyPort: "protocol ... If not specified, this field defaults to TCP";
    // "port ... If this field is not provided, this matches all port names and numbers."
    // So a UDP-only rule admits no TCP, and a rule with a port and no protocol is TCP.
    name: 'protocol-only rules',
    steps: [
      {
        what: 'x/a admits UDP (any port) only',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-udp', {
              podSelector: pod('a'),
              ingress: [{ ports: [{ protocol: 'UDP' }] }],
            }),
          ),
        expect: {
          'udp/80': allConnected,
          'udp/81': allConnected,
          all: (r) => r.expectAllIngress('x/a', false),
        },
      },
      {
        what: 'and x/b may send to port 80 (no protocol: TCP) only',
        act: (lab) =>
          lab.apply(
            netpol('x', 'egress-80', {
              podSelector: pod('b'),
              policyTypes: ['Egress'],
              egress: [{ ports: [{ port: 80 }] }],
            }),
          ),
        expect: {
          'tcp/80': (r) => r.expectAllIngress('x/a', false),
          'udp/80': (r) => r.expectAllEgress('x/b', false),
          'udp/81': (r) => r.expectAllEgress('x/b', false),
          all: (r) => r.expectAllIngress('x/a', false).expectAllEgress('x/b', false),
        },
      },
    ],
  },
  {
    // "Once there is any NetworkPolicy in a namespace selecting a particular pod, that pod
    // will reject any connections that are not allowed by any NetworkPolicy": the
    // policies as they are now, after an update.
    name: 'policy update',
    steps: [
      {
        what: 'x/a admits pod=b',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-one', {
              podSelector: pod('a'),
              ingress: [{ from: [{ podSelector: pod('b') }] }],
            }),
          ),
        expect: { all: (r) => r.expectAllIngress('x/a', false).expectPeer('x/b', 'x/a', true) },
      },
      {
        what: 'updated to admit pod=c instead',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-one', {
              podSelector: pod('a'),
              ingress: [{ from: [{ podSelector: pod('c') }] }],
            }),
          ),
        expect: { all: (r) => r.expectAllIngress('x/a', false).expectPeer('x/c', 'x/a', true) },
      },
    ],
  },
  {
    // "By default, a pod is non-isolated for ingress; all inbound connections are
    // allowed": once the last policy selecting it is deleted, again.
    name: 'policy delete',
    steps: [
      {
        what: 'deny-ingress in x',
        act: (lab) => lab.apply(denyIngress('x')),
        expect: { all: (r) => r.expectAllIngress('x/*', false) },
      },
      {
        what: 'strata delete of it',
        act: (lab) => lab.delete('x', 'deny-ingress'),
        expect: { all: allConnected },
      },
    ],
  },
  {
    // "Pods become isolated by having a NetworkPolicy that selects them"; a peer's
    // podSelector "selects pods" by their labels: labels as they are now.
    name: 'pod relabel',
    steps: [
      {
        what: 'x/a admits role=client from any namespace (no pod has it)',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-clients', {
              podSelector: pod('a'),
              ingress: [
                {
                  from: [
                    { namespaceSelector: {}, podSelector: { matchLabels: { role: 'client' } } },
                  ],
                },
              ],
            }),
          ),
        expect: { all: (r) => r.expectAllIngress('x/a', false) },
      },
      {
        what: 'y/c relabeled role=client',
        act: (lab) => lab.labelPod('y/c', { pod: 'c', role: 'client' }),
        expect: { all: (r) => r.expectAllIngress('x/a', false).expectPeer('y/c', 'x/a', true) },
      },
      {
        what: 'x/a relabeled pod=a2, so the policy no longer selects it',
        act: (lab) => lab.labelPod('x/a', { pod: 'a2' }),
        expect: { all: allConnected },
      },
    ],
  },
  {
    // namespaceSelector "selects namespaces using cluster-scoped labels": labels as they
    // are now.
    name: 'namespace relabel',
    steps: [
      {
        what: 'x/a admits namespaces team=blue (none is)',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-blue', {
              podSelector: pod('a'),
              ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }],
            }),
          ),
        expect: { all: (r) => r.expectAllIngress('x/a', false) },
      },
      {
        what: 'z labeled team=blue',
        act: (lab) => lab.labelNamespace('z', { ns: 'z', team: 'blue' }),
        expect: { all: (r) => r.expectAllIngress('x/a', false).expectPeer('z/*', 'x/a', true) },
      },
      {
        what: 'the label moved from z to y',
        act: async (lab) => {
          await lab.labelNamespace('z', { ns: 'z' });
          await lab.labelNamespace('y', { ns: 'y', team: 'blue' });
        },
        expect: { all: (r) => r.expectAllIngress('x/a', false).expectPeer('y/*', 'x/a', true) },
      },
    ],
  },
  {
    // "An empty podSelector selects all pods in the namespace": pods made later too.
    name: 'a pod created after the policy',
    steps: [
      {
        what: 'x admits namespace ns=y only',
        act: (lab) =>
          lab.apply(
            netpol('x', 'allow-ns-y', {
              podSelector: {},
              ingress: [{ from: [{ namespaceSelector: ns('y') }] }],
            }),
          ),
        expect: { all: (r) => r.expectAllIngress('x/*', false).expectPeer('y/*', 'x/*', true) },
      },
      {
        what: 'x/d created and running',
        act: (lab) => lab.addPod('x', 'd'),
        expect: { all: (r) => r.expectAllIngress('x/*', false).expectPeer('y/*', 'x/*', true) },
      },
    ],
  },
  {
    // "When a pod is isolated for ingress, ... Reply traffic for those allowed
    // connections will also be implicitly allowed" (egress alike). x/a admits nothing and
    // y/b may send nothing, yet x/a → y/b connects: y/b's replies leave an
    // egress-isolated pod and enter an ingress-isolated one.
    name: 'replies to allowed connections',
    steps: [
      {
        what: 'x/a admits nothing, y/b may send nothing',
        act: (lab) =>
          lab.apply(
            netpol('x', 'deny-ingress-a', { podSelector: pod('a'), policyTypes: ['Ingress'] }),
            netpol('y', 'deny-egress-b', { podSelector: pod('b'), policyTypes: ['Egress'] }),
          ),
        expect: {
          all: (r) =>
            r
              .expectAllIngress('x/a', false)
              .expectAllEgress('y/b', false)
              .expect('x/a', 'y/b', true),
        },
      },
    ],
  },
];

describe('NetworkPolicy truth table', { skip: clusterSkipReason() }, () => {
  let cluster: LiveCluster | undefined;
  let lab: PolicyLab | undefined;
  const labOf = (): PolicyLab => {
    if (!lab) throw new Error('The cluster is not up');
    return lab;
  };

  before(async () => {
    cluster = LiveCluster.create();
    await cluster.up(2);
    lab = new PolicyLab(cluster);
    await lab.setUp(namespaces, podNames);
  });

  after(async () => {
    lab?.close();
    if (cluster) assert.deepEqual(await cluster.down(), [], 'nothing of the cluster is left');
  });

  afterEach(async () => {
    // Every case starts from no policies and the labels as made, with every probe connecting.
    if (lab) await lab.reset();
  });

  it('spreads the pods over both nodes, and with no policy every probe connects', async () => {
    const l = labOf();
    const nodes = new Set(l.world.pods.map((p) => p.node));
    assert.deepEqual(
      [...nodes].sort(),
      ['node-1', 'node-2'],
      `pods by node: ${l.world.pods.map((p) => `${podKey(p)}@${p.node}`).join(' ')}`,
    );
    assert.equal(l.world.pods.length, namespaces.length * podNames.length);
    await l.expectReachability('no policies');
  });

  for (const testCase of cases) {
    it(testCase.name, () => runCase(labOf(), testCase));
  }

  // Upstream's validation (ValidateNetworkPolicy): each of these is refused by the API
  // server with the field path, and the rules in force do not change.
  it('refuses invalid policies with the field path and leaves the running rules alone', async () => {
    const l = labOf();
    await l.apply(denyIngress('x'));
    await l.expectReachability('deny-ingress in x');
    const nodes = [...new Set(l.world.pods.map((p) => p.node))].sort();
    const ruleset = (): string[] =>
      nodes.map((node) =>
        sh('ip', [
          'netns',
          'exec',
          l.cluster.nodeNetns(node),
          'nft',
          'list',
          'table',
          'inet',
          'strata_policy',
        ]).replace(/packets \d+ bytes \d+/g, ''),
      );
    const before = ruleset();
    const spec = (ingress: unknown): string =>
      `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: "y"}\n` +
      `spec:\n  podSelector: {}\n  ingress: ${JSON.stringify(ingress)}\n`;
    const bad: [string, string, string][] = [
      [
        'except outside cidr',
        spec([{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }]),
        'spec.ingress[0].from[0].ipBlock.except[0]',
      ],
      [
        'endPort with a named port',
        spec([{ ports: [{ port: 'serve-80-tcp', endPort: 81 }] }]),
        'spec.ingress[0].ports[0].endPort',
      ],
      [
        'endPort below port',
        spec([{ ports: [{ port: 81, endPort: 80 }] }]),
        'spec.ingress[0].ports[0].endPort',
      ],
      [
        'unknown protocol',
        spec([{ ports: [{ protocol: 'ICMP', port: 80 }] }]),
        'spec.ingress[0].ports[0].protocol',
      ],
      [
        'bad selector operator',
        spec([
          {
            from: [
              {
                podSelector: { matchExpressions: [{ key: 'pod', operator: 'Is', values: ['a'] }] },
              },
            ],
          },
        ]),
        'spec.ingress[0].from[0].podSelector.matchExpressions[0].operator',
      ],
    ];
    for (const [what, yaml, field] of bad) {
      const run = await l.cluster.run(['apply', '-f', '-'], yaml);
      assert.notEqual(run.code, 0, `${what}: refused`);
      assert.ok(run.stderr.includes(field), `${what}: names ${field}:\n${run.stderr}`);
    }
    const listed = await l.cluster.run(['get', 'networkpolicies', '-n', 'y', '-o', 'name']);
    assert.equal(listed.stdout.trim(), '', 'no bad policy was stored');
    assert.deepEqual(ruleset(), before, 'the nftables rules are as they were');
    await l.expectReachability('deny-ingress in x, after the refused policies');
  });

  // "traffic to and from the node where a Pod is running is always allowed"; "(Pods cannot
  // currently block localhost access, nor do they have the ability to block access from
  // their resident node)"; "a pod cannot block access to itself". A connection from the
  // other node is no exception: "the only allowed connections into the pod are those from
  // the pod's node and those allowed by the ingress list".
  it('under deny-all everywhere, a pod reaches itself and its node reaches it; the other node does not', async () => {
    const l = labOf();
    await l.apply(...namespaces.map(denyAll));
    await l.expectReachability('deny-all in x, y, z');
    const nodes = [...new Set(l.world.pods.map((p) => p.node))].sort();
    let round = 0;
    const deadline = Date.now() + 10_000;
    for (;;) {
      round += 1;
      const targets = (sourcePortBase: number): ProbeTarget[] => l.probeTargets(sourcePortBase);
      // UDP source ports 30000-32767, apart from the matrix rounds' (see policy-prober.ts).
      const base = 30_000 + (round % 20) * 48;
      const fromNodes = await Promise.all(
        nodes.map((node, n) => l.probeFrom(l.cluster.nodeNetns(node), targets(base + n * 24))),
      );
      const fromSelf = await Promise.all(
        l.world.pods.map((p) =>
          l.probeFrom(
            l.podNetns(podKey(p)),
            targets(base).filter((t) => t.expect === podKey(p)),
          ),
        ),
      );
      const wrong: string[] = [];
      nodes.forEach((node, n) => {
        for (const outcome of fromNodes[n] ?? []) {
          const [to = ''] = outcome.key.split('|');
          const expected = l.pod(to).node === node;
          if (outcome.connected !== expected) {
            wrong.push(
              `${node} → ${outcome.key}: expected ${expected ? 'connected' : 'blocked'}, ${outcome.connected ? 'connected' : `not connected: ${outcome.error ?? ''}`}`,
            );
          }
        }
      });
      for (const outcome of fromSelf.flat()) {
        if (!outcome.connected) {
          wrong.push(`self ${outcome.key}: not connected: ${outcome.error ?? ''}`);
        }
      }
      if (wrong.length === 0) return;
      if (Date.now() > deadline) assert.fail(`after ${round} rounds:\n${wrong.join('\n')}`);
    }
  });
});
