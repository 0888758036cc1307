/**
 * The contents of one nftables table as data (its sets and maps, their
 * elements, its chains and their rules) and the two ways of writing it:
 * the whole table in one transaction, or the difference between two states
 * (kube-proxy's nftables mode does the same with a full sync and partial
 * syncs). Pure: this returns script text; src/kernel applies it.
 */

export interface NftSet {
  /** The body of the declaration: `type ipv4_addr . inet_proto . inet_service : verdict;`. */
  declaration: string;
  /** Element key → value (`''` for a plain set), in nft syntax. */
  elements: Map<string, string>;
}

export interface NftChain {
  /** A base chain's hook declaration (`type nat hook prerouting priority dstnat; policy accept;`). */
  hook?: string;
  rules: string[];
}

export interface NftTableState {
  /** `inet strata_services`. */
  table: string;
  sets: Map<string, NftSet>;
  chains: Map<string, NftChain>;
}

export function emptyTableState(table: string): NftTableState {
  return { table, sets: new Map(), chains: new Map() };
}

/** `map` for a declaration with a value type, else `set`. */
function setKeyword(set: NftSet): 'map' | 'set' {
  return set.declaration.includes(' : ') ? 'map' : 'set';
}

function elementText(key: string, value: string): string {
  return value === '' ? key : `${key} : ${value}`;
}

/** `add element` lines for the elements, a few hundred to a line (one netlink batch either way). */
function elementLines(op: 'add' | 'delete', table: string, set: string, items: string[]): string[] {
  const lines: string[] = [];
  for (let i = 0; i < items.length; i += 256) {
    lines.push(`${op} element ${table} ${set} { ${items.slice(i, i + 256).join(', ')} }`);
  }
  return lines;
}

function chainDeclaration(table: string, name: string, chain: NftChain): string {
  return chain.hook ? `add chain ${table} ${name} { ${chain.hook} }` : `add chain ${table} ${name}`;
}

/**
 * The whole table, replacing whatever the kernel holds under that name in
 * the same transaction (`add` then `delete` then the new table: the delete
 * cannot fail on a missing table, and nothing is ever half there).
 */
export function renderTable(state: NftTableState): string {
  const t = state.table;
  const lines = [`add table ${t}`, `delete table ${t}`, `add table ${t}`];
  for (const [name, set] of state.sets) {
    lines.push(`add ${setKeyword(set)} ${t} ${name} { ${set.declaration} }`);
  }
  for (const [name, chain] of state.chains) lines.push(chainDeclaration(t, name, chain));
  for (const [name, chain] of state.chains) {
    for (const rule of chain.rules) lines.push(`add rule ${t} ${name} ${rule}`);
  }
  for (const [name, set] of state.sets) {
    const items = [...set.elements].map(([key, value]) => elementText(key, value));
    lines.push(...elementLines('add', t, name, items));
  }
  return lines.join('\n') + '\n';
}

const identifierCharacter = /[A-Za-z0-9/\\_.-]/;

/** Whether the rule names the set (`@name`, not a longer name that starts alike). */
function mentions(rule: string, set: string): boolean {
  const needle = `@${set}`;
  for (let at = rule.indexOf(needle); at >= 0; at = rule.indexOf(needle, at + 1)) {
    const after = rule.charAt(at + needle.length);
    if (after === '' || !identifierCharacter.test(after)) return true;
  }
  return false;
}

function sameRules(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((rule, i) => rule === b[i]);
}

/**
 * The transaction that turns `before` (what the kernel holds) into `next`,
 * or '' when they are equal. Order matters inside one transaction: new sets
 * and chains first, so rules and elements may name them; rules of changed
 * chains rewritten and elements swapped, which drops every reference to
 * what goes away; then chains and sets that are gone are deleted. A set
 * whose declaration changed is deleted and declared again, so its users
 * are rewritten too.
 */
export function renderTableChange(before: NftTableState, next: NftTableState): string {
  const t = next.table;
  const lines: string[] = [];
  const redeclared = new Set<string>();
  for (const [name, set] of next.sets) {
    const old = before.sets.get(name);
    if (old && old.declaration !== set.declaration) redeclared.add(name);
  }
  const rewritten = (name: string, chain: NftChain): boolean => {
    const old = before.chains.get(name);
    if (!old) return true;
    if (!sameRules(old.rules, chain.rules)) return true;
    return chain.rules.some((rule) => [...redeclared].some((set) => mentions(rule, set)));
  };
  // Rules naming a set that is declared again go first, so the set can be deleted.
  for (const [name, chain] of before.chains) {
    if (chain.rules.some((rule) => [...redeclared].some((set) => mentions(rule, set)))) {
      lines.push(`flush chain ${t} ${name}`);
    }
  }
  for (const [name, set] of before.sets) {
    if (redeclared.has(name)) lines.push(`delete ${setKeyword(set)} ${t} ${name}`);
  }
  for (const [name, set] of next.sets) {
    if (!before.sets.has(name) || redeclared.has(name)) {
      lines.push(`add ${setKeyword(set)} ${t} ${name} { ${set.declaration} }`);
    }
  }
  for (const [name, chain] of next.chains) {
    if (!before.chains.has(name)) lines.push(chainDeclaration(t, name, chain));
  }
  for (const [name, chain] of next.chains) {
    if (!rewritten(name, chain)) continue;
    if (before.chains.has(name)) lines.push(`flush chain ${t} ${name}`);
    for (const rule of chain.rules) lines.push(`add rule ${t} ${name} ${rule}`);
  }
  for (const [name, set] of next.sets) {
    const old = redeclared.has(name) ? undefined : before.sets.get(name);
    const removed: string[] = [];
    const added: string[] = [];
    if (old) {
      for (const [key, value] of old.elements) {
        const now = set.elements.get(key);
        if (now === undefined || now !== value) removed.push(key);
      }
    }
    for (const [key, value] of set.elements) {
      if (old?.elements.get(key) !== value) added.push(elementText(key, value));
    }
    lines.push(...elementLines('delete', t, name, removed));
    lines.push(...elementLines('add', t, name, added));
  }
  const gone = [...before.chains.keys()].filter((name) => !next.chains.has(name));
  // A chain still holding rules may jump to another one that goes: empty them all first,
  // then the sets that go (their elements may name those chains), then the chains.
  for (const name of gone) lines.push(`flush chain ${t} ${name}`);
  for (const [name, set] of before.sets) {
    if (!next.sets.has(name)) lines.push(`delete ${setKeyword(set)} ${t} ${name}`);
  }
  for (const name of gone) lines.push(`delete chain ${t} ${name}`);
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}
