/**
 * Source NAT for pod traffic that leaves the pod's own subnet (`ipMasq`), in
 * the nftables table strata-cni owns. The rules are fixed; pods come and go
 * as set elements, so an ADD or DEL is one small transaction that adds or
 * removes elements, and the cost per packet does not grow with pods.
 *
 *   masq_v4    pod addresses to masquerade
 *   exempt_v4  pod address . pod subnet: destinations left alone
 *
 * Each element carries an owner comment naming the network and the
 * attachment's host veth, so GC can find leftovers even when the allocation
 * record is gone.
 */
import { nftApply, nftApplyAsync, nftListJson } from '../kernel/nft.js';
import { type IpFamily, familyOf, networkOf, parsePrefix } from '../netaddr/ip.js';

export const masqueradeTable = 'strata_cni';

export interface MasqueradeEntry {
  /** The pod address with its subnet's prefix length, as in a CNI result: `10.1.0.5/24`. */
  address: string;
  owner: string;
}

const multicast: Record<IpFamily, string> = { 4: '224.0.0.0/4', 6: 'ff00::/8' };
const addrType: Record<IpFamily, string> = { 4: 'ipv4_addr', 6: 'ipv6_addr' };
const proto: Record<IpFamily, string> = { 4: 'ip', 6: 'ip6' };

function setDeclarations(): string[] {
  const t = `inet ${masqueradeTable}`;
  const lines = [`add table ${t}`];
  for (const f of [4, 6] as const) {
    lines.push(`add set ${t} masq_v${f} { type ${addrType[f]}; }`);
    lines.push(
      `add set ${t} exempt_v${f} { type ${addrType[f]} . ${addrType[f]}; flags interval; }`,
    );
  }
  return lines;
}

/** The table, sets and the fixed NAT chain; flushing the chain in the same transaction keeps it idempotent. */
export function compileMasqueradeBase(): string[] {
  const t = `inet ${masqueradeTable}`;
  const lines = setDeclarations();
  lines.push(
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
  );
  lines.push(`flush chain ${t} postrouting`);
  for (const f of [4, 6] as const) {
    const p = proto[f];
    lines.push(`add rule ${t} postrouting ${p} saddr . ${p} daddr @exempt_v${f} return`);
  }
  for (const f of [4, 6] as const) {
    const p = proto[f];
    lines.push(
      `add rule ${t} postrouting ${p} saddr @masq_v${f} ${p} daddr != ${multicast[f]} masquerade`,
    );
  }
  return lines;
}

function elementLines(op: 'add' | 'delete', entry: MasqueradeEntry): string[] {
  const prefix = parsePrefix(entry.address);
  const family = familyOf(entry.address);
  if (!prefix || !family) return [];
  const ip = entry.address.slice(0, entry.address.indexOf('/'));
  const comment = op === 'add' ? ` comment "${entry.owner}"` : '';
  const t = `inet ${masqueradeTable}`;
  return [
    `${op} element ${t} masq_v${family} { ${ip}${comment} }`,
    `${op} element ${t} exempt_v${family} { ${ip} . ${networkOf(prefix)}${comment} }`,
  ];
}

/** Elements to add for new pod addresses (the table must exist). */
export function compileMasqueradeAdd(entries: readonly MasqueradeEntry[]): string[] {
  return entries.flatMap((e) => elementLines('add', e));
}

/** Elements to delete (they must exist). */
export function compileMasqueradeDelete(entries: readonly MasqueradeEntry[]): string[] {
  return entries.flatMap((e) => elementLines('delete', e));
}

/**
 * Removes elements whether or not they exist: nft 1.0.6 has no `destroy`, so
 * each element is added and deleted in one transaction, which also creates
 * the table and sets if they are gone.
 */
export function compileMasqueradeRemove(entries: readonly MasqueradeEntry[]): string[] {
  if (entries.length === 0) return [];
  return [
    ...setDeclarations(),
    ...entries.flatMap((e) => [...elementLines('add', e), ...elementLines('delete', e)]),
  ];
}

function script(lines: readonly string[]): string {
  return lines.join('\n') + '\n';
}

/** Installs masquerading for the addresses; lays down the table first if it is missing. */
export async function applyMasqueradeAdd(entries: readonly MasqueradeEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const elements = compileMasqueradeAdd(entries);
  try {
    await nftApplyAsync(script(elements));
  } catch {
    // The table is missing (first pod on the node) or was removed: lay it down with the elements.
    await nftApplyAsync(script([...compileMasqueradeBase(), ...elements]));
  }
}

/** Removes the addresses' elements; already gone is fine. */
export async function applyMasqueradeRemove(entries: readonly MasqueradeEntry[]): Promise<void> {
  if (entries.length === 0) return;
  // The usual case is that they are there; deleting a missing element fails the whole
  // transaction, and then the slower form that succeeds either way runs.
  try {
    await nftApplyAsync(script(compileMasqueradeDelete(entries)));
  } catch {
    await nftApplyAsync(script(compileMasqueradeRemove(entries)));
  }
}

/** Re-lays the fixed table and chain (GC calls this so a damaged chain heals). */
export function applyMasqueradeBase(): void {
  nftApply(compileMasqueradeBase().join('\n') + '\n');
}

/** Every masqueraded address with its owner comment, read back from the kernel. */
export function listMasquerade(): MasqueradeEntry[] {
  const json = nftListJson(`table inet ${masqueradeTable}`) as { nftables?: unknown[] } | undefined;
  const out: MasqueradeEntry[] = [];
  for (const item of json?.nftables ?? []) {
    const set = (item as { set?: { name: string; elem?: unknown[] } }).set;
    if (!set?.name.startsWith('exempt_v')) continue;
    for (const e of set.elem ?? []) {
      const elem = (e as { elem?: { val?: { concat?: unknown[] }; comment?: string } }).elem;
      const [ip, subnet] = elem?.val?.concat ?? [];
      // nft prints a /32 or /128 subnet as a plain address.
      const pfx = (subnet as { prefix?: { addr: string; len: number } } | undefined)?.prefix;
      const length = pfx
        ? pfx.len
        : typeof subnet === 'string'
          ? subnet.includes(':')
            ? 128
            : 32
          : 0;
      if (typeof ip === 'string' && length > 0 && elem?.comment) {
        out.push({ address: `${ip}/${length}`, owner: elem.comment });
      }
    }
  }
  return out;
}
