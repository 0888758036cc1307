// `strata explain` and `strata get networkpolicies -o wide`: the command line's
// forms, the report for every reason decide() gives (from literal API objects, no
// cluster), then both commands against a real API server, with their exit codes.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { resourceForKind } from '../../src/api/registry.js';
import type { KubeObject } from '../../src/api/types.js';
import { UsageError } from '../../src/cli/args.js';
import { kubeYamlStringifyOptions } from '../../src/cli/kube-yaml.js';
import {
  type ClusterObjects,
  type ExplainQuery,
  explainConnection,
  explainJson,
  explainText,
  parseExplainQuery,
} from '../../src/cli/explain.js';
import { ApiClient } from '../../src/client/index.js';
import { TestCluster, strata } from '../support/cli.js';

const lines = (...rows: string[]): string => rows.map((row) => `${row}\n`).join('');

describe('explain: FROM and TO:PORT[/PROTOCOL]', () => {
  it('reads pods, namespaced pods and addresses; TCP by default, protocols in any case', () => {
    assert.deepEqual(parseExplainQuery(['x/a', 'y/b:80'], 'default'), {
      from: { pod: 'x/a' },
      to: { pod: 'y/b' },
      protocol: 'TCP',
      port: 80,
    });
    assert.deepEqual(parseExplainQuery(['a', 'b:53/udp'], 'z'), {
      from: { pod: 'z/a' },
      to: { pod: 'z/b' },
      protocol: 'UDP',
      port: 53,
    });
    assert.deepEqual(parseExplainQuery(['10.0.0.1', '10.244.2.7:8080/Sctp'], 'default'), {
      from: { ip: '10.0.0.1' },
      to: { ip: '10.244.2.7' },
      protocol: 'SCTP',
      port: 8080,
    });
    // IPv6: bare or bracketed without a port, bracketed with one; canonical text.
    assert.deepEqual(parseExplainQuery(['FD00:0::1', '[fd00::0:2]:443'], 'default'), {
      from: { ip: 'fd00::1' },
      to: { ip: 'fd00::2' },
      protocol: 'TCP',
      port: 443,
    });
    assert.deepEqual(parseExplainQuery(['[fd00::1]', 'y/b:65535/TCP'], 'default').from, {
      ip: 'fd00::1',
    });
  });

  const usage: [string[], RegExp][] = [
    [['x/a'], /expected FROM and TO:PORT\[\/PROTOCOL\], for example/],
    [['x/a', 'y/b:80', 'z'], /expected FROM and TO:PORT/],
    [['x/a', 'y/b'], /TO "y\/b" needs a port: the answer depends on it/],
    [['x/a', 'fd00::1'], /TO "fd00::1" needs a port \(\[fd00::1\]:PORT for IPv6\)/],
    [['x/a', 'fd00::zz:80'], /an IPv6 address with a port is written \[ADDRESS\]:PORT/],
    [['x/a', '[fd00::1]80'], /TO "\[fd00::1\]80": expected \[ADDRESS\]:PORT/],
    [['x/a', '[web]:80'], /expected \[ADDRESS\]:PORT/],
    [['x/a:80', 'y/b:80'], /FROM "x\/a:80": FROM takes no port, only TO does/],
    [['x/a', 'y/b:0'], /TO "y\/b:0": the port must be 1-65535: got "0"/],
    [['x/a', 'y/b:65536'], /the port must be 1-65535: got "65536"/],
    [['x/a', 'y/b:http'], /the port must be 1-65535: got "http"/],
    [['x/a', 'y/b:'], /the port must be 1-65535: got ""/],
    [
      ['x/a', 'y/b:80/icmp'],
      /TO "y\/b:80\/icmp": the protocol must be TCP, UDP or SCTP: got "icmp"/,
    ],
    [['a/b/c', 'y/b:80'], /FROM "a\/b\/c": expected POD, NAMESPACE\/POD or an IP address/],
    [['x/', 'y/b:80'], /FROM "x\/": expected POD, NAMESPACE\/POD/],
    [['x/a', ':80'], /TO "": expected POD, NAMESPACE\/POD/],
  ];
  for (const [args, message] of usage) {
    it(`rejects ${args.join(' ')}`, () => {
      assert.throws(
        () => parseExplainQuery(args, 'default'),
        (error: unknown) => error instanceof UsageError && message.test(error.message),
      );
    });
  }

  it('is a usage error (exit 2) before it looks for a cluster', async () => {
    const run = await strata(['explain', 'x/a', 'y/b', '--state-dir', '/nonexistent']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^error: strata explain: TO "y\/b" needs a port/);
    const format = await strata(['explain', 'x/a', 'y/b:80', '-o', 'yaml']);
    assert.equal(format.code, 2);
    assert.match(format.stderr, /allowed formats are: json/);
  });

  it('is listed in help', async () => {
    const help = await strata(['help']);
    assert.match(help.stdout, /\n {2}explain FROM TO:PORT\[\/PROTOCOL\] /);
  });
});

