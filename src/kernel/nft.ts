/**
 * nftables: every change is one `nft -f -` transaction, applied whole or not
 * at all, as kube-proxy's nftables mode does it.
 */
import { run, runAsync } from './command.js';

/** Applies a ruleset script atomically. */
export function nftApply(script: string): void {
  run('nft', ['-f', '-'], script);
}

/** `nftApply` as a concurrent step. */
export async function nftApplyAsync(script: string): Promise<void> {
  await runAsync('nft', ['-f', '-'], script);
}

/** Lists an object as nft's JSON; undefined when it does not exist. */
export function nftListJson(what: string): unknown {
  try {
    return JSON.parse(run('nft', ['-j', 'list', ...what.split(' ')]).stdout) as unknown;
  } catch {
    return undefined;
  }
}
