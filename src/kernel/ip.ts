/**
 * iproute2, driven in batch mode: a list of `ip` commands runs in one
 * process, in the current network namespace or in the one at a netns path
 * (`/var/run/netns/x`, `/proc/<pid>/ns/net`, any bind mount).
 */
import { run, runAsync } from './command.js';

/** Where a batch runs: the plugin's own namespace, or the one at this path. */
export interface Namespace {
  netns?: string;
}

const namedNetns = /^\/(?:var\/)?run\/netns\/([^/]+)$/;

function ipInvocation(ns: Namespace, ipArgs: string[]): [string, string[]] {
  if (!ns.netns) return ['ip', ipArgs];
  // ip enters a named namespace itself; any other path goes through nsenter (one more exec).
  const named = namedNetns.exec(ns.netns);
  if (named?.[1]) return ['ip', ['-n', named[1], ...ipArgs]];
  return ['nsenter', [`--net=${ns.netns}`, 'ip', ...ipArgs]];
}

function batchInput(lines: readonly string[]): string {
  return lines.join('\n') + '\n';
}

/** Runs each line as one ip command, in one process; stops at the first failure and throws. */
export function ipBatch(lines: readonly string[], ns: Namespace = {}): void {
  if (lines.length === 0) return;
  const [file, args] = ipInvocation(ns, ['-batch', '-']);
  run(file, args, batchInput(lines));
}

/** `ipBatch` as a concurrent step. */
export async function ipBatchAsync(lines: readonly string[], ns: Namespace = {}): Promise<void> {
  if (lines.length === 0) return;
  const [file, args] = ipInvocation(ns, ['-batch', '-']);
  await runAsync(file, args, batchInput(lines));
}

function parseJsonLines(stdout: string): unknown[][] {
  // Each show prints one JSON array on its own line.
  return stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('['))
    .map((l) => JSON.parse(l) as unknown[]);
}

/** Runs show commands in one process and returns each one's JSON output. */
export function ipJsonBatch(
  lines: readonly string[],
  ns: Namespace = {},
  options: readonly string[] = [],
): unknown[][] {
  if (lines.length === 0) return [];
  const [file, args] = ipInvocation(ns, [...options, '-json', '-details', '-batch', '-']);
  return parseJsonLines(run(file, args, batchInput(lines)).stdout);
}

/** `ipJsonBatch` as a concurrent step. */
export async function ipJsonBatchAsync(
  lines: readonly string[],
  ns: Namespace = {},
): Promise<unknown[][]> {
  if (lines.length === 0) return [];
  const [file, args] = ipInvocation(ns, ['-json', '-batch', '-']);
  return parseJsonLines((await runAsync(file, args, batchInput(lines))).stdout);
}

/** Quotes a value for an ip batch line (alias text may hold spaces). */
export function quoteBatchWord(word: string): string {
  return /^[\w.:/@%+-]+$/.test(word) ? word : `"${word.replace(/(["\\])/g, '\\$1')}"`;
}
