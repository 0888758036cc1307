/**
 * The node agent (docs/cluster.md, "Components"): the kubelet-like process
 * of one node, run inside the node's network namespace.
 *
 * Start-up, in order: the backend's device (vxlan0, whose MAC the Node
 * advertises), the Node registered with its Ready heartbeat, every Node
 * watched, this node's pod CIDR awaited, the conflist written (unless
 * --cni-conf-dir names one to use instead), routes and masquerade to the
 * peers kept in step with the Node watch, NetworkPolicy enforced (the
 * table made whole once every watch has listed, network-policy.ts), and
 * finally the pods: reconciled from the state directory, then watched,
 * their logs rotated. Before all of
 * that, while nothing waits yet, it settles where pod namespace names are
 * published (netns.ts): that must not depend on the launcher still being
 * there.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { messageChain } from '../cni/errors.js';
import { ApiClient, ApiError, SharedInformers } from '../client/index.js';
import { ensureSysctl } from '../kernel/sysctl.js';
import { type IpPrefix, formatPrefix } from '../netaddr/ip.js';
import { compileConflist, writeConflist } from './conflist.js';
import { MeshProcess } from './mesh-process.js';
import { ContainerLogRotation } from './container-logs.js';
import { findExecutable } from './containers.js';
import { baseEnvironment } from './launch.js';
import { applyMasquerade } from './masquerade.js';
import { PodNamespaces } from './netns.js';
import { NodeRegistration } from './node.js';
import { type AgentOptions, type AgentSettings, resolveSettings } from './options.js';
import { NetworkPolicyEnforcer } from './network-policy.js';
import { type DropLog, policyDropLogGroup, startPolicyDropLog } from './policy-drops.js';
import { NodeWatch } from './peers.js';
import { PodManager } from './pods.js';
import { ServiceProxy } from './service-proxy.js';
import { applyPeerProgram, compilePeerProgram } from './routes.js';
import { PodNetwork } from './sandbox.js';
import { PodStateStore } from './state.js';
import { ensureVxlanAddress, ensureVxlanDevice, removeVxlanDevice, vxlanPodMtu } from './vxlan.js';

export interface Agent {
  readonly settings: AgentSettings;
  /** Stops watching and programming; pods keep running and the next agent adopts them. */
  stop(): Promise<void>;
}

/** Runs `fn` until it succeeds, retrying while the API server cannot be reached or fails (5xx). */
async function untilReachable<T>(
  what: string,
  settings: AgentSettings,
  signal: AbortSignal | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof ApiError && error.code < 500) throw error;
      if (signal?.aborted) throw error;
      if (attempt === 0) settings.log(`${what} failed, retrying: ${messageChain(error)}`);
      await sleep(Math.min(5000, 250 * 2 ** attempt), undefined, { signal });
    }
  }
}

/** Keeps the kernel's routes and masquerade in step with the peers; runs never overlap. */
class PeerNetwork {
  #podCidr: IpPrefix | undefined;
  #running = false;
  #again = false;
  #lastMasquerade = '';
  #stopped = false;

  constructor(
    private readonly settings: AgentSettings,
    private readonly nodes: NodeWatch,
  ) {}

  start(podCidr: IpPrefix): void {
    this.#podCidr = podCidr;
    this.schedule();
  }

  schedule(): void {
    if (!this.#podCidr || this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    void (async () => {
      do {
        this.#again = false;
        await this.#sync().catch((error: unknown) => {
          this.settings.log(`programming routes to peers failed: ${messageChain(error)}`);
          setTimeout(() => {
            this.schedule();
          }, 2000).unref();
        });
      } while (this.#again && !this.#stopped);
      this.#running = false;
    })();
  }

  async #sync(): Promise<void> {
    const { backend, nodeInterface, clusterCidr, serviceCidr, log } = this.settings;
    const podCidr = formatPrefix(this.#podCidr as IpPrefix);
    const own = this.nodes.ownPodCidr();
    if (own && formatPrefix(own) !== podCidr) {
      log(
        `spec.podCIDR changed to ${formatPrefix(own)}; the agent keeps ${podCidr} until it restarts`,
      );
    }
    const peers = this.nodes.peers();
    const changes = await applyPeerProgram(
      backend,
      compilePeerProgram(
        backend,
        peers,
        nodeInterface,
        serviceCidr ? formatPrefix(serviceCidr) : undefined,
      ),
    );
    for (const line of changes) log(`routes: ${line}`);
    const cluster = peers.map((p) => p.podCidr);
    if (clusterCidr) cluster.push(formatPrefix(clusterCidr));
    const key = JSON.stringify([podCidr, [...cluster].sort()]);
    if (key !== this.#lastMasquerade) {
      await applyMasquerade(podCidr, cluster);
      this.#lastMasquerade = key;
    }
  }

  stop(): void {
    this.#stopped = true;
  }
}

