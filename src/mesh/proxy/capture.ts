/**
 * The node's mesh capture, `inet strata_mesh` (docs/mesh.md, "Capture: what
 * was tried here" and the node proxy plan): pure compilation of the table
 * from the node's enrolled pod addresses, written whole or as a change with
 * src/services/nft-state.ts, plus the policy routing it relies on.
 *
 * The proxy's own connections leave from a pod's address with SO_MARK 0x539:
 * its upstreams to local pods (from the source pod's address) and its HBONE
 * tunnels (from the source pod's address to the destination pod's 15008, as
 * ztunnel's in-pod mode does, so NetworkPolicy judges the tunnel by pod).
 *
 * Prerouting, at `dstnat + 15` (after Service DNAT and NetworkPolicy):
 *
 * 1. replies to the proxy's own connections (`ct mark 0x539`, reply
 *    direction: from the pods or proxies it connected to, or from this
 *    node's HBONE server over `lo`) get `meta mark 0x111`, which routes them
 *    to the local socket;
 * 2. the proxy's own tunnel to an enrolled pod of this node (looped over
 *    `lo` by output rule 2) → `tproxy` to the HBONE server (15008); without
 *    this rule, rule 3 would take it, its source being an enrolled pod;
 * 3. TCP from an enrolled pod of this node to an address that is not the
 *    node's → `tproxy` to the outbound listener (15001);
 * 4. TCP to an enrolled pod of this node on 15008 → `tproxy` to the HBONE
 *    server (15008), so the accepted socket's local address names the
 *    destination workload;
 * 5. any other TCP to an enrolled pod of this node → `tproxy` to the plaintext
 *    inbound listener (15006). What reaches here comes from outside the mesh:
 *    enrolled pods of this node were taken by rule 3, those of other nodes
 *    arrive as HBONE, and the proxy's own connections to local pods leave
 *    through output (never prerouting), their replies taken by rule 1.
 *
 * Output (a route chain, so a changed mark re-routes the packet):
 *
 * 1. replies of this node's HBONE server to a tunnel the proxy opened from a
 *    pod of this node (`ct mark 0x539`, reply direction) get `meta mark
 *    0x111`: over `lo` back to the tunnel's socket, not out to the pod;
 * 2. the proxy's tunnel to an enrolled pod of this node (SO_MARK 0x539, to
 *    15008) gets `ct mark 0x539` and `meta mark 0x111`, which routes it over
 *    `lo` back into prerouting, where rule 2 hands it to the HBONE server;
 * 3. `meta mark 0x539 ct mark set 0x539`: the connection remembers the
 *    proxy's mark for prerouting rule 1;
 * 4. any other local TCP to an enrolled pod of this node on 15008 (an HBONE
 *    client leaving from the node's own address) gets `meta mark 0x111`,
 *    over `lo` into prerouting rule 4.
 *
 * Marks: 0x539 and 0x111 must differ; only 0x111 is routed by
 * `ip rule fwmark 0x111 lookup 133` to `local 0.0.0.0/0 dev lo table 133`
 * (routing the proxy's own 0x539 packets that way would loop them back).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { isIPv4, isIPv6 } from 'node:net';
import {
  emptyTableState,
  renderTable,
  renderTableChange,
  type NftTableState,
} from '../../services/nft-state.js';

export const captureTable = 'inet strata_mesh';
/** SO_MARK of the proxy's upstream sockets, copied to their connections. */
export const proxyMark = 0x539;
/** The mark policy routing delivers locally (tproxy'd packets, replies to the proxy). */
export const captureMark = 0x111;
/** The routing table with `local 0.0.0.0/0 dev lo`. */
export const captureRouteTable = 133;
/** The `ip rule` preference of the fwmark rule. */
export const captureRulePreference = 133;

export interface CapturePorts {
  outbound: number;
  inboundPlaintext: number;
  hbone: number;
}

export const defaultCapturePorts: Readonly<CapturePorts> = {
  outbound: 15001,
  inboundPlaintext: 15006,
  hbone: 15008,
};

