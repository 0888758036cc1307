/**
 * Logged NetworkPolicy drops, for the namespaces annotated
 * `strata.io/log-policy-drops: "true"`: the kernel sends them to NFLOG
 * (rate-limited, see src/policy/compile.ts), DropLog reads them, and each
 * becomes one JSON line in `<node dir>/policy-drops.log` with the pod that
 * dropped it and, when the other end is a pod, its name. The file is
 * rotated once at 10 MiB (one `.1` kept).
 */
import { appendFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { messageChain } from '../cni/errors.js';
import { DropLog } from './policy-drop-log.js';
import type { NetworkPolicyEnforcer } from './network-policy.js';
import type { AgentSettings } from './options.js';

export type { DropLog };

/** The node's NFLOG group for policy drops (groups are per network namespace). */
export const policyDropLogGroup = 1990;

const maxBytes = 10 * 1024 * 1024;

/** Starts reading drops; undefined (and the reason logged) when NFLOG cannot be bound. */
export async function startPolicyDropLog(
  settings: AgentSettings,
  enforcer: NetworkPolicyEnforcer,
): Promise<DropLog | undefined> {
  const file = join(settings.nodeDir, 'policy-drops.log');
  const log = new DropLog({
    onError: (error) => {
      settings.log(`policy drop log: ${messageChain(error)}`);
    },
  });
  let written = 0;
  try {
    written = statSync(file).size;
  } catch {
    // Not there yet.
  }
  try {
    await log.start(policyDropLogGroup, (record) => {
      const peerIp = record.direction === 'ingress' ? record.src : record.dst;
      const line = `${JSON.stringify({ ...record, peer: enforcer.podAt(peerIp) ?? peerIp })}\n`;
      if (written + line.length > maxBytes) {
        renameSync(file, `${file}.1`);
        written = 0;
      }
      appendFileSync(file, line, { mode: 0o600 });
      written += line.length;
    });
  } catch (error) {
    settings.log(`NetworkPolicy drops will not be logged: ${messageChain(error)}`);
    return undefined;
  }
  return log;
}
