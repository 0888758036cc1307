/**
 * Packets NetworkPolicy dropped, read from the counters of each node's
 * `inet strata_policy` table (src/policy/compile.ts names them): per policy,
 * summed over the nodes and both directions. Only a local cluster's nodes
 * (network namespaces on this machine) can be read; a node whose table
 * cannot be listed counts as zero.
 */
import { spawnSync } from 'node:child_process';
import type { ClusterRecord } from '../cluster/state.js';
import { policyCounterName, policyTable } from '../policy/compile.js';

interface CounterListing {
  nftables?: { counter?: { name?: string; packets?: number } }[];
}

/** Counter name → packets, over every node of the cluster. */
export function readDropCounters(record: ClusterRecord | undefined): Map<string, number> {
  const totals = new Map<string, number>();
  for (const node of record?.nodes ?? []) {
    const listed = spawnSync(
      'ip',
      ['netns', 'exec', node.netns, 'nft', '-j', 'list', 'counters', 'table', 'inet', policyTable],
      { encoding: 'utf8', timeout: 5000 },
    );
    if (listed.status !== 0) continue;
    let parsed: CounterListing;
    try {
      parsed = JSON.parse(listed.stdout) as CounterListing;
    } catch {
      continue;
    }
    for (const item of parsed.nftables ?? []) {
      const { name, packets } = item.counter ?? {};
      if (name && typeof packets === 'number') totals.set(name, (totals.get(name) ?? 0) + packets);
    }
  }
  return totals;
}

/** Packets dropped at the pods a policy (`namespace/name`) isolates, both directions. */
export function policyDrops(counters: ReadonlyMap<string, number>, policy: string): number {
  return (
    (counters.get(policyCounterName(policy, 'ingress')) ?? 0) +
    (counters.get(policyCounterName(policy, 'egress')) ?? 0)
  );
}
