// What the end-to-end cluster tests look at: the host's root network namespace as
// `ip -j` and `nft -j` print it (to hold `up` + `down` to leaving it as it was), and
// anything of a cluster still there afterwards.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cniExecutable, componentMissing } from '../../src/cluster/components.js';
import { isClusterNamespace } from '../../src/cluster/config.js';
import { isRoot, sh } from './netns.js';

/** Fields that change by themselves: address lifetimes count down, route expiry too. */
const volatile = new Set(['valid_life_time', 'preferred_life_time', 'expires']);

function withoutVolatile(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutVolatile);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => !volatile.has(key))
      .map(([key, item]) => [key, withoutVolatile(item)]),
  );
}

/** The root namespace's links, addresses, routes (every table) and nftables ruleset. */
export function rootNetworkSnapshot(): Record<string, unknown> {
  const json = (file: string, args: string[]): unknown =>
    withoutVolatile(JSON.parse(sh(file, args)) as unknown);
  return {
    links: json('ip', ['-j', 'link', 'show']),
    addresses: json('ip', ['-j', 'addr', 'show']),
    routes: json('ip', ['-j', 'route', 'show', 'table', 'all']),
    ruleset: json('nft', ['-j', 'list', 'ruleset']),
  };
}

/** Named network namespaces of cluster `name` still present. */
export function clusterNamespacesLeft(name: string): string[] {
  try {
    return readdirSync('/run/netns').filter((netns) => isClusterNamespace(name, netns));
  } catch {
    return [];
  }
}

/** Processes (not zombies) whose command line mentions `stateDir`. */
export function processesMentioning(stateDir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmdline.includes(stateDir)) found.push(`${entry}: ${cmdline.replaceAll('\0', ' ')}`);
  }
  return found;
}

/**
 * Why a whole cluster cannot be started here, or false: root, the built CNI plugin,
 * and the controller's and agent's modules (until they land, the tests that need
 * them skip with this reason, and run by themselves once they are there).
 */
export function clusterSkipReason(): string | false {
  if (!isRoot()) return 'needs root for network namespaces';
  if (!existsSync(cniExecutable)) {
    return `${cniExecutable} is missing: run node scripts/build-executables.mjs`;
  }
  const missing = (['controller', 'agent'] as const)
    .map((component) => componentMissing(component))
    .filter((reason) => reason !== undefined);
  return missing.length > 0 ? `needs the components: ${missing.join('; ')}` : false;
}