/* A cluster as literal API objects. */

function namespace(name: string, labels: Record<string, string> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

function node(name: string, ip: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    status: { addresses: [{ type: 'InternalIP', address: ip }] },
  };
}

function pod(
  key: string,
  labels: Record<string, string>,
  placed: { node?: string; ips?: string[]; phase?: string } = {},
): KubeObject {
  const [ns, name] = key.split('/');
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: ns ?? '', name: name ?? '', labels },
    spec: {
      ...(placed.node === undefined ? {} : { nodeName: placed.node }),
      containers: [{ name: 'main', image: 'node' }],
    },
    status: {
      phase: placed.phase ?? 'Running',
      ...(placed.ips === undefined ? {} : { podIPs: placed.ips.map((ip) => ({ ip })) }),
    },
  };
}

function policy(key: string, spec: Record<string, unknown>): KubeObject {
  const [ns, name] = key.split('/');
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace: ns ?? '', name: name ?? '' },
    spec,
  };
}

const objects: ClusterObjects = {
  namespaces: [namespace('x', { team: 'x' }), namespace('y')],
  nodes: [node('n1', '172.31.0.11'), node('n2', '172.31.0.12')],
  pods: [
    pod('x/a', { app: 'a' }, { node: 'n1', ips: ['10.244.1.5'] }),
    pod('x/locked', { app: 'locked' }, { node: 'n1', ips: ['10.244.1.6'] }),
    pod('x/done', { app: 'a' }, { node: 'n1', ips: ['10.244.1.7'], phase: 'Succeeded' }),
    pod('y/b', { app: 'b' }, { node: 'n2', ips: ['10.244.2.7'] }),
    pod('y/pending', { app: 'b' }, { phase: 'Pending' }),
    pod('y/starting', { app: 'b' }, { node: 'n2', phase: 'Pending' }),
  ],
  policies: [
    policy('y/default-deny', { podSelector: {}, policyTypes: ['Ingress'] }),
    policy('y/allow-80', {
      podSelector: { matchLabels: { app: 'b' } },
      ingress: [
        { from: [{ namespaceSelector: { matchLabels: { team: 'x' } } }], ports: [{ port: 80 }] },
      ],
    }),
    policy('x/lockdown', {
      podSelector: { matchLabels: { app: 'locked' } },
      policyTypes: ['Egress'],
      egress: [
        { to: [{ podSelector: { matchLabels: { app: 'a' } } }] },
        { to: [{ ipBlock: { cidr: '10.244.0.0/16' } }], ports: [{ port: 53, protocol: 'UDP' }] },
      ],
    }),
  ],
};

function report(from: string, to: string): { text: string; verdict: string } {
  const explanation = explainConnection(objects, parseExplainQuery([from, to], 'default'));
  return { text: explainText(explanation), verdict: explanation.decision.verdict };
}

