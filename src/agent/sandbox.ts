/**
 * A pod's sandbox: its network namespace attached to the node's network by
 * the CNI chain, as a container runtime does it through libcni
 * (src/cni/runtime): ADD with the pod uid as the container id and `eth0` as
 * the interface, DEL with the cached result, GC with the attachments the
 * agent keeps. The CNI_ARGS are the ones containerd and CRI-O pass.
 */
import { messageChain } from '../cni/errors.js';
import {
  type RuntimeConf,
  addNetworkList,
  delNetworkList,
  gcNetworkList,
  getNetworkListCachedResult,
} from '../cni/runtime/chain.js';
import { type NetworkConfigList, loadDefaultNetwork } from '../cni/runtime/conflist.js';
import type { CniRuntimeConfig } from '../cni/runtime/invoke.js';
import type { CniResult } from '../cni/result.js';
import { type PodNamespaces, netnsPath } from './netns.js';

export const podInterface = 'eth0';

export interface PodIdentity {
  uid: string;
  namespace: string;
  name: string;
}

function runtimeConf(pod: PodIdentity, netns: string): RuntimeConf {
  return {
    containerId: pod.uid,
    netns: netnsPath(netns),
    ifname: podInterface,
    // A pod known only by its uid (its record lost) has no namespace or name to pass.
    args: (
      [
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAMESPACE', pod.namespace],
        ['K8S_POD_NAME', pod.name],
        ['K8S_POD_INFRA_CONTAINER_ID', pod.uid],
        ['K8S_POD_UID', pod.uid],
      ] as [string, string][]
    ).filter(([, value]) => value !== ''),
  };
}

/** The pod's addresses in a CNI result, in order, without prefix lengths. */
export function podIpsOf(result: CniResult): string[] {
  return result.ips.map((ip) => ip.address.slice(0, ip.address.indexOf('/')));
}

export class PodNetwork {
  readonly #runtime: CniRuntimeConfig;
  readonly #netDir: string;
  readonly #namespaces: PodNamespaces;

  constructor(runtime: CniRuntimeConfig, netDir: string, namespaces: PodNamespaces) {
    this.#runtime = runtime;
    this.#netDir = netDir;
    this.#namespaces = namespaces;
  }

  get namespaces(): PodNamespaces {
    return this.#namespaces;
  }

  /** The node's network, read as kubelet does: the first valid file of net.d. */
  #network(): NetworkConfigList {
    return loadDefaultNetwork(this.#netDir).list;
  }

  /**
   * Makes the namespace and attaches it; returns the pod's addresses. An
   * attachment that already exists (its namespace and cached result are
   * there) is kept: a restarted agent finds its pods as it left them.
   */
  async setUp(pod: PodIdentity, netns: string): Promise<string[]> {
    const list = this.#network();
    const rt = runtimeConf(pod, netns);
    const cached = await getNetworkListCachedResult(this.#runtime, list, rt);
    if (cached && this.#namespaces.exists(netns)) return podIpsOf(cached);
    if (cached) {
      // The namespace went (a reboot): release the old attachment before a new one.
      await delNetworkList(this.#runtime, list, rt);
    }
    await this.#namespaces.ensure(netns);
    return podIpsOf(await addNetworkList(this.#runtime, list, rt));
  }

  /** CNI DEL, then the namespace; each step succeeds when there is nothing left to remove. */
  async tearDown(pod: PodIdentity, netns: string): Promise<void> {
    await delNetworkList(this.#runtime, this.#network(), runtimeConf(pod, netns));
    await this.#namespaces.remove(netns);
  }

  /** CNI GC: every attachment of a pod not in `keep` is released. */
  async collectGarbage(keep: readonly string[], log: (line: string) => void): Promise<void> {
    try {
      await gcNetworkList(this.#runtime, this.#network(), {
        validAttachments: keep.map((uid) => ({ containerId: uid, ifname: podInterface })),
      });
    } catch (error) {
      log(`CNI GC failed: ${messageChain(error)}`);
    }
  }
}
