/**
 * Pod network namespaces, named `strata-<cluster>-<first 12 characters of
 * the pod uid>` (docs/cluster.md) and made with `ip netns add`, so every
 * tool finds them as /run/netns/<name>.
 *
 * Where the name is published matters. `ip netns exec NODE strata agent`
 * gives the agent a private mount namespace, a slave of its caller's: a
 * namespace the agent mounted there would be invisible to everyone else and
 * would vanish with the agent, so a restarted agent could not find it. When
 * the agent's mount namespace differs from its parent's, it keeps a handle
 * on the parent's and runs `ip netns add`/`del` there (`nsenter --mount`);
 * the mounts propagate into the agent's own view, as they do into any later
 * `ip netns exec`.
 */
import { openSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { type CommandOutput, runAsync } from '../kernel/command.js';

export const netnsDir = '/run/netns';

/** `strata-<cluster>-<uid first 12>`. */
export function podNetnsName(cluster: string, uid: string): string {
  return `strata-${cluster}-${uid.slice(0, 12)}`;
}

export function netnsPath(name: string): string {
  return `${netnsDir}/${name}`;
}

function mountNamespaceOf(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

export class PodNamespaces {
  /** `--mount=...` for nsenter, when names are published in the parent's mount namespace. */
  readonly #mount: string | undefined;

  private constructor(mount: string | undefined) {
    this.#mount = mount;
  }

  /** Decides where names are published: here, or in the mount namespace of the agent's parent. */
  static open(log: (line: string) => void): PodNamespaces {
    const own = mountNamespaceOf('self');
    const parent = mountNamespaceOf(process.ppid);
    if (own === undefined || parent === undefined || own === parent || process.ppid <= 1) {
      return new PodNamespaces(undefined);
    }
    // Held open for the agent's lifetime: the parent may exit, its namespace stays reachable.
    const fd = openSync(`/proc/${process.ppid}/ns/mnt`, 'r');
    log(
      `the agent runs in a private mount namespace (${own}); pod network namespaces are published in its parent's (${parent})`,
    );
    return new PodNamespaces(`--mount=/proc/${process.pid}/fd/${fd}`);
  }

  #ip(args: string[]): Promise<CommandOutput> {
    return this.#mount === undefined
      ? runAsync('ip', args)
      : runAsync('nsenter', [this.#mount, '--', 'ip', ...args]);
  }

  /** Whether /run/netns/<name> is a mounted namespace (not a leftover empty file). */
  exists(name: string): boolean {
    try {
      return statSync(netnsPath(name)).dev !== statSync(netnsDir).dev;
    } catch {
      return false;
    }
  }

  /** Creates the namespace with lo up; one that exists is kept as it is. */
  async ensure(name: string): Promise<void> {
    if (!this.exists(name)) {
      // A file without a namespace on it: left by an `ip netns add` that was killed.
      rmSync(netnsPath(name), { force: true });
      await this.#ip(['netns', 'add', name]);
    }
    await runAsync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  }

  /** Removes the namespace's name (the namespace goes with its last process); gone already is fine. */
  async remove(name: string): Promise<void> {
    if (this.exists(name)) await this.#ip(['netns', 'del', name]);
    else rmSync(netnsPath(name), { force: true });
  }

  /** The pids of the processes inside the namespace. */
  async pids(name: string): Promise<number[]> {
    if (!this.exists(name)) return [];
    const { stdout } = await runAsync('ip', ['netns', 'pids', name]);
    return stdout
      .split('\n')
      .filter((line) => /^\d+$/.test(line.trim()))
      .map(Number);
  }
}