describe('explain: the report, for every reason', () => {
  it('rules on one side, not isolated on the other', () => {
    assert.deepEqual(report('x/a', 'y/b:80'), {
      verdict: 'allow',
      text: lines(
        'x/a (10.244.1.5, node n1) -> y/b (10.244.2.7, node n2) TCP/80: ALLOWED',
        '',
        'NetworkPolicy (kernel, nftables):',
        '  egress  from x/a: allowed — x/a is not isolated for egress (no policy selects it with Egress)',
        '  ingress to y/b:   allowed by y/allow-80 ingress[0]',
      ),
    });
  });

  it('no rule allows: the isolating policies and what was asked', () => {
    assert.deepEqual(report('x/a', 'y/b:81'), {
      verdict: 'deny',
      text: lines(
        'x/a (10.244.1.5, node n1) -> y/b (10.244.2.7, node n2) TCP/81: DENIED',
        '',
        'NetworkPolicy (kernel, nftables):',
        '  egress  from x/a: allowed — x/a is not isolated for egress (no policy selects it with Egress)',
        '  ingress to y/b:   denied — y/b is isolated for ingress by y/default-deny, y/allow-80; no rule allows TCP/81 from x/a',
      ),
    });
    const egress = report('x/locked', 'y/b:80/UDP');
    assert.equal(egress.verdict, 'deny');
    assert.match(
      egress.text,
      /\n {2}egress {2}from x\/locked: denied — x\/locked is isolated for egress by x\/lockdown; no rule allows UDP\/80 to y\/b\n/,
    );
  });

  it('every rule that allows is named, egress[i] for egress', () => {
    const { text, verdict } = report('x/locked', 'x/a:53/udp');
    assert.equal(verdict, 'allow');
    assert.match(
      text,
      /egress {2}from x\/locked: allowed by x\/lockdown egress\[0\], x\/lockdown egress\[1\]\n/,
    );
  });

  it('an address that is no pod is not restricted; one that is a pod is that pod', () => {
    assert.equal(
      report('192.0.2.1', 'y/b:80').text,
      lines(
        '192.0.2.1 -> y/b (10.244.2.7, node n2) TCP/80: DENIED',
        '',
        'NetworkPolicy (kernel, nftables):',
        "  egress  from 192.0.2.1: allowed — 192.0.2.1 is not a pod's address: NetworkPolicy restricts only pods",
        '  ingress to y/b:         denied — y/b is isolated for ingress by y/default-deny, y/allow-80; no rule allows TCP/80 from 192.0.2.1',
      ),
    );
    const byAddress = report('10.244.1.5', '10.244.2.7:80');
    assert.equal(byAddress.verdict, 'allow');
    assert.match(
      byAddress.text,
      /^10\.244\.1\.5 \(pod x\/a, node n1\) -> 10\.244\.2\.7 \(pod y\/b, node n2\) TCP\/80: ALLOWED\n/,
    );
    assert.match(byAddress.text, /egress {2}from 10\.244\.1\.5: allowed — x\/a is not isolated/);
  });

  it('a pod and its own node always reach each other', () => {
    const fromNode = report('172.31.0.12', 'y/b:8080');
    assert.equal(
      fromNode.text,
      lines(
        '172.31.0.12 (node n2) -> y/b (10.244.2.7, node n2) TCP/8080: ALLOWED',
        '',
        'NetworkPolicy (kernel, nftables):',
        "  egress  from 172.31.0.12: allowed — 172.31.0.12 is not a pod's address (it is node n2's): NetworkPolicy restricts only pods",
        "  ingress to y/b:           allowed — 172.31.0.12 is an address of y/b's node n2: traffic between a pod and its node is always allowed",
      ),
    );
    const toNode = report('x/locked', '172.31.0.11:10250');
    assert.equal(toNode.verdict, 'allow');
    assert.match(
      toNode.text,
      /egress {2}from x\/locked: +allowed — 172\.31\.0\.11 is an address of x\/locked's node n1: /,
    );
    // Another node's address is an ordinary peer.
    assert.equal(report('x/locked', '172.31.0.12:10250').verdict, 'deny');
  });

  it('a pod can always reach itself', () => {
    for (const to of ['x/locked:9999', '10.244.1.6:9999']) {
      const { text, verdict } = report('x/locked', to);
      assert.equal(verdict, 'allow');
      assert.match(text, /egress {2}from x\/locked: allowed — a pod can always reach itself\n/);
      assert.match(text, /ingress to \S+: +allowed — a pod can always reach itself\n/);
    }
  });

  it('endpoints NetworkPolicy cannot place: why, and the verdict is deny', () => {
    const cases: [string, string, RegExp][] = [
      ['y/pending', 'y/b:80', /y\/pending is not scheduled to a node yet, so it has no pod IP/],
      ['y/starting', 'y/b:80', /y\/starting has no pod IP yet/],
      [
        'x/done',
        'y/b:80',
        /x\/done has finished \(phase Succeeded\): NetworkPolicy no longer applies to it/,
      ],
      ['x/a', 'y/starting:80', /y\/starting has no pod IP yet/],
      [
        'x/a',
        '[fd00::99]:80',
        /x\/a \(IPv4\) and fd00::99 \(IPv6\) have no address family in common/,
      ],
    ];
    for (const [from, to, why] of cases) {
      const { text, verdict } = report(from, to);
      assert.equal(verdict, 'deny', `${from} ${to}`);
      assert.match(text, new RegExp(`egress .*: +denied — ${why.source}\n`), `${from} ${to}`);
      assert.match(text, new RegExp(`ingress .*: +denied — ${why.source}\n`), `${from} ${to}`);
    }
    assert.match(report('y/pending', 'y/b:80').text, /^y\/pending \(no pod IP\) -> /);
    assert.match(report('y/starting', 'y/b:80').text, /^y\/starting \(no pod IP, node n2\) -> /);
  });

  it('a pod that does not exist is an error naming it', () => {
    assert.throws(
      () => explainConnection(objects, parseExplainQuery(['x/a', 'y/nope:80'], 'default')),
      { message: 'pod y/nope not found (no pod "nope" in namespace "y")' },
    );
  });

  it('-o json: the endpoints, the query and the Decision with its layers', () => {
    const query: ExplainQuery = parseExplainQuery(['x/a', 'y/b:81'], 'default');
    const json = JSON.parse(explainJson(explainConnection(objects, query))) as Record<
      string,
      unknown
    >;
    const ingress = {
      result: 'deny',
      reason: 'no-rule-allows',
      isolatedBy: ['y/default-deny', 'y/allow-80'],
    };
    const egress = { result: 'allow', reason: 'not-isolated' };
    assert.deepEqual(json, {
      from: {
        endpoint: { pod: 'x/a' },
        name: 'x/a',
        pod: 'x/a',
        node: 'n1',
        addresses: ['10.244.1.5'],
      },
      to: {
        endpoint: { pod: 'y/b' },
        name: 'y/b',
        pod: 'y/b',
        node: 'n2',
        addresses: ['10.244.2.7'],
      },
      protocol: 'TCP',
      port: 81,
      decision: {
        layer: 'networkpolicy',
        verdict: 'deny',
        egress,
        ingress,
        layers: [{ layer: 'networkpolicy', verdict: 'deny', egress, ingress }],
      },
    });
  });
});

