/**
 * Masquerade for pod traffic leaving the cluster, in the agent's own
 * nftables table: Flannel's rule (`-s <pod CIDR> ! -d <cluster CIDR>
 * -j MASQUERADE`), so traffic between pods — on this node or another —
 * keeps its source address, and only what goes elsewhere is rewritten to
 * the node's. The cluster is every node's pod CIDR (from the Node watch)
 * plus the cluster CIDR when the agent was told it. One `nft -f -`
 * transaction redefines the whole table's content without a gap.
 */
import { nftApplyAsync } from '../kernel/nft.js';

export const masqueradeTable = 'strata_agent';

/** Pure: the transaction for this node's pod CIDR and the cluster's destinations. */
export function compileMasquerade(podCidr: string, clusterCidrs: readonly string[]): string {
  const t = `ip ${masqueradeTable}`;
  const lines = [
    `add table ${t}`,
    `add set ${t} cluster { type ipv4_addr; flags interval; auto-merge; }`,
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `flush chain ${t} postrouting`,
    `flush set ${t} cluster`,
  ];
  const elements = [...new Set([podCidr, ...clusterCidrs])].sort();
  lines.push(`add element ${t} cluster { ${elements.join(', ')} }`);
  lines.push(
    `add rule ${t} postrouting ip saddr ${podCidr} ip daddr != @cluster ip daddr != 224.0.0.0/4 masquerade`,
  );
  return lines.join('\n') + '\n';
}

/** Applies the table; repeating it with the same input changes nothing. */
export async function applyMasquerade(
  podCidr: string,
  clusterCidrs: readonly string[],
): Promise<void> {
  await nftApplyAsync(compileMasquerade(podCidr, clusterCidrs));
}
