// Services and cluster DNS end to end on one real cluster (`strata up --nodes 2`),
// with real clients run in a client pod's network namespace (`ip netns exec`, which
// also gives them the pod's resolv.conf): curl, dig, and a request stream in Node.
// The server pods run test/support/service-server.js (answers with the pod's name).
//
// What each test holds strata to, after upstream:
// 1. A ClusterIP Service is reachable by its DNS names from a pod, with the pod's
//    search path (`<ns>.svc.cluster.local svc.cluster.local cluster.local`,
//    kubelet's ClusterFirst), and by its cluster IP, with every endpoint on the
//    other node (kubernetes.io/docs/concepts/services-networking/dns-pod-service/;
//    e2e test/e2e/network/dns.go "should provide DNS for services").
// 2. DNS records of the Kubernetes DNS-based service discovery specification
//    (github.com/kubernetes/dns/blob/master/docs/specification.md, 2.3): A for the
//    cluster IP, SRV `_<port>._<proto>` with the port and the service name, PTR for
//    the cluster IP, NXDOMAIN for an unknown name in the zone, over UDP and TCP.
// 3. Headless Services (spec 2.4): A records are the ready endpoints' addresses (a
//    pod failing its readiness probe is not one: EndpointSlice conditions.ready),
//    one SRV record per ready endpoint, each target resolving to its pod.
// 4. NodePort (services-networking/service/#type-nodeport): a port from the
//    default range 30000-32767, answering on every node's address, from outside
//    the cluster and from another node, also on a node without an endpoint
//    (externalTrafficPolicy Cluster; kube-proxy masquerades so replies return).
// 5. sessionAffinity ClientIP (service/#session-stickiness): every connection of
//    one client goes to one endpoint; without it connections spread.
// 6. Scaling under load loses no request when pods behave as upstream asks
//    (readiness probe; keep serving for a while after SIGTERM, "pod termination"
//    in pods/pod-lifecycle/): new endpoints get traffic only once ready, and
//    terminating ones are withdrawn from new connections before they stop.
// 7. kube-proxy rejects connections to a Service port without endpoints, and to a
//    port the cluster IP does not serve, at once (TCP reset: "Connection refused"; ICMP
//    port unreachable for UDP), rather than letting them time out (pkg/proxy/nftables:
//    no-endpoint-services, cluster-ips-check).
// 8. A deleted Service stops answering: no more DNAT, and NXDOMAIN for its name.
// 9. The API server refuses invalid Services with the field path
//    (ValidateService; IP and node port allocators) and stores nothing.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { resourceForKind } from '../../src/api/registry.js';
import type { KubeObject, ResourceType } from '../../src/api/types.js';
import { isNotFound } from '../../src/client/index.js';
import { formatIp, parsePrefix } from '../../src/netaddr/ip.js';
import { type Pod, podResource } from '../support/agent-cluster.js';
import { clusterSkipReason } from '../support/cluster.js';
import { LiveCluster, deploymentResource, isRunning } from '../support/live-cluster.js';
import { uniqueName } from '../support/netns.js';

const here = dirname(fileURLToPath(import.meta.url));
const serverScript = join(here, '..', 'support', 'service-server.js');
const clientScript = join(here, '..', 'support', 'service-client.js');

const serviceResource = resourceForKind('v1', 'Service') as ResourceType;
const sliceResource = resourceForKind('discovery.k8s.io/v1', 'EndpointSlice') as ResourceType;

const ns = uniqueName('svc');
const zone = 'cluster.local';
const fqdn = (service: string): string => `${service}.${ns}.svc.${zone}`;
const clusterDns = '10.96.0.10';
const nodePortRange = { min: 30000, max: 32767 };

/** A child process's outcome, and how long it took. */
interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `ip netns exec <netns> args...`, without throwing; killed after `timeoutMs`. */
function inNetns(netns: string, args: readonly string[], timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('ip', ['netns', 'exec', netns, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      resolve({
        code: code ?? (signal === null ? 1 : 128),
        stdout,
        stderr,
        ms: performance.now() - started,
      });
    });
  });
}

