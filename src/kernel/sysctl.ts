/**
 * sysctls under /proc/sys/net, which answer for the network namespace of the
 * thread that opens them (unlike /sys/class/net, which shows the namespace
 * of whoever mounted /sys: links are therefore read over rtnetlink).
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** Sets a sysctl under /proc/sys unless it already has the value. */
export function ensureSysctl(key: string, value: string): void {
  const path = `/proc/sys/${key.replaceAll('.', '/')}`;
  try {
    if (readFileSync(path, 'utf8').trim() === value) return;
  } catch {
    // Fall through to the write, which reports the real problem.
  }
  writeFileSync(path, value);
}
