/**
 * Network namespaces for end-to-end tests: each test gets names unique to
 * the run, a "node" namespace that stands in for the host (the plugin runs
 * inside it, so the real root namespace is never touched), and cleanup that
 * runs even when the test fails.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let counter = 0;
const runTag = `${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;

/** A name unique to this run and call: short enough for an interface name (<= 15). */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}${runTag}${counter.toString(36)}`.slice(0, 15);
}

export function sh(file: string, args: readonly string[], input?: string): string {
  return execFileSync(file, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs a command inside a named namespace; returns status and output without throwing. */
export function inNetns(
  netns: string,
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): { status: number | null; stdout: string; stderr: string } {
  const child = spawnSync('ip', ['netns', 'exec', netns, ...args], {
    encoding: 'utf8',
    input: options.input ?? '',
    env: options.env ?? process.env,
    timeout: options.timeoutMs ?? 30_000,
  });
  return { status: child.status, stdout: child.stdout, stderr: child.stderr };
}

export function netnsPath(name: string): string {
  return `/var/run/netns/${name}`;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** What one test created; `cleanup()` removes all of it and never throws. */
export class Lab {
  readonly namespaces: string[] = [];
  readonly dirs: string[] = [];
  readonly cleanups: (() => void)[] = [];

  /** A new empty network namespace with lo up. */
  netns(prefix = 'stp'): string {
    const name = uniqueName(prefix);
    sh('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** A private temporary directory (IPAM data dirs and the like). */
  dir(prefix = 'strata-test-'): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  /**
   * A TCP server in `netns` on host:port that answers every connection with
   * `reply`, until cleanup; returns once it is listening.
   */
  serveTcp(netns: string, host: string, port: number, reply: string): void {
    const server = spawn(
      'ip',
      ['netns', 'exec', netns, 'ncat', '-lk', host, String(port), '-c', `echo ${reply}`],
      { stdio: 'ignore' },
    );
    this.onCleanup(() => server.kill('SIGKILL'));
    for (let i = 0; i < 100; i++) {
      const ss = spawnSync('ip', ['netns', 'exec', netns, 'ss', '-Hltn', `sport = :${port}`], {
        encoding: 'utf8',
      });
      if (ss.stdout.trim() !== '') return;
      spawnSync('sleep', ['0.05']);
    }
    throw new Error(`server in ${netns} on ${host}:${port} did not start listening`);
  }

  onCleanup(fn: () => void): void {
    this.cleanups.push(fn);
  }

  cleanup(): void {
    for (const fn of this.cleanups.reverse()) {
      try {
        fn();
      } catch {
        // Keep cleaning.
      }
    }
    // Deleting a namespace deletes its links, routes and nftables tables with it.
    for (const ns of this.namespaces.reverse()) {
      spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
        .stdout?.split('\n')
        .filter(Boolean)
        .forEach((pid) => {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // Already gone.
          }
        });
      spawnSync('ip', ['netns', 'del', ns]);
    }
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
  }
}

/** One link of `ip -json -details link show`, with the fields tests look at. */
export interface LinkInfo {
  ifindex: number;
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  promiscuity: number;
  master?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string };
}

/** Every link in a namespace, with details. */
export function links(netns: string): LinkInfo[] {
  return JSON.parse(sh('ip', ['-n', netns, '-j', '-d', 'link', 'show'])) as LinkInfo[];
}

/** One link in a namespace, or undefined when it does not exist. */
export function link(netns: string, name: string): LinkInfo | undefined {
  return links(netns).find((l) => l.ifname === name);
}

/** Host veths strata-cni made: the links whose alias starts with "strata-cni ". */
export function strataHostVeths(netns: string): LinkInfo[] {
  return links(netns).filter((l) => l.ifalias?.startsWith('strata-cni ') === true);
}