/** One answer of `curl`: the pod that served it, and the connections curl opened for it. */
interface Answer {
  pod: string;
  connects: number;
}

/**
 * curl of every URL in turn from `netns`, in one process; each request is a
 * new connection (the server closes each). Throws unless every one is answered.
 */
async function curl(netns: string, urls: readonly string[], maxTime = 3): Promise<Answer[]> {
  const run = await inNetns(netns, [
    'curl', '-sS', '--max-time', String(maxTime), '-w', '\t%{num_connects}\n', ...urls,
  ]); // prettier-ignore
  const answers = run.stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line): Answer => {
      const [pod = '', connects = ''] = line.split('\t');
      return { pod, connects: Number(connects) };
    });
  if (run.code !== 0 || answers.length !== urls.length || answers.some((a) => a.pod === '')) {
    throw new Error(`curl from ${netns} (exit ${run.code}): ${run.stderr.trim()}\n${run.stdout}`);
  }
  return answers;
}

/** dig from `netns`, through its resolv.conf (the cluster DNS); its whole output. */
async function dig(netns: string, ...args: string[]): Promise<string> {
  const run = await inNetns(netns, ['dig', '+time=2', '+tries=2', ...args]);
  if (run.code !== 0) throw new Error(`dig ${args.join(' ')} (exit ${run.code}): ${run.stderr}`);
  return run.stdout;
}

/** `dig +short` lines, sorted. */
async function digShort(netns: string, ...args: string[]): Promise<string[]> {
  const out = await dig(netns, '+short', ...args);
  return out
    .split('\n')
    .filter((line) => line !== '')
    .sort();
}

/** The first port's nodePort. */
function nodePortOf(object: KubeObject): number {
  const ports = object.spec?.ports as { nodePort?: number }[] | undefined;
  return Number(ports?.[0]?.nodePort);
}

/** The status in dig's header: NOERROR, NXDOMAIN... */
function digStatus(output: string): string | undefined {
  return /status: ([A-Z]+)/.exec(output)?.[1];
}

const podEnv = [
  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
];

/** A pod spec running service-server.js on 8080 (port `http`) with a readiness probe. */
function serverPodSpec(
  options: { node?: string; env?: { name: string; value: string }[] } = {},
): Record<string, unknown> {
  return {
    ...(options.node ? { nodeSelector: { 'kubernetes.io/hostname': options.node } } : {}),
    // Longer than the server's drain after SIGTERM (2.5 s), as a preStop sleep needs.
    terminationGracePeriodSeconds: 10,
    containers: [
      {
        name: 'serve',
        image: 'node',
        command: [process.execPath, serverScript],
        env: [...podEnv, ...(options.env ?? [])],
        ports: [{ name: 'http', containerPort: 8080 }],
        readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
      },
    ],
  };
}

function deployment(
  name: string,
  replicas: number,
  labels: Record<string, string>,
  node?: string,
): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: {
      replicas,
      selector: { matchLabels: { app: labels.app ?? name } },
      template: { metadata: { labels }, spec: serverPodSpec({ node }) },
    },
  };
}

function service(name: string, spec: Record<string, unknown>): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: { ports: [{ name: 'http', port: 80, targetPort: 'http' }], ...spec },
  };
}

