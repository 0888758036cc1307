/**
 * Named points in ADD, for two test and operator aids:
 *
 * - STRATA_CNI_FAULT=`pause:<point>` stops the process there with SIGSTOP
 *   (so a test can kill -9 it at exactly that point); `fail:<point>` throws
 *   there (so a test sees the rollback).
 * - STRATA_CNI_TRACE=1 prints the milliseconds since start at each point
 *   on stderr, to see where an ADD spends its time.
 *
 * The fault hook needs STRATA_CNI_TEST_HOOKS=1 as well: runtimes pass their
 * own environment on to plugins, and one stray variable must not be able to
 * stop pod creation on a node.
 *
 * Unset, a point costs two environment lookups.
 */
import { writeSync } from 'node:fs';
import { CniError, CniErrorCode } from './errors.js';

export type Checkpoint =
  | 'start'
  | 'after-ipam'
  | 'after-bridge'
  | 'after-veth-created'
  | 'after-veth'
  | 'after-container'
  | 'after-masquerade'
  | 'done';

export function checkpoint(point: Checkpoint): void {
  if (process.env.STRATA_CNI_TRACE) {
    writeSync(2, `strata-cni trace: ${point} at ${performance.now().toFixed(2)} ms\n`);
  }
  const fault = process.env.STRATA_CNI_FAULT;
  if (!fault || process.env.STRATA_CNI_TEST_HOOKS !== '1') return;
  if (fault === `pause:${point}`) process.kill(process.pid, 'SIGSTOP');
  else if (fault === `fail:${point}`) {
    throw new CniError(CniErrorCode.Internal, `injected failure at ${point} (STRATA_CNI_FAULT)`);
  }
}
