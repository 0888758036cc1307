/**
 * Pod network namespaces, named `strata-<cluster>-<first 12 characters of
 * the pod uid>` (docs/cluster.md) and made with `ip netns add`, so every
 * tool finds them as /run/netns/<name>.
 *
 * Where the name is published matters, and must not depend on how the
 * agent was launched. `nsenter --net=/run/netns/<node> strata agent` (what
 * `strata up` does) leaves the agent in the host's mount namespace: names
 * are published right there. `ip netns exec <node> strata agent` gives the
 * agent a private mount namespace whose /run/netns is a slave of the
 * host's (mountinfo `master:N`): a name mounted there would be invisible
 * to everyone else and would vanish with the agent. So, first thing at
 * start, the agent looks at its own /run/netns: when it is a slave of peer
 * group N, the agent finds a mount namespace where /run/netns is a member
 * of group N itself (`shared:N`; following `master:` links up to the top),
 * its parent's first, then PID 1's, then any process's, keeps a handle on
 * it for its lifetime, and runs `ip netns add`/`del` there
 * (`nsenter --mount`). A mount made in a peer of the group propagates to
 * every peer and slave of it: the host, the agent's own view, and any later
 * `ip netns exec`. This does not need the launcher to still be alive (an
 * exited launcher leaves the agent with PID 1 as its parent), nor PID 1's
 * namespace to be readable (a sandbox may hide it).
 */
import {
  closeSync,
  mkdirSync,
  renameSync,
  writeFileSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
} from 'node:fs';
import { type CommandOutput, runAsync } from '../kernel/command.js';

/** The one directory pod namespace names live in (iproute2's NETNS_RUN_DIR, /var/run being /run). */
export const netnsDir = '/run/netns';

/** `strata-<cluster>-<uid first 12>`. */
export function podNetnsName(cluster: string, uid: string): string {
  return `strata-${cluster}-${uid.slice(0, 12)}`;
}

export function netnsPath(name: string): string {
  return `${netnsDir}/${name}`;
}

/** Files `ip netns exec <name>` binds over /etc (iproute2's NETNS_ETC_DIR). */
export const netnsEtcDir = '/etc/netns';

/**
 * Writes the pod's /etc/netns/<name>/resolv.conf, or removes the pod's
 * directory there when it should see the node's own (text undefined).
 */
export function writePodResolvConf(name: string, text: string | undefined): void {
  const dir = `${netnsEtcDir}/${name}`;
  if (text === undefined) {
    rmSync(dir, { recursive: true, force: true });
    return;
  }
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/resolv.conf`;
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

function mountNamespaceOf(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** How a mount propagates (proc(5), mountinfo optional fields): its peer group, and its master's. */
export interface Propagation {
  /** `shared:N`: mounts made under it propagate to the whole group N. */
  shared?: number;
  /** `master:N`: a slave, receiving what is mounted in group N. */
  master?: number;
}

/** The propagation of the mount at `mountPoint` in a mountinfo text (the topmost one); undefined when nothing is mounted there. */
export function propagationOf(mountinfo: string, mountPoint = netnsDir): Propagation | undefined {
  let found: Propagation | undefined;
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    // Mount points are written with octal escapes (\040 for a space).
    const point = (fields[4] ?? '').replace(/\\([0-7]{3})/g, (_, octal: string) =>
      String.fromCharCode(parseInt(octal, 8)),
    );
    if (point !== mountPoint) continue;
    const propagation: Propagation = {};
    for (const field of fields.slice(6)) {
      if (field === '-') break;
      const [tag, value] = field.split(':');
      if (tag === 'shared') propagation.shared = Number(value);
      else if (tag === 'master') propagation.master = Number(value);
    }
    found = propagation;
  }
  return found;
}

function netnsPropagationOf(pid: number | 'self'): Propagation | undefined {
  try {
    return propagationOf(readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The processes to look at for a mount namespace: the parent, PID 1, then every other. */
function candidatePids(): number[] {
  const first = [process.ppid, 1];
  let all: number[] = [];
  try {
    all = readdirSync('/proc')
      .filter((name) => /^\d+$/.test(name))
      .map(Number);
  } catch {
    // No /proc to list: the first two only.
  }
  return [...new Set([...first, ...all])].filter((pid) => pid > 0 && pid !== process.pid);
}

/**
 * A process whose mount namespace (not `own`) holds /run/netns as a member
 * of `group`, and the propagation it has there; the first found.
 */
function findGroupMember(
  group: number,
  own: string,
): { pid: number; namespace: string; propagation: Propagation } | undefined {
  const seen = new Set<string>([own]);
  for (const pid of candidatePids()) {
    const namespace = mountNamespaceOf(pid);
    if (namespace === undefined || seen.has(namespace)) continue;
    seen.add(namespace);
    const propagation = netnsPropagationOf(pid);
    if (propagation?.shared === group) return { pid, namespace, propagation };
  }
  return undefined;
}

export class PodNamespaces {
  /** `--mount=...` for nsenter, when names are published in another mount namespace. */
  readonly #mount: string | undefined;

  private constructor(mount: string | undefined) {
    this.#mount = mount;
  }

  /**
   * Decides where names are published (see above). Call it first thing at
   * start: it reads only /proc, and needs nothing the launcher provides.
   */
  static open(log: (line: string) => void, attempt = 0): PodNamespaces {
    const own = mountNamespaceOf('self');
    const mine = netnsPropagationOf('self');
    let group = mine?.master;
    if (own === undefined || group === undefined) return new PodNamespaces(undefined);
    let target: { pid: number; namespace: string } | undefined;
    const groups = new Set<number>();
    // Up the chain of masters, to the group the host's /run/netns belongs to.
    while (group !== undefined && !groups.has(group)) {
      groups.add(group);
      const member = findGroupMember(group, own);
      if (!member) break;
      target = member;
      group = member.propagation.master;
    }
    if (!target) {
      // A shared mount (the agent runs in a container's namespace, say) is seen by its peers.
      if (mine?.shared === undefined) {
        log(
          `the agent runs in a private mount namespace (${own}) and no process was found in one it receives ${netnsDir} from: pod network namespaces are published in its own, where only the agent sees them`,
        );
      }
      return new PodNamespaces(undefined);
    }
    // Held open for the agent's lifetime: the process may exit, its namespace stays reachable.
    let fd: number | undefined;
    try {
      fd = openSync(`/proc/${target.pid}/ns/mnt`, 'r');
      if (readlinkSync(`/proc/self/fd/${fd}`) !== target.namespace) {
        closeSync(fd);
        fd = undefined;
      }
    } catch {
      fd = undefined;
    }
    if (fd === undefined) {
      // The process exited (and its pid may be another's now) in between: look again.
      if (attempt < 5) return PodNamespaces.open(log, attempt + 1);
      throw new Error(`cannot open the mount namespace of process ${target.pid}`);
    }
    log(
      `the agent runs in a private mount namespace (${own}); pod network namespaces are published in ${target.namespace} (that of process ${target.pid}), which its ${netnsDir} receives from`,
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
    writePodResolvConf(name, undefined);
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