/** What the cluster starts with; the tests add and remove the rest. */
function manifests(): KubeObject[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
    // Every endpoint of `web` on node-2; the client on node-1.
    deployment('web', 3, { app: 'web', tier: 'backend' }, 'node-2'),
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'client', namespace: ns, labels: { app: 'client' } },
      spec: serverPodSpec({ node: 'node-1' }),
    },
    // Selected by the headless Service with web's pods, never ready.
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'unready', namespace: ns, labels: { tier: 'backend' } },
      spec: serverPodSpec({ env: [{ name: 'READY', value: 'false' }] }),
    },
    deployment('scaled', 2, { app: 'scaled' }),
    service('web', { selector: { app: 'web' } }),
    service('web-headless', {
      clusterIP: 'None',
      selector: { tier: 'backend' },
      ports: [{ name: 'http', port: 80, targetPort: 8080 }],
    }),
    service('web-nodeport', { type: 'NodePort', selector: { app: 'web' } }),
    service('web-sticky', { selector: { app: 'web' }, sessionAffinity: 'ClientIP' }),
    service('nobody', {
      selector: { app: 'nobody' },
      ports: [
        { name: 'http', port: 80, targetPort: 'http' },
        { name: 'dns', port: 53, protocol: 'UDP' },
      ],
    }),
    service('scaled', { selector: { app: 'scaled' } }),
  ];
}

/** YAML documents as kubectl reads them (YAML 1.1). */
function yaml(objects: readonly KubeObject[]): string {
  return objects.map((object) => stringify(object, { version: '1.1' })).join('---\n');
}