export interface CaptureInput {
  /** Addresses of this node's enrolled pods (either family). */
  enrolled: Iterable<string>;
  ports?: Partial<CapturePorts>;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** The table for this node's enrolled pods. */
export function compileCapture(input: CaptureInput): NftTableState {
  const ports = { ...defaultCapturePorts, ...input.ports };
  const state = emptyTableState(captureTable);
  const v4 = new Map<string, string>();
  const v6 = new Map<string, string>();
  for (const ip of input.enrolled) {
    if (isIPv4(ip)) v4.set(ip, '');
    else if (isIPv6(ip)) v6.set(ip, '');
    else throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  }
  state.sets.set('enrolled_v4', { declaration: 'type ipv4_addr;', elements: v4 });
  state.sets.set('enrolled_v6', { declaration: 'type ipv6_addr;', elements: v6 });
  const mark = hex(captureMark);
  const own = hex(proxyMark);
  const to = (family: 'ip' | 'ip6', port: number) =>
    `tproxy ${family} to :${port} meta mark set ${mark} accept`;
  state.chains.set('prerouting', {
    hook: 'type filter hook prerouting priority dstnat + 15; policy accept;',
    rules: [
      `ct mark ${own} ct direction reply meta mark set ${mark} accept`,
      `ct mark ${own} ip daddr @enrolled_v4 tcp dport ${ports.hbone} ${to('ip', ports.hbone)}`,
      `ct mark ${own} ip6 daddr @enrolled_v6 tcp dport ${ports.hbone} ${to('ip6', ports.hbone)}`,
      `meta l4proto tcp ip saddr @enrolled_v4 fib daddr type != local ${to('ip', ports.outbound)}`,
      `meta l4proto tcp ip6 saddr @enrolled_v6 fib daddr type != local ${to('ip6', ports.outbound)}`,
      `ip daddr @enrolled_v4 tcp dport ${ports.hbone} ${to('ip', ports.hbone)}`,
      `ip6 daddr @enrolled_v6 tcp dport ${ports.hbone} ${to('ip6', ports.hbone)}`,
      `meta l4proto tcp ip daddr @enrolled_v4 ${to('ip', ports.inboundPlaintext)}`,
      `meta l4proto tcp ip6 daddr @enrolled_v6 ${to('ip6', ports.inboundPlaintext)}`,
    ],
  });
  state.chains.set('output', {
    hook: 'type route hook output priority mangle; policy accept;',
    rules: [
      `ct mark ${own} ct direction reply meta mark set ${mark} accept`,
      `meta mark ${own} ip daddr @enrolled_v4 tcp dport ${ports.hbone} ct mark set ${own} meta mark set ${mark} accept`,
      `meta mark ${own} ip6 daddr @enrolled_v6 tcp dport ${ports.hbone} ct mark set ${own} meta mark set ${mark} accept`,
      `meta mark ${own} ct mark set ${own} accept`,
      `ip daddr @enrolled_v4 tcp dport ${ports.hbone} meta mark set ${mark}`,
      `ip6 daddr @enrolled_v6 tcp dport ${ports.hbone} meta mark set ${mark}`,
    ],
  });
  return state;
}

/** The whole table, replacing what the kernel holds, in one transaction. */
export function renderCapture(state: NftTableState): string {
  return renderTable(state);
}

/** The change from `before` (applied) to `next`; '' when nothing changed. */
export function renderCaptureChange(before: NftTableState, next: NftTableState): string {
  return renderTableChange(before, next);
}

/** The table's removal (the mesh turned off on this node). */
export function renderCaptureRemoval(): string {
  return `add table ${captureTable}\ndelete table ${captureTable}\n`;
}

/** `ip` argument lists that set up the policy routing, idempotent (`replace`). */
export function policyRoutingCommands(families: readonly (4 | 6)[] = [4, 6]): string[][] {
  const out: string[][] = [];
  for (const family of families) {
    const f = `-${family}`;
    out.push([
      f,
      'route',
      'replace',
      'local',
      family === 4 ? '0.0.0.0/0' : '::/0',
      'dev',
      'lo',
      'table',
      String(captureRouteTable),
    ]);
    // `ip rule` has no replace: the rule is deleted first (ignoring its absence) by applyPolicyRouting.
    out.push([
      f,
      'rule',
      'add',
      'pref',
      String(captureRulePreference),
      'fwmark',
      hex(captureMark),
      'lookup',
      String(captureRouteTable),
    ]);
  }
  return out;
}

const run = promisify(execFile);

/**
 * Sets up the policy routing in the current network namespace (the agent
 * runs in its node's): the fwmark rule and the local route of table 133.
 */
export async function applyPolicyRouting(families: readonly (4 | 6)[] = [4, 6]): Promise<void> {
  for (const args of policyRoutingCommands(families)) {
    if (args[1] === 'rule') {
      // Remove an earlier rule of ours so the add below leaves exactly one.
      await run('ip', [
        args[0] ?? '-4',
        'rule',
        'del',
        'pref',
        String(captureRulePreference),
      ]).catch(() => undefined);
    }
    await run('ip', args);
  }
}

/** Removes the policy routing applyPolicyRouting set up; absent parts are fine. */
export async function removePolicyRouting(families: readonly (4 | 6)[] = [4, 6]): Promise<void> {
  for (const family of families) {
    const f = `-${family}`;
    await run('ip', [f, 'rule', 'del', 'pref', String(captureRulePreference)]).catch(
      () => undefined,
    );
    await run('ip', [f, 'route', 'flush', 'table', String(captureRouteTable)]).catch(
      () => undefined,
    );
  }
}
