/**
 * The node's CNI network configuration, `nodes/<node>/net.d/10-strata.conflist`
 * (docs/cluster.md): strata-cni on bridge `cni0` as the pods' default
 * gateway, strata-ipam on the node's pod CIDR.
 *
 * `routedPods` is on: pods on the node reach each other through the node's
 * IP layer (isolated bridge ports, proxy ARP on `cni0`), never bridged at
 * L2, so NetworkPolicy, Services and the mesh's tproxy capture see same-node
 * traffic in the node's own hooks without br_netfilter. `hairpinMode` is
 * left out: an isolated port never sends a frame back where it came from,
 * and a pod reaching itself through its Service is routed back by the node.
 *
 * `ipMasq` is off: strata-cni's masquerade follows the reference bridge
 * plugin and rewrites everything leaving the node's own pod subnet, which
 * would NAT pod traffic to other nodes. The agent masquerades instead, only
 * what leaves the cluster (masquerade.ts), as Flannel does.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const networkName = 'strata';
export const conflistFile = '10-strata.conflist';
export const podBridge = 'cni0';

export interface NetworkParameters {
  podCidr: string;
  /** strata-ipam's data directory (`nodes/<node>/ipam`). */
  ipamDir: string;
  /** The pods' MTU: the underlay's less the VXLAN header with that backend. */
  mtu?: number;
}

/** The conflist as an object. */
export function compileConflist(params: NetworkParameters): Record<string, unknown> {
  const plugin: Record<string, unknown> = {
    type: 'strata-cni',
    bridge: podBridge,
    isGateway: true,
    isDefaultGateway: true,
    ipMasq: false,
    routedPods: true,
  };
  if (params.mtu !== undefined) plugin.mtu = params.mtu;
  plugin.ipam = {
    type: 'strata-ipam',
    dataDir: params.ipamDir,
    ranges: [[{ subnet: params.podCidr }]],
  };
  return { cniVersion: '1.1.0', name: networkName, plugins: [plugin] };
}

/** Writes the conflist unless it already says the same; true when it changed. */
export function writeConflist(netDir: string, conflist: Record<string, unknown>): boolean {
  mkdirSync(netDir, { recursive: true });
  const path = join(netDir, conflistFile);
  const text = JSON.stringify(conflist, null, 2) + '\n';
  try {
    if (readFileSync(path, 'utf8') === text) return false;
  } catch {
    // Not written yet.
  }
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
  return true;
}