/** Starts the agent; resolves once it runs the node's pods. */
export async function runAgent(options: AgentOptions): Promise<Agent> {
  const settings = resolveSettings(options);
  const signal = options.signal;
  const log = settings.log;
  const ip = findExecutable('ip', process.env.PATH || baseEnvironment.PATH || '', '/');
  if (!ip) throw new Error('Cannot run pods: ip (iproute2) is not in PATH');
  const namespaces = PodNamespaces.open(log);
  const client = new ApiClient(settings.api);
  // One list and watch per resource for NetworkPolicy, Services and the mesh together.
  const informers = new SharedInformers(client, log);
  const registration = new NodeRegistration(client, settings);
  let nodes: NodeWatch | undefined;
  let peerNetwork: PeerNetwork | undefined;
  let pods: PodManager | undefined;
  let policy: NetworkPolicyEnforcer | undefined;
  let dropLog: DropLog | undefined;
  let services: ServiceProxy | undefined;
  let mesh: MeshProcess | undefined;
  const logRotation = new ContainerLogRotation(
    settings.podsDir,
    settings.containerLogs,
    settings.containerLogMonitorIntervalMs,
    log,
  );
  const stop = async (): Promise<void> => {
    logRotation.stop();
    peerNetwork?.stop();
    await pods?.stop();
    await mesh?.stop();
    dropLog?.stop();
    await services?.stop();
    await policy?.stop();
    await informers.stop();
    await nodes?.stop();
    registration.stop();
    client.close();
  };
  try {
    log(
      `agent for node ${settings.nodeName} (${settings.nodeIpText}, ${settings.backend}) starting`,
    );
    // Pods on this node reach other nodes through it (the bridge plugin sets it too, on a pod's ADD).
    ensureSysctl('net.ipv4.ip_forward', '1');
    const vxlanMac = settings.backend === 'vxlan' ? await ensureVxlanDevice(settings) : undefined;
    if (settings.backend === 'host-gw') await removeVxlanDevice();
    await untilReachable('registering the node', settings, signal, () =>
      registration.register(vxlanMac),
    );
    registration.startHeartbeat();
    const watch = new NodeWatch(client, settings, () => peerNetwork?.schedule());
    nodes = watch;
    const peers = new PeerNetwork(settings, watch);
    peerNetwork = peers;
    await untilReachable('listing nodes', settings, signal, () => watch.start());
    const podCidr = await watch.waitForPodCidr(signal);
    log(`pod CIDR ${formatPrefix(podCidr)}`);
    const mtu = settings.backend === 'vxlan' ? await vxlanPodMtu(settings) : undefined;
    if (settings.writesConflist) {
      writeConflist(
        settings.netDir,
        compileConflist({ podCidr: formatPrefix(podCidr), ipamDir: settings.ipamDir, mtu }),
      );
    }
    if (settings.backend === 'vxlan') await ensureVxlanAddress(podCidr);
    peers.start(podCidr);
    const network = new PodNetwork(
      { binDirs: settings.cniBinDirs, cacheDir: settings.cniCacheDir, timeoutMs: 60_000 },
      settings.netDir,
      namespaces,
    );
    const store = new PodStateStore(settings.podsDir);
    // NetworkPolicy is enforced before any pod is adopted or started (network-policy.ts).
    // With the agent's own conflist (routedPods) nothing is bridged between pods: every pod
    // packet crosses the node's IP layer, so br_netfilter (per namespace, 1 by default) is
    // turned off; it would only hand bridged frames to the inet hooks, and it defeats tproxy.
    // A conflist of the user's (--cni-conf-dir) may bridge pods: then it shows that traffic
    // to the inet hooks.
    const bridgeNf = settings.writesConflist ? '0' : '1';
    ensureSysctl('net.bridge.bridge-nf-call-iptables', bridgeNf);
    ensureSysctl('net.bridge.bridge-nf-call-ip6tables', bridgeNf);
    const enforcer = new NetworkPolicyEnforcer({
      client,
      informers,
      nodeName: settings.nodeName,
      log,
      logGroup: policyDropLogGroup,
    });
    policy = enforcer;
    for (const { uid, record } of store.readAll()) {
      if (!record?.podIPs || record.terminal) continue;
      enforcer.seed(
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { uid, namespace: record.namespace, name: record.name },
        },
        record.podIPs,
      );
    }
    await enforcer.start();
    log('NetworkPolicy enforced');
    dropLog = await startPolicyDropLog(settings, enforcer);
    // Service virtual IPs (and cluster DNS behind one) work before any pod starts.
    const proxy = new ServiceProxy({
      client,
      informers,
      node: {
        name: settings.nodeName,
        clusterCidrs: settings.clusterCidr ? [formatPrefix(settings.clusterCidr)] : [],
        serviceCidrs: settings.serviceCidr ? [formatPrefix(settings.serviceCidr)] : [],
      },
      log,
    });
    services = proxy;
    await proxy.start();
    log('Services programmed');
    if (settings.mesh) {
      // The mesh proxy (its own process, mesh-process.ts) captures enrolled pods
      // before any pod is adopted or started.
      const proxy = new MeshProcess({
        stateDir: settings.stateDir,
        api: typeof settings.api === 'string' ? settings.api : settings.api.socketPath,
        nodeName: settings.nodeName,
        caSocket: settings.mesh.caSocket,
        caTokenFile: settings.mesh.caTokenFile,
        trustDomain: settings.mesh.trustDomain,
        ...(settings.mesh.workloadCertTtlSeconds === undefined
          ? {}
          : { workloadCertTtlSeconds: settings.mesh.workloadCertTtlSeconds }),
        log,
      });
      mesh = proxy;
      await proxy.start();
      log(`mesh proxy running (pid ${String(proxy.pid)})`);
    }
    const manager = new PodManager({
      settings,
      client,
      network,
      store,
      ip,
      policy: enforcer,
    });
    pods = manager;
    await untilReachable('listing pods', settings, signal, () => manager.start());
    logRotation.start();
    log('running');
  } catch (error) {
    await stop();
    throw error;
  }
  let stopping: Promise<void> | undefined;
  return {
    settings,
    stop: () => (stopping ??= stop()),
  };
}
