/**
 * The NetworkPolicy truth table's world on a real cluster, as upstream's
 * netpol e2e builds it (kubernetes test/e2e/network/netpol: kubemanager.go,
 * probe.go): namespaces x, y, z with pods a, b, c each, every pod serving
 * TCP and UDP on 80 and 81 (policy-server.ts), and probing of every ordered
 * pair on every port with real connections, one prober process per source
 * pod inside its network namespace (policy-prober.ts), all at once.
 *
 * Policies go in with `strata apply -f -` and `strata delete`, as a user
 * sends them; the lab keeps what it sent, and the pods' and namespaces'
 * labels, as the World the reference evaluator judges (policy-matrix.ts).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { resourceForKind } from '../../src/api/registry.js';
import type { ResourceType } from '../../src/api/types.js';
import { isNotFound } from '../../src/client/index.js';
import { type Pod, nodeResource, podResource } from './agent-cluster.js';
import { type LiveCluster, isRunning } from './live-cluster.js';
import {
  type ContainerPort,
  type NetworkPolicy,
  type ProbePort,
  Reachability,
  type World,
  type WorldNamespace,
  type WorldPod,
  podKey,
  portLabel,
  probePorts,
  renderComparison,
  servedPorts,
} from './policy-matrix.js';
import type { ProbeOutcome, ProbeRequest, ProbeTarget } from './policy-prober.js';

const here = dirname(fileURLToPath(import.meta.url));
const serverScript = join(here, 'policy-server.js');
const proberScript = join(here, 'policy-prober.js');

export const policyResource = resourceForKind(
  'networking.k8s.io/v1',
  'NetworkPolicy',
) as ResourceType;
const namespaceResource = resourceForKind('v1', 'Namespace') as ResourceType;

/** The namespace label the control plane sets on every namespace (documented, immutable). */
export const namespaceNameLabel = 'kubernetes.io/metadata.name';

/** How long a probe waits for its answer: a denied one takes this long (packets are dropped). */
export const probeTimeoutMs = 1000;

/** How long enforcement may take to reach the kernel after a change. */
export const enforcementTimeoutMs = 10_000;

/** Probes listed by name under a differing grid, at most. */
const detailLines = 12;

/** A round's answer for one port: who reached whom, and each probe's outcome. */
export interface Observation {
  port: ProbePort;
  reachability: Reachability;
  /** By `from>to`. */
  outcomes: Map<string, ProbeOutcome>;
}

type Labels = Record<string, string>;

function sameLabels(a: Labels, b: Labels): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((key) => a[key] === b[key]);
}

/** A merge patch turning labels `from` into `to` (null removes a key). */
function labelPatch(
  from: Labels,
  to: Labels,
): { metadata: { labels: Record<string, string | null> } } {
  const labels: Record<string, string | null> = { ...to };
  for (const key of Object.keys(from)) if (!(key in to)) labels[key] = null;
  return { metadata: { labels } };
}

/**
 * policy-prober.js running inside network namespace `netns` until closed
 * (or until this process ends: its stdin closes with it).
 */
class Prober {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #waiting: { resolve: (line: string) => void; reject: (error: Error) => void }[] = [];
  #stderr = '';
  #exit: string | undefined;

  constructor(readonly netns: string) {
    this.#child = spawn(
      'nsenter',
      [`--net=/var/run/netns/${netns}`, '--', process.execPath, proberScript],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    createInterface({ input: this.#child.stdout }).on('line', (line) => {
      this.#waiting.shift()?.resolve(line);
    });
    this.#child.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.#stderr += chunk));
    this.#child.stdin.on('error', () => {
      // The prober is gone; its exit rejects what waits.
    });
    this.#child.once('error', (error) => {
      this.#failAll(error.message);
    });
    this.#child.once('exit', (code, signal) => {
      this.#failAll(`exit ${code ?? signal ?? '?'}`);
    });
  }

  #failAll(why: string): void {
    this.#exit ??= why;
    const error = new Error(`Prober in ${this.netns} stopped (${why}): ${this.#stderr}`);
    for (const waiting of this.#waiting.splice(0)) waiting.reject(error);
  }

  /** Makes every probe of `targets` at once; resolves to their outcomes. */
  probe(targets: ProbeTarget[], timeoutMs = probeTimeoutMs): Promise<ProbeOutcome[]> {
    const request: ProbeRequest = { timeoutMs, targets };
    return new Promise((resolve, reject) => {
      if (this.#exit !== undefined) {
        reject(new Error(`Prober in ${this.netns} stopped (${this.#exit}): ${this.#stderr}`));
        return;
      }
      const watchdog = setTimeout(() => this.#child.kill('SIGKILL'), timeoutMs + 20_000);
      this.#waiting.push({
        resolve: (line) => {
          clearTimeout(watchdog);
          resolve(JSON.parse(line) as ProbeOutcome[]);
        },
        reject: (error) => {
          clearTimeout(watchdog);
          reject(error);
        },
      });
      this.#child.stdin.write(`${JSON.stringify(request)}\n`);
    });
  }

  close(): void {
    this.#child.stdin.end();
    if (this.#exit === undefined) this.#child.kill('SIGTERM');
  }
}

