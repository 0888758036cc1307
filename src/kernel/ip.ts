/**
 * iproute2, driven in batch mode: a list of `ip` commands runs in one
 * process, in the current network namespace or, through nsenter, in the one
 * at a netns path (`/var/run/netns/x`, `/proc/<pid>/ns/net`, any bind mount).
 */
import { run } from './command.js';

/** Where a batch runs: the plugin's own namespace, or the one at this path. */
export interface Namespace {
  netns?: string;
}

function ipInvocation(ns: Namespace, ipArgs: string[]): [string, string[]] {
  return ns.netns ? ['nsenter', [`--net=${ns.netns}`, 'ip', ...ipArgs]] : ['ip', ipArgs];
}

/** Runs each line as one ip command, in one process; stops at the first failure and throws. */
export function ipBatch(lines: readonly string[], ns: Namespace = {}): void {
  if (lines.length === 0) return;
  const [file, args] = ipInvocation(ns, ['-batch', '-']);
  run(file, args, lines.join('\n') + '\n');
}

/** Runs show commands in one process and returns each one's JSON output. */
export function ipJsonBatch(
  lines: readonly string[],
  ns: Namespace = {},
  options: readonly string[] = [],
): unknown[][] {
  if (lines.length === 0) return [];
  const [file, args] = ipInvocation(ns, [...options, '-json', '-details', '-batch', '-']);
  const { stdout } = run(file, args, lines.join('\n') + '\n');
  // Each show prints one JSON array on its own line.
  return stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('['))
    .map((l) => JSON.parse(l) as unknown[]);
}

/** Quotes a value for an ip batch line (alias text may hold spaces). */
export function quoteBatchWord(word: string): string {
  return /^[\w.:/@%+-]+$/.test(word) ? word : `"${word.replace(/(["\\])/g, '\\$1')}"`;
}