describe('against an API server: get networkpolicies -o wide, explain', () => {
  let cluster: TestCluster;
  let client: ApiClient;
  before(async () => {
    cluster = await TestCluster.start();
    client = new ApiClient({ socketPath: join(cluster.stateDir, 'api.sock') });
    const manifests = [
      namespace('x', { team: 'x' }),
      namespace('y'),
      node('n1', '172.31.0.11'),
      node('n2', '172.31.0.12'),
      ...objects.pods,
      ...objects.policies,
      // Seven pods for one policy: the cell lists five.
      ...['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'].map((name, i) =>
        pod(`many/${name}`, { app: 'many' }, { node: 'n1', ips: [`10.244.1.${String(20 + i)}`] }),
      ),
      policy('many/all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
      policy('many/none', { podSelector: { matchLabels: { app: 'nothing' } } }),
    ];
    // Applied without status (yaml leaves undefined out), in YAML 1.1 as kubectl writes
    // it: namespace `y` must be quoted to stay a string.
    const yaml = [namespace('many'), ...manifests].map((m) =>
      stringify({ ...m, status: undefined }, kubeYamlStringifyOptions),
    );
    const apply = await cluster.run(['apply', '-f', '-'], yaml.join('---\n'));
    assert.equal(apply.code, 0, apply.stderr);
    // Addresses and phases as the agent and the node report them.
    for (const manifest of manifests) {
      if (manifest.status === undefined) continue;
      const resource = resourceForKind(manifest.apiVersion, manifest.kind);
      if (!resource) throw new Error(`no ${manifest.kind}`);
      const current = await client.get(resource, manifest.metadata.name ?? '', {
        namespace: manifest.metadata.namespace,
      });
      await client.updateStatus({ ...current, status: manifest.status });
    }
  });
  after(async () => {
    client.close();
    await cluster.stop();
  });

  it('get -o wide: the policy types and the pods selected, by name', async () => {
    const y = await cluster.run(['get', 'networkpolicies', '-n', 'y', '-o', 'wide']);
    assert.equal(y.code, 0, y.stderr);
    assert.equal(
      y.stdout.replace(/\b\d+s\b */g, (age) => 'AGE'.padEnd(age.length)),
      lines(
        // No cluster record names the nodes whose counters hold the drops.
        'NAME           POD-SELECTOR   AGE   POLICY-TYPES   SELECTED-PODS   DROPPED',
        'allow-80       app=b          AGE   Ingress        b,starting      <unknown>',
        'default-deny   <none>         AGE   Ingress        b,starting      <unknown>',
      ),
    );
    const all = await cluster.run(['get', 'netpol', '-A', '-o', 'wide']);
    assert.equal(all.code, 0, all.stderr);
    const rows = all.stdout.split('\n').map((row) => row.split(/ {2,}/));
    const row = (ns: string, name: string): string[] | undefined =>
      rows.find((r) => r[0] === ns && r[1] === name);
    assert.deepEqual(row('many', 'all')?.slice(4), [
      'Ingress,Egress',
      'p1,p2,p3,p4,p5 + 2 more...',
      '<unknown>',
    ]);
    assert.deepEqual(row('many', 'none')?.slice(4), ['Ingress', '<none>', '<unknown>']);
    assert.deepEqual(row('x', 'lockdown')?.slice(4), ['Egress', 'locked', '<unknown>']);
    // Named, and without -o wide kubectl's columns only.
    const named = await cluster.run(['get', 'netpol/lockdown', '-n', 'x', '-o', 'wide']);
    assert.match(named.stdout, /\nlockdown +app=locked +\S+ +Egress +locked +<unknown>\n$/);
    const narrow = await cluster.run(['get', 'netpol', '-n', 'x']);
    assert.match(narrow.stdout, /^NAME +POD-SELECTOR +AGE\n/);
  });

  it('explain: the report, exit 0 when allowed and 1 when denied', async () => {
    const allowed = await cluster.run(['explain', 'x/a', 'y/b:80']);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(
      allowed.stdout,
      lines(
        'x/a (10.244.1.5, node n1) -> y/b (10.244.2.7, node n2) TCP/80: ALLOWED',
        '',
        'NetworkPolicy (kernel, nftables):',
        '  egress  from x/a: allowed — x/a is not isolated for egress (no policy selects it with Egress)',
        '  ingress to y/b:   allowed by y/allow-80 ingress[0]',
      ),
    );
    const denied = await cluster.run(['explain', '-n', 'x', 'a', 'y/b:81']);
    assert.equal(denied.code, 1);
    assert.match(denied.stdout, /^x\/a \(10\.244\.1\.5, node n1\) -> y\/b .* TCP\/81: DENIED\n/);
    const json = await cluster.run(['explain', '10.244.1.5', '10.244.2.7:81/tcp', '-o', 'json']);
    assert.equal(json.code, 1);
    const parsed = JSON.parse(json.stdout) as {
      to: { pod: string };
      decision: { verdict: string };
    };
    assert.equal(parsed.to.pod, 'y/b');
    assert.equal(parsed.decision.verdict, 'deny');
  });

  it('explain: a missing pod or cluster is a failure, exit 3', async () => {
    const missing = await cluster.run(['explain', 'x/a', 'y/nope:80']);
    assert.equal(missing.code, 3);
    assert.equal(missing.stderr, 'error: pod y/nope not found (no pod "nope" in namespace "y")\n');
    const down = await strata(['explain', 'x/a', 'y/b:80', '--state-dir', '/nonexistent/strata']);
    assert.equal(down.code, 3);
    assert.match(down.stderr, /^error: no cluster .* is up/);
  });
});