/** The truth table's cluster state, and the means to change and probe it. */
export class PolicyLab {
  readonly world: World = { namespaces: [], pods: [] };
  /** What the test sent, by `namespace/name`: what the evaluator judges. */
  readonly policies = new Map<string, NetworkPolicy>();
  readonly #original = new Map<string, Labels>();
  readonly #pods = new Map<string, Pod>();
  /** The pods setUp made; reset removes any other. */
  readonly #initialPods = new Set<string>();
  readonly #probers = new Map<string, Prober>();
  /** The container ports each pod was made with, by `namespace/name`. */
  readonly #declaredPorts = new Map<string, ContainerPort[]>();
  #round = 0;

  constructor(readonly cluster: LiveCluster) {}

  get client(): LiveCluster['client'] {
    return this.cluster.client;
  }

  /** Namespaces `namespaces`, each with pods `pods` (label `pod=<name>`), all running. */
  async setUp(namespaces: readonly string[], pods: readonly string[]): Promise<void> {
    for (const name of namespaces) {
      const labels = { ns: name, [namespaceNameLabel]: name };
      await this.client.create({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name, labels: { ns: name } },
      });
      this.world.namespaces.push({ name, labels });
      this.#original.set(`namespace ${name}`, labels);
    }
    await Promise.all(
      namespaces.flatMap((namespace) => pods.map((name) => this.#createPod(namespace, name))),
    );
    const keys = namespaces.flatMap((ns) => pods.map((name) => `${ns}/${name}`));
    await this.#waitForPods(keys);
    for (const key of keys) this.#initialPods.add(key);
  }

  /** A pod of the world: `x/a`. */
  pod(key: string): WorldPod {
    const pod = this.world.pods.find((p) => podKey(p) === key);
    if (!pod) throw new Error(`No pod ${key} in the truth table's world`);
    return pod;
  }

  /** The pod's own object from the API, as last read (for its uid and network namespace). */
  apiPod(key: string): Pod {
    const pod = this.#pods.get(key);
    if (!pod) throw new Error(`Pod ${key} was not read from the API`);
    return pod;
  }

  namespace(name: string): WorldNamespace {
    const found = this.world.namespaces.find((ns) => ns.name === name);
    if (!found) throw new Error(`No namespace ${name} in the truth table's world`);
    return found;
  }

  /** A Node's spec.podCIDR. */
  async podCidr(node: string): Promise<string> {
    const object = await this.client.get(nodeResource, node);
    return String(object.spec?.podCIDR);
  }

  /**
   * Creates pod `namespace/name` now and waits until it runs. `ports`: the
   * container ports it declares (what named ports resolve to); it serves
   * 80 and 81 whatever they say.
   */
  async addPod(namespace: string, name: string, ports = servedPorts()): Promise<void> {
    await this.#createPod(namespace, name, ports);
    await this.#waitForPods([`${namespace}/${name}`]);
  }

  async #createPod(
    namespace: string,
    name: string,
    ports: ContainerPort[] = servedPorts(),
  ): Promise<void> {
    const labels = { pod: name };
    await this.client.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace, labels },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: 'serve',
            image: 'node',
            command: [process.execPath, serverScript],
            env: [
              { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
              {
                name: 'POD_NAMESPACE',
                valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } },
              },
            ],
            ports,
          },
        ],
      },
    });
    this.#original.set(`pod ${namespace}/${name}`, labels);
    this.#declaredPorts.set(`${namespace}/${name}`, ports);
  }

  async #waitForPods(keys: string[]): Promise<void> {
    const running = await this.cluster.waitFor(
      `pods ${keys.join(' ')} running`,
      async () => {
        const found = await Promise.all(
          keys.map((key) => {
            const [namespace = '', name = ''] = key.split('/');
            return this.client.get<Pod>(podResource, name, { namespace });
          }),
        );
        return found.every(isRunning) ? found : undefined;
      },
      60_000,
    );
    for (const pod of running) {
      const { namespace = '', name = '', labels = {} } = pod.metadata;
      const key = `${namespace}/${name}`;
      this.#pods.set(key, pod);
      this.world.pods = this.world.pods.filter((p) => podKey(p) !== key);
      this.world.pods.push({
        namespace,
        name,
        labels: { ...labels },
        ip: pod.status?.podIP ?? '',
        node: String(pod.spec?.nodeName),
        ports: this.#declaredPorts.get(key) ?? [],
      });
    }
    this.world.pods.sort((a, b) => podKey(a).localeCompare(podKey(b)));
  }

  /** Every pod on every probe port; UDP probes get source ports from `sourcePortBase` on. */
  probeTargets(sourcePortBase: number): ProbeTarget[] {
    return this.world.pods.flatMap((to, i) =>
      probePorts.map((port, j): ProbeTarget => ({
        key: `${podKey(to)}|${portLabel(port)}`,
        ip: to.ip,
        port: port.port,
        protocol: port.protocol,
        expect: podKey(to),
        sourcePort: port.protocol === 'UDP' ? sourcePortBase + i * 2 + (j % 2) : 0,
      })),
    );
  }

  /** `strata apply -f -` of the policies; the lab now judges with them. */
  async apply(...policies: NetworkPolicy[]): Promise<void> {
    // YAML 1.1 quoting, as kubectl reads YAML: unquoted `y` (namespace y) would be a boolean.
    const yaml = policies.map((policy) => stringify(policy, { version: '1.1' })).join('---\n');
    const run = await this.cluster.run(['apply', '-f', '-'], yaml);
    if (run.code !== 0) {
      throw new Error(`strata apply failed (${run.code}):\n${run.stdout}${run.stderr}\n${yaml}`);
    }
    for (const policy of policies) {
      this.policies.set(`${policy.metadata.namespace}/${policy.metadata.name}`, policy);
    }
  }

  /** `strata delete networkpolicy NAME -n NAMESPACE`. */
  async delete(namespace: string, name: string): Promise<void> {
    const run = await this.cluster.run(['delete', 'networkpolicy', name, '-n', namespace]);
    if (run.code !== 0) {
      throw new Error(`strata delete failed (${run.code}):\n${run.stdout}${run.stderr}`);
    }
    this.policies.delete(`${namespace}/${name}`);
  }

  /** Sets the pod's labels to exactly `labels` (a merge patch of metadata.labels). */
  async labelPod(key: string, labels: Labels): Promise<void> {
    const pod = this.pod(key);
    await this.client.patch(podResource, pod.name, labelPatch(pod.labels, labels), {
      namespace: pod.namespace,
    });
    pod.labels = { ...labels };
  }

  /** Sets the namespace's labels to exactly `labels` (the control plane's name label stays). */
  async labelNamespace(name: string, labels: Labels): Promise<void> {
    const namespace = this.namespace(name);
    const wanted = { ...labels, [namespaceNameLabel]: name };
    await this.client.patch(namespaceResource, name, labelPatch(namespace.labels, wanted));
    namespace.labels = wanted;
  }

  /**
   * Back to the start: no policies in the world's namespaces, every label as
   * made, pods added since gone; then waits until every probe connects again.
   */
  async reset(): Promise<void> {
    for (const { name: namespace } of this.world.namespaces) {
      const list = await this.client.list(policyResource, { namespace });
      for (const policy of list.items) {
        await this.client.delete(policyResource, policy.metadata.name ?? '', { namespace });
      }
    }
    this.policies.clear();
    for (const pod of this.world.pods) {
      if (!this.#initialPods.has(podKey(pod))) await this.removePod(podKey(pod));
    }
    for (const namespace of this.world.namespaces) {
      const original = this.#original.get(`namespace ${namespace.name}`) ?? {};
      if (!sameLabels(namespace.labels, original)) {
        await this.labelNamespace(namespace.name, original);
      }
    }
    for (const pod of [...this.world.pods]) {
      const key = podKey(pod);
      const original = this.#original.get(`pod ${key}`) ?? {};
      if (!sameLabels(pod.labels, original)) await this.labelPod(key, original);
    }
    await this.expectReachability('after reset (no policies)');
  }

  /** Deletes pod `key` at once and waits until the API no longer has it. */
  async removePod(key: string): Promise<void> {
    const pod = this.pod(key);
    await this.client.delete(podResource, pod.name, {
      namespace: pod.namespace,
      gracePeriodSeconds: 0,
    });
    await this.cluster.waitFor(`pod ${key} gone`, async () => {
      try {
        await this.client.get(podResource, pod.name, { namespace: pod.namespace });
        return undefined;
      } catch (error) {
        if (isNotFound(error)) return true;
        throw error;
      }
    });
    this.world.pods = this.world.pods.filter((p) => p !== pod);
    const netns = this.podNetns(key);
    this.#probers.get(netns)?.close();
    this.#probers.delete(netns);
    this.#pods.delete(key);
  }

  /** Probes from network namespace `netns` (its prober started on first use). */
  probeFrom(netns: string, targets: ProbeTarget[]): Promise<ProbeOutcome[]> {
    let prober = this.#probers.get(netns);
    if (!prober) {
      prober = new Prober(netns);
      this.#probers.set(netns, prober);
    }
    return prober.probe(targets);
  }

  /** The network namespace of pod `key`. */
  podNetns(key: string): string {
    return this.cluster.podNetns(this.apiPod(key));
  }

  /** Stops every prober. */
  close(): void {
    for (const prober of this.#probers.values()) prober.close();
    this.#probers.clear();
  }

  /** The reference evaluator's grid for `port`, with the lab's world and policies. */
  expected(port: ProbePort): Reachability {
    return Reachability.evaluate(this.world, [...this.policies.values()], port);
  }

  /**
   * One round: every pod probes every pod (itself too) on every port, one
   * prober per source pod, all at once.
   */
  async probeRound(): Promise<Observation[]> {
    this.#round += 1;
    // UDP source ports unique per round (10000-29999, 24 per round): see policy-prober.ts.
    const sourcePortBase = 10_000 + (this.#round % 800) * 24;
    const pods = this.world.pods;
    const outcomes = await Promise.all(
      pods.map(async (from) => {
        const targets = this.probeTargets(sourcePortBase);
        const results = await this.probeFrom(this.podNetns(podKey(from)), targets);
        return results.map((outcome) => ({ from: podKey(from), outcome }));
      }),
    );
    return probePorts.map((port) => {
      const reachability = new Reachability(pods.map(podKey), false);
      const byPair = new Map<string, ProbeOutcome>();
      for (const { from, outcome } of outcomes.flat()) {
        const [to = '', label] = outcome.key.split('|');
        if (label !== portLabel(port)) continue;
        reachability.expect(from, to, outcome.connected);
        byPair.set(`${from}>${to}`, outcome);
      }
      return { port, reachability, outcomes: byPair };
    });
  }

  /**
   * Probes until every port's grid is the reference evaluator's (rounds
   * again while enforcement catches up, up to `enforcementTimeoutMs`), else
   * fails with upstream's grids for each port that differs, and each
   * differing probe's outcome. Resolves to the number of rounds it took.
   */
  async expectReachability(what: string): Promise<number> {
    const expected = probePorts.map((port) => this.expected(port));
    const started = Date.now();
    for (let rounds = 1; ; rounds++) {
      const observed = await this.probeRound();
      const wrong = observed
        .map((observation, i) => ({ observation, expected: expected[i] as Reachability }))
        .filter(({ observation, expected: e }) => e.differences(observation.reachability).length);
      if (wrong.length === 0) return rounds;
      // Rounds that connect take ~0.1 s: leave the agents some CPU between them.
      await sleep(100);
      if (Date.now() - started > enforcementTimeoutMs) {
        const report = wrong.map(({ observation, expected: e }) => {
          const differences = e.differences(observation.reachability);
          const total = e.pods.length ** 2;
          const title = `${portLabel(observation.port)}: ${differences.length} of ${total} probes differ`;
          const details = differences.slice(0, detailLines).map(({ from, to }) => {
            const outcome = observation.outcomes.get(`${from}>${to}`);
            const seen = outcome?.connected
              ? `connected (${outcome.reply ?? ''})`
              : `not connected: ${outcome?.error ?? '?'}${outcome?.reply === undefined ? '' : ` (reply ${outcome.reply})`}`;
            return `  ${from} → ${to} ${portLabel(observation.port)}: expected ${e.get(from, to) ? 'connected' : 'blocked'}, ${seen} after ${outcome?.elapsedMs ?? '?'} ms`;
          });
          if (differences.length > detailLines) {
            details.push(`  ... and ${differences.length - detailLines} more`);
          }
          return [renderComparison(title, e, observation.reachability), ...details].join('\n');
        });
        throw new Error(
          `${what}: the probes still disagree with the expected reachability after ${rounds} rounds (${Date.now() - started} ms); ` +
            `rows are sources, columns destinations, . connected, X blocked\n\n${report.join('\n\n')}`,
        );
      }
    }
  }
}
