/**
 * nftables: every change is one `nft -f -` transaction, applied whole or not
 * at all, as kube-proxy's nftables mode does it.
 */
import { CommandError, run, runAsync } from './command.js';

/** Applies a ruleset script atomically. */
export function nftApply(script: string): void {
  run('nft', ['-f', '-'], script);
}

/** `nftApply` as a concurrent step. */
export async function nftApplyAsync(script: string): Promise<void> {
  await runAsync('nft', ['-f', '-'], script);
}

/** Lists an object as nft's JSON; undefined when it does not exist, an error for any other failure. */
export function nftListJson(what: string): unknown {
  let stdout: string;
  try {
    stdout = run('nft', ['-j', 'list', ...what.split(' ')]).stdout;
  } catch (error) {
    if (error instanceof CommandError && /No such file or directory/.test(error.stderr)) {
      return undefined;
    }
    throw error;
  }
  return JSON.parse(stdout) as unknown;
}
