/**
 * The cluster's processes: started detached (their own session, output in
 * a log file, still running after `strata up` exits), found again by pid or
 * by their command line, and stopped with SIGTERM, then SIGKILL.
 *
 * A recorded pid is only signalled while its command line still names the
 * cluster's state directory: after a reboot or a crash the number may
 * belong to an unrelated process by now.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface DetachedCommand {
  file: string;
  args: readonly string[];
  /** Where stdout and stderr go (appended). */
  logPath: string;
  cwd?: string;
}

/** Starts `file args...` in a new session with its output in `logPath`; returns its pid. */
export function startDetached(command: DetachedCommand): Promise<number> {
  const log = openSync(command.logPath, 'a', 0o644);
  try {
    const child = spawn(command.file, command.args, {
      detached: true,
      stdio: ['ignore', log, log],
      cwd: command.cwd,
    });
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => {
        child.unref();
        if (child.pid === undefined) reject(new Error(`${command.file} did not start`));
        else resolve(child.pid);
      });
    });
  } finally {
    closeSync(log);
  }
}

/** The process's argv, or undefined when it is gone or a zombie (whose cmdline is empty). */
export function processArgv(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (text === '') return undefined;
    return text.replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

function mentions(argv: readonly string[], stateDir: string): boolean {
  return argv.some((arg) => arg === stateDir || arg.startsWith(`${stateDir}/`));
}

/**
 * Whether a process `up` just started is still alive: not gone, not a zombie,
 * and not replaced by another program. An empty or unreadable cmdline alone
 * does not count as gone: a component started through nsenter shows one for
 * an instant while it execs node.
 */
export function isStartingProcessAlive(pid: number, stateDir: string): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  let state: string;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return false;
  }
  if (state === 'Z' || state === 'X') return false;
  const argv = processArgv(pid);
  return argv === undefined || mentions(argv, stateDir);
}

/** Whether `pid` is alive and still one of the cluster's processes (its argv names the state dir). */
export function isClusterProcess(pid: number, stateDir: string): boolean {
  const argv = processArgv(pid);
  return argv !== undefined && mentions(argv, stateDir);
}

const componentCommands = new Set(['apiserver', 'controller', 'agent', 'mesh-proxy']);

/**
 * Every running `strata apiserver|controller|agent|mesh-proxy` whose arguments name
 * `stateDir`, recorded or not (an `up` killed between starting a process
 * and recording it leaves one behind).
 */
export function findComponentProcesses(stateDir: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const argv = processArgv(pid);
    if (!argv || !mentions(argv, stateDir)) continue;
    const strata = argv.findIndex((arg) => /(^|\/)strata(\.js)?$/.test(arg));
    if (strata >= 0 && componentCommands.has(argv[strata + 1] ?? '')) found.push(pid);
  }
  return found;
}

/** The pid of node `node`'s `strata mesh-proxy` of the cluster in `stateDir`, if one runs. */
export function meshProxyPid(stateDir: string, node: string): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = processArgv(Number(entry));
    const at = argv?.indexOf('mesh-proxy') ?? -1;
    if (argv === undefined || at < 0) continue;
    const flag = (name: string) => argv[argv.indexOf(name, at) + 1];
    if (flag('--node') === node && flag('--state-dir') === stateDir) return Number(entry);
  }
  return undefined;
}

/** The pids of every process in a named network namespace (`ip netns pids`). */
export function namespacePids(netns: string): number[] {
  const child = spawnSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' });
  if (child.status !== 0) return [];
  return child.stdout
    .split('\n')
    .filter((line) => /^\d+$/.test(line))
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already.
  }
}

function alive(pid: number): boolean {
  return processArgv(pid) !== undefined;
}

async function waitForExit(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(alive);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = left.filter(alive);
  }
  return left;
}

/**
 * SIGTERM to each process, SIGKILL to those still running after
 * `graceMs`; resolves when all are gone (or would not die within a further
 * two seconds, which only an uninterruptible sleep in the kernel explains).
 * Returns the pids that were running.
 */
export async function stopProcesses(pids: readonly number[], graceMs: number): Promise<number[]> {
  const running = [...new Set(pids)].filter(alive);
  for (const pid of running) signal(pid, 'SIGTERM');
  const stubborn = await waitForExit(running, graceMs);
  for (const pid of stubborn) signal(pid, 'SIGKILL');
  await waitForExit(stubborn, 2000);
  return running;
}
