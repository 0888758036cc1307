/**
 * Reads and writes through /sys and /proc, which answer for the network
 * namespace of the process (ip netns exec remounts /sys to match), at no cost
 * of a child process.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';

export type LinkKind = 'absent' | 'bridge' | 'other';

/** Whether a link exists in this namespace, and whether it is a bridge. */
export function linkKind(name: string): LinkKind {
  if (!existsSync(`/sys/class/net/${name}`)) return 'absent';
  return existsSync(`/sys/class/net/${name}/bridge`) ? 'bridge' : 'other';
}

/** A link attribute from /sys/class/net/<name>/<attribute>, trimmed; undefined if absent. */
export function linkAttribute(name: string, attribute: string): string | undefined {
  try {
    return readFileSync(`/sys/class/net/${name}/${attribute}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The bridge (or other master) a link is enslaved to, if any. */
export function linkMaster(name: string): string | undefined {
  return linkAttribute(name, 'master/uevent')?.match(/INTERFACE=(\S+)/)?.[1];
}

/** Every link in this namespace. */
export function linkNames(): string[] {
  try {
    return readdirSync('/sys/class/net');
  } catch {
    return [];
  }
}

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