describe('Services and cluster DNS', { skip: clusterSkipReason() }, () => {
  let live: LiveCluster | undefined;
  /** The client pod's network namespace (on node-1). */
  let client = '';
  const cluster = (): LiveCluster => {
    if (!live) throw new Error('The cluster is not up');
    return live;
  };

  async function podsOf(labels: Record<string, string>): Promise<Pod[]> {
    const list = await cluster().client.list<Pod>(podResource, {
      namespace: ns,
      labelSelector: labels,
    });
    return list.items;
  }

  async function getService(name: string): Promise<KubeObject> {
    return cluster().client.get(serviceResource, name, { namespace: ns });
  }

  async function clusterIp(name: string): Promise<string> {
    return String((await getService(name)).spec?.clusterIP);
  }

  /** Every endpoint in the Service's EndpointSlices: its first address and its ready condition. */
  async function sliceEndpoints(name: string): Promise<{ address: string; ready: boolean }[]> {
    const slices = await cluster().client.list(sliceResource, {
      namespace: ns,
      labelSelector: { 'kubernetes.io/service-name': name },
    });
    return slices.items
      .flatMap((slice) => (slice.endpoints ?? []) as KubeObject[])
      .map((e) => ({
        address: String((e.addresses as string[] | undefined)?.[0]),
        // An unset ready condition means ready (the EndpointSlice API's rule).
        ready: (e.conditions as { ready?: boolean } | undefined)?.ready !== false,
      }));
  }

  /** The ready endpoints' addresses in the Service's EndpointSlices, sorted. */
  async function readyEndpoints(name: string): Promise<string[]> {
    return (await sliceEndpoints(name))
      .filter((e) => e.ready)
      .map((e) => e.address)
      .sort();
  }

  const isReady = (pod: Pod): boolean =>
    isRunning(pod) &&
    (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

  /** Waits until the Deployment's app has exactly `replicas` pods, all ready, none terminating, and the Service's slices list exactly their addresses. */
  async function waitForReadyPods(
    app: string,
    replicas: number,
    timeoutMs = 30_000,
  ): Promise<Pod[]> {
    return cluster().waitFor(
      `${replicas} ready pods of ${app}, and exactly them as ready endpoints`,
      async () => {
        const pods = await podsOf({ app });
        if (pods.length !== replicas || !pods.every(isReady)) return undefined;
        const ips = pods.map((p) => p.status?.podIP ?? '').sort();
        const endpoints = await readyEndpoints(app);
        return JSON.stringify(endpoints) === JSON.stringify(ips) ? pods : undefined;
      },
      timeoutMs,
    );
  }

  /** curl until it answers (the rules reach the kernel a little after the API changes). */
  function untilAnswered(netns: string, url: string): Promise<Answer[]> {
    return cluster().waitFor(
      `an answer from ${url} in ${netns}`,
      () => curl(netns, [url], 1),
      15_000,
    );
  }

  before(async () => {
    live = LiveCluster.create();
    await live.up(2);
    const applied = await live.run(['apply', '-f', '-'], yaml(manifests()));
    assert.equal(applied.code, 0, `strata apply: ${applied.stdout}${applied.stderr}`);
    await Promise.all([waitForReadyPods('web', 3), waitForReadyPods('scaled', 2)]);
    const [clientPod, unready] = await live.waitFor(
      'the client and unready pods running',
      async () => {
        const pods = await Promise.all(
          ['client', 'unready'].map((name) =>
            cluster().client.get<Pod>(podResource, name, { namespace: ns }),
          ),
        );
        return pods.every(isRunning) ? pods : undefined;
      },
    );
    assert.ok(clientPod && unready);
    client = live.podNetns(clientPod);
  });

  after(async () => {
    if (live) assert.deepEqual(await live.down(), [], 'nothing of the cluster is left');
  });

  it('reaches a Service on the other node by its full name, short names and cluster IP', async () => {
    const clientPod = await cluster().client.get<Pod>(podResource, 'client', { namespace: ns });
    const web = await podsOf({ app: 'web' });
    assert.equal(clientPod.spec?.nodeName, 'node-1', 'the client runs on node-1');
    assert.deepEqual(
      web.map((p) => p.spec?.nodeName),
      ['node-2', 'node-2', 'node-2'],
      'every endpoint of web is on node-2',
    );
    const webPods = new Set(web.map((p) => p.metadata.name));
    const ip = await clusterIp('web');
    const names = [fqdn('web'), 'web', `web.${ns}`, ip];
    await untilAnswered(client, `http://${fqdn('web')}/`);
    const served = new Set<string>();
    for (const name of names) {
      const answers = await curl(client, Array<string>(6).fill(`http://${name}/`));
      for (const { pod } of answers) {
        assert.ok(webPods.has(pod), `http://${name}/ answered by ${pod}, not a pod of web`);
        served.add(pod);
      }
    }
    assert.ok(served.size > 1, `24 connections spread over web's pods: ${[...served].join(' ')}`);
  });

  it('answers A, SRV and PTR for a Service, NXDOMAIN for an unknown one, over UDP and TCP', async () => {
    const ip = await clusterIp('web');
    const out = await dig(client, fqdn('web'), 'A');
    assert.match(
      out,
      new RegExp(`SERVER: ${clusterDns.replaceAll('.', '\\.')}#53`),
      'asked the cluster DNS',
    );
    assert.equal(digStatus(out), 'NOERROR');
    assert.deepEqual(await digShort(client, fqdn('web'), 'A'), [ip]);
    assert.deepEqual(await digShort(client, '+tcp', fqdn('web'), 'A'), [ip], 'over TCP');
    // `_<port name>._<protocol>.<service>...`: priority, weight, the service's port, its name.
    assert.deepEqual(await digShort(client, `_http._tcp.${fqdn('web')}`, 'SRV'), [
      `0 100 80 ${fqdn('web')}.`,
    ]);
    assert.deepEqual(await digShort(client, '-x', ip), [`${fqdn('web')}.`]);
    const unknown = await dig(client, fqdn('no-such-service'), 'A');
    assert.equal(digStatus(unknown), 'NXDOMAIN', unknown);
    const unknownTcp = await dig(client, '+tcp', fqdn('no-such-service'), 'A');
    assert.equal(digStatus(unknownTcp), 'NXDOMAIN', unknownTcp);
  });

  it('a headless Service resolves to its ready pods only, with one SRV record per pod', async () => {
    const unready = await cluster().client.get<Pod>(podResource, 'unready', { namespace: ns });
    const unreadyIp = unready.status?.podIP ?? '';
    assert.ok(
      (unready.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'False'),
      'the unready pod fails its readiness probe',
    );
    // The slice lists it, not ready: leaving it out is the DNS server's doing.
    assert.deepEqual(
      (await sliceEndpoints('web-headless')).filter((e) => e.address === unreadyIp),
      [{ address: unreadyIp, ready: false }],
      "the headless Service's slice lists the unready pod as not ready",
    );
    const webIps = (await podsOf({ app: 'web' })).map((p) => p.status?.podIP ?? '').sort();
    const addresses = await cluster().waitFor('the headless A records', async () => {
      const answer = await digShort(client, fqdn('web-headless'), 'A');
      return answer.length === webIps.length ? answer : undefined;
    });
    assert.deepEqual(addresses, webIps, 'A: the ready pods');
    assert.ok(!addresses.includes(unreadyIp), `not the unready pod's ${unreadyIp}`);
    // Endpoints without a hostname are named by their address: 10-244-1-5.<service>...
    const srv = await digShort(client, `_http._tcp.${fqdn('web-headless')}`, 'SRV');
    const targets = srv.map((line) => {
      const [priority, , port, target = ''] = line.split(' ');
      assert.equal(priority, '0', line);
      assert.equal(port, '8080', `the endpoint's port: ${line}`);
      return target;
    });
    assert.deepEqual(
      targets.sort(),
      webIps.map((ip) => `${ip.replaceAll('.', '-')}.${fqdn('web-headless')}.`).sort(),
      'one SRV target per ready pod',
    );
    const resolved = await dig(client, '+short', ...targets.flatMap((t) => [t, 'A']));
    assert.deepEqual(resolved.trim().split('\n').sort(), webIps, 'each target is its pod');
  });

  it('a NodePort Service answers on both nodes, from outside the cluster and from a node', async () => {
    const nodePort = nodePortOf(await getService('web-nodeport'));
    assert.ok(
      nodePort >= nodePortRange.min && nodePort <= nodePortRange.max,
      `nodePort ${nodePort} in ${nodePortRange.min}-${nodePortRange.max}`,
    );
    const record = cluster().record();
    const [node1, node2] = record.nodes;
    assert.ok(node1 && node2);
    // An outside client: an address on the underlay's bridge, beside the nodes' eth0.
    const prefix = parsePrefix(record.underlayCidr);
    assert.ok(prefix);
    const outside = formatIp({ ...prefix.address, value: prefix.address.value + 250n });
    const underlay = record.underlay.netns;
    const added = await inNetns(underlay, [
      'ip', 'addr', 'add', `${outside}/${prefix.length}`, 'dev', record.underlay.bridge,
    ]); // prettier-ignore
    assert.equal(added.code, 0, added.stderr);
    const webPods = new Set((await podsOf({ app: 'web' })).map((p) => p.metadata.name));
    const cases: [string, string, string][] = [
      ['outside', underlay, node1.ip],
      ['outside', underlay, node2.ip],
      [node2.name, node2.netns, node1.ip],
      [node1.name, node1.netns, node2.ip],
    ];
    for (const [from, netns, nodeIp] of cases) {
      const url = `http://${nodeIp}:${nodePort}/`;
      await untilAnswered(netns, url);
      for (const { pod } of await curl(netns, Array<string>(4).fill(url))) {
        assert.ok(webPods.has(pod), `${from} → ${nodeIp}:${nodePort} answered by ${pod}`);
      }
    }
  });

  it('sessionAffinity ClientIP keeps a client on one endpoint; without it connections spread', async () => {
    assert.equal((await readyEndpoints('web-sticky')).length, 3, 'three endpoints to choose from');
    const sticky = `http://${await clusterIp('web-sticky')}/`;
    const plain = `http://${await clusterIp('web')}/`;
    await untilAnswered(client, sticky);
    const stuck = await curl(client, Array<string>(20).fill(sticky));
    assert.ok(
      stuck.every((a) => a.connects === 1),
      'each request a new connection',
    );
    assert.equal(
      new Set(stuck.map((a) => a.pod)).size,
      1,
      `one endpoint: ${stuck.map((a) => a.pod).join(' ')}`,
    );
    const spread = await curl(client, Array<string>(20).fill(plain));
    assert.ok(
      spread.every((a) => a.connects === 1),
      'each request a new connection',
    );
    assert.ok(
      new Set(spread.map((a) => a.pod)).size > 1,
      `more than one endpoint: ${spread.map((a) => a.pod).join(' ')}`,
    );
  });

  // The stream goes to the cluster IP, so a failure is the data path's, not DNS's. Both
  // halves of the server's good behaviour matter: with the readiness probe removed, or
  // with the server exiting at SIGTERM, runs of this test see ECONNREFUSED (a pod
  // given connections before it listens; a pod gone before every node has withdrawn it).
  it('scaling 2 → 5 → 2 under a steady stream of new connections loses no request', async (t) => {
    const url = `http://${await clusterIp('scaled')}/`;
    await untilAnswered(client, url);
    const first = new Set((await podsOf({ app: 'scaled' })).map((p) => p.metadata.name ?? ''));
    const stream: ChildProcessWithoutNullStreams = spawn(
      'ip',
      ['netns', 'exec', client, process.execPath, clientScript, url, '40', '2000'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    /** One request of the stream; `seen`: when its line arrived, in ms since `started`. */
    interface Outcome {
      at: number;
      ok: boolean;
      pod?: string;
      error?: string;
      ms: number;
      seen: number;
    }
    const started = performance.now();
    const now = (): number => Math.round(performance.now() - started);
    const outcomes: Outcome[] = [];
    let stderr = '';
    stream.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    createInterface({ input: stream.stdout }).on('line', (line) => {
      outcomes.push({ ...(JSON.parse(line) as Omit<Outcome, 'seen'>), seen: now() });
    });
    const exited = new Promise<number | null>((resolve) => stream.once('exit', resolve));
    const marks = new Map<string, number>();
    const mark = (what: string): void => {
      marks.set(what, now());
    };
    const servedBy = (): Set<string> =>
      new Set(outcomes.filter((o) => o.ok).map((o) => o.pod ?? ''));
    const scale = (replicas: number) =>
      cluster().client.patch(
        deploymentResource,
        'scaled',
        { spec: { replicas } },
        { namespace: ns },
      );
    let last: Pod[] | undefined;
    try {
      await cluster().waitFor('the stream to get answers', () =>
        outcomes.filter((o) => o.ok).length >= 20 ? true : undefined,
      );
      mark('scale to 5');
      await scale(5);
      const five = await waitForReadyPods('scaled', 5);
      mark('5 ready endpoints');
      // Every new pod must have served before the scale-down, or the claim is weak.
      await cluster().waitFor('every one of the 5 pods to serve the stream', () => {
        const served = servedBy();
        return five.every((p) => served.has(p.metadata.name ?? '')) ? true : undefined;
      });
      mark('all 5 served; scale to 2');
      await scale(2);
      await cluster().waitFor(
        '2 pods of scaled left, the others gone from the API',
        async () => ((await podsOf({ app: 'scaled' })).length === 2 ? true : undefined),
        30_000,
      );
      last = await waitForReadyPods('scaled', 2);
      mark('2 pods left');
      // A little more of the stream on the final endpoints.
      const count = outcomes.length;
      await cluster().waitFor('20 more requests', () =>
        outcomes.length >= count + 20 ? true : undefined,
      );
    } finally {
      stream.stdin.end();
      const killer = setTimeout(() => stream.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    const failures = outcomes.filter((o) => !o.ok);
    const served = servedBy();
    const slowest = Math.max(...outcomes.map((o) => o.ms));
    const at = (what: string): number => marks.get(what) ?? NaN;
    const between = (from: number, to: number): number =>
      outcomes.filter((o) => o.seen >= from && o.seen <= to).length;
    const scaleUp = between(at('scale to 5'), at('all 5 served; scale to 2'));
    const scaleDown = between(at('all 5 served; scale to 2'), at('2 pods left'));
    const kept = new Set((last ?? []).map((p) => p.metadata.name ?? ''));
    const added = [...served].filter((pod) => !first.has(pod));
    const removed = [...served].filter((pod) => !kept.has(pod));
    const timeline = [...marks].map(([what, ms]) => `${ms} ms: ${what}`).join('; ');
    const firstServed = (pod: string): number =>
      Math.min(...outcomes.filter((o) => o.pod === pod).map((o) => o.seen));
    const lastServed = (pod: string): number =>
      Math.max(...outcomes.filter((o) => o.pod === pod).map((o) => o.seen));
    const summary =
      `${outcomes.length} requests (${scaleUp} while scaling up, ${scaleDown} while scaling down), ` +
      `${failures.length} failed, ${served.size} pods served, slowest ${slowest} ms`;
    t.diagnostic(summary);
    t.diagnostic(timeline);
    t.diagnostic(
      `added pods first served at ${added.map((pod) => `${firstServed(pod)} ms`).join(', ')}; ` +
        `removed pods last served at ${removed.map((pod) => `${lastServed(pod)} ms`).join(', ')}`,
    );
    assert.equal(stderr, '', 'the client reports no error of its own');
    assert.equal(served.size, 5, `the 2 first and 3 added pods served: ${[...served].join(' ')}`);
    // The stream ran through both changes (40 requests a second).
    assert.ok(scaleUp >= 20 && scaleDown >= 40, summary);
    assert.deepEqual(failures.slice(0, 20), [], `${summary}\n${timeline}\n${cluster().logs(1500)}`);
  });

  it('refuses connections at once to a Service without endpoints (TCP and UDP) and to a port it does not serve', async () => {
    const cases: [string, string][] = [
      ['no endpoints', `http://${await clusterIp('nobody')}/`],
      ['a port web does not serve', `http://${await clusterIp('web')}:81/`],
    ];
    for (const [what, url] of cases) {
      // Until its rules are in, a cluster IP does not refuse.
      await cluster().waitFor(`${what}: refused`, async () => {
        const run = await inNetns(client, ['curl', '-sS', '--max-time', '1', url]);
        return run.code === 7 ? true : undefined;
      });
      const run = await inNetns(client, [
        'curl', '-sSv', '--max-time', '5', '-o', '/dev/null', '-w', '%{time_total}', url,
      ]); // prettier-ignore
      assert.equal(run.code, 7, `${what}: curl exits 7 (could not connect): ${run.stderr}`);
      // curl -v names the errno: ECONNREFUSED is the TCP reset (an ICMP error would be EHOSTUNREACH).
      assert.match(run.stderr, /connect to \S+ port \d+ failed: Connection refused/, what);
      const seconds = Number(run.stdout);
      assert.ok(seconds < 0.5, `${what}: refused after ${seconds} s by curl's clock`);
      assert.ok(run.ms < 1000, `${what}: curl ran ${Math.round(run.ms)} ms`);
    }
    // UDP has no reset: the answer is ICMP port unreachable, which dig reports as refused.
    const udp = await inNetns(client, [
      'dig', `@${await clusterIp('nobody')}`, '+tries=1', '+time=3', fqdn('web'),
    ]); // prettier-ignore
    assert.match(udp.stdout, /communications error to \S+: connection refused/, udp.stdout);
    assert.ok(udp.ms < 1000, `UDP without endpoints: dig ran ${Math.round(udp.ms)} ms`);
  });

  it('a deleted Service stops answering, and its name no longer resolves', async (t) => {
    const applied = await cluster().run(
      ['apply', '-f', '-'],
      yaml([service('doomed', { selector: { app: 'web' } })]),
    );
    assert.equal(applied.code, 0, applied.stderr);
    const ip = await clusterIp('doomed');
    const url = `http://${ip}/`;
    await untilAnswered(client, url);
    await cluster().waitFor('doomed in DNS', async () =>
      (await digShort(client, fqdn('doomed'), 'A')).join() === ip ? true : undefined,
    );
    const deleted = await cluster().run(['delete', 'svc', 'doomed', '-n', ns]);
    assert.equal(deleted.code, 0, deleted.stderr);
    const started = performance.now();
    const elapsed = (): number => Math.round(performance.now() - started);
    const [unanswered, nxdomain] = await Promise.all([
      cluster().waitFor(
        'the deleted Service to stop answering',
        async () => {
          const run = await inNetns(client, ['curl', '-sS', '--max-time', '1', url]);
          return run.code !== 0 ? { run, ms: elapsed() } : undefined;
        },
        10_000,
      ),
      cluster().waitFor(
        'the deleted Service to stop resolving',
        async () =>
          digStatus(await dig(client, fqdn('doomed'), 'A')) === 'NXDOMAIN' ? elapsed() : undefined,
        10_000,
      ),
    ]);
    t.diagnostic(
      `no answer after ${unanswered.ms} ms (curl exit ${unanswered.run.code}), NXDOMAIN after ${nxdomain} ms`,
    );
    // Refused (7) or not answered (28: upstream drops packets to unallocated cluster IPs).
    assert.ok(
      [7, 28].includes(unanswered.run.code),
      `curl exit ${unanswered.run.code}: ${unanswered.run.stderr}`,
    );
    const again = await inNetns(client, ['curl', '-sS', '--max-time', '1', url]);
    assert.notEqual(again.code, 0, `still no answer: ${again.stdout}`);
    await assert.rejects(getService('doomed'), isNotFound);
  });

  it('refuses invalid Services with the field path and stores none of them', async () => {
    const taken = nodePortOf(await getService('web-nodeport'));
    // [what, the Service, the field path, upstream's words for the problem]
    const bad: [string, KubeObject, string, string][] = [
      [
        'port 70000',
        service('bad-port', { selector: { app: 'web' }, ports: [{ name: 'http', port: 70000 }] }),
        'spec.ports[0].port',
        'must be between 1 and 65535, inclusive',
      ],
      [
        'duplicate port names',
        service('bad-names', {
          selector: { app: 'web' },
          ports: [
            { name: 'http', port: 80 },
            { name: 'http', port: 81 },
          ],
        }),
        'spec.ports[1].name',
        'Duplicate value',
      ],
      [
        'a cluster IP outside the service CIDR',
        service('bad-ip', { selector: { app: 'web' }, clusterIP: '10.97.0.5' }),
        'spec.clusterIP',
        'is not in the valid range. The range of valid IPs is 10.96.0.0/16',
      ],
      [
        'a nodePort already taken',
        service('bad-nodeport', {
          type: 'NodePort',
          selector: { app: 'web' },
          ports: [{ name: 'http', port: 80, nodePort: taken }],
        }),
        'spec.ports[0].nodePort',
        'provided port is already allocated',
      ],
    ];
    for (const [what, object, field, problem] of bad) {
      const run = await cluster().run(['apply', '-f', '-'], yaml([object]));
      assert.notEqual(run.code, 0, `${what}: refused`);
      assert.ok(run.stderr.includes(field), `${what}: names ${field}:\n${run.stderr}`);
      assert.ok(run.stderr.includes(problem), `${what}: says "${problem}":\n${run.stderr}`);
      await assert.rejects(
        getService(object.metadata.name ?? ''),
        isNotFound,
        `${what}: not stored`,
      );
    }
    const kept = nodePortOf(await getService('web-nodeport'));
    assert.equal(kept, taken, 'web-nodeport keeps its nodePort');
  });
});
