/**
 * The namespaces and processes of one bench:services run, and how they all go away.
 *
 * Every namespace is `sb-<6 random hex>-<role>`, made by this process; every process the
 * run starts is tracked by its pid. cleanup() stops those processes, then any process
 * still inside one of the run's namespaces (all of them started by this run), then
 * deletes the namespaces, which takes their links, addresses and nftables tables with
 * them. It is synchronous, so the SIGINT handler and the `exit` handler can call it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type SectionName = 'kernel' | 'throughput' | 'dns';
export const sectionNames: readonly SectionName[] = ['kernel', 'throughput', 'dns'];

export interface BenchOptions {
  quick: boolean;
  sections: readonly SectionName[];
  /** Full applies of the 1,000 Services (each applier once per round). */
  fullApplyRounds: number;
  endpointChanges: number;
  iperfRounds: number;
  iperfSeconds: number;
  connectSeconds: number;
  dnsRounds: number;
  dnsSeconds: number;
}

/** Thrown for a bad command line; the spine prints it with the usage and exits 2. */
export class BenchUsageError extends Error {
  override readonly name = 'BenchUsageError';
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  let quick = false;
  let sections: readonly SectionName[] = sectionNames;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') quick = true;
    else if (arg === '--only') {
      const value = argv[++i] ?? '';
      const picked = value
        .split(',')
        .filter((s): s is SectionName => (sectionNames as readonly string[]).includes(s));
      if (picked.length === 0 || picked.length !== value.split(',').length) {
        throw new BenchUsageError(
          `--only must be one or more of ${sectionNames.join(', ')} (comma-separated): got "${value}"`,
        );
      }
      sections = picked;
    } else throw new BenchUsageError(`Unknown argument "${arg ?? ''}"`);
  }
  return {
    quick,
    sections,
    fullApplyRounds: quick ? 1 : 3,
    endpointChanges: quick ? 10 : 30,
    iperfRounds: quick ? 2 : 5,
    iperfSeconds: quick ? 2 : 4,
    connectSeconds: quick ? 1 : 2,
    dnsRounds: quick ? 1 : 3,
    dnsSeconds: quick ? 3 : 10,
  };
}

/** A progress line, on stderr so stdout holds only the report. */
export function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function now(): bigint {
  return process.hrtime.bigint();
}

export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Runs a command to completion; its stdout, or an error with its stderr. */
export function sh(file: string, args: readonly string[], input?: string): string {
  const r = spawnSync(file, args, {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    ...(input === undefined ? {} : { input }),
  });
  if (r.status !== 0) {
    throw new Error(
      `${file} ${args.join(' ')} failed (exit ${r.status ?? 'by signal'}): ${r.stderr.trim()}`,
    );
  }
  return r.stdout;
}

/** `nft args...` in `netns`; its stdout. */
export function nftIn(netns: string, args: readonly string[], input?: string): string {
  return sh('ip', ['netns', 'exec', netns, 'nft', ...args], input);
}

/** How many elements a set or map in `netns` holds, as the kernel lists it. */
export function mapElements(netns: string, table: string, map: string): number {
  const out = nftIn(netns, ['-j', 'list', 'map', ...table.split(' '), map]);
  const items = (JSON.parse(out) as { nftables: { map?: { elem?: unknown[] } }[] }).nftables;
  return items.find((i) => i.map)?.map?.elem?.length ?? 0;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export class Lab {
  readonly prefix = `sb-${randomBytes(3).toString('hex')}`;
  readonly #namespaces: string[] = [];
  readonly #children = new Set<ChildProcess>();
  readonly #directories: string[] = [];
  #cleaned = false;

  /** A new namespace `<prefix>-<role>` with loopback up. */
  namespace(role: string): string {
    const name = `${this.prefix}-${role}`;
    sh('ip', ['netns', 'add', name]);
    this.#namespaces.push(name);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** A temporary directory, removed by cleanup(). */
  directory(): string {
    const dir = mkdtempSync(join(tmpdir(), `${this.prefix}-`));
    this.#directories.push(dir);
    return dir;
  }

  #spawn(netns: string, args: readonly string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', netns, ...args], { stdio: 'pipe' });
    this.#children.add(child);
    child.on('exit', () => this.#children.delete(child));
    return child;
  }

  /** `args` run in `netns` to completion; rejects on a non-zero exit or after `timeoutMs`. */
  exec(netns: string, args: readonly string[], timeoutMs: number, input = ''): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const child = this.#spawn(netns, args);
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdin?.on('error', () => {
        // It may exit before reading its input; the exit status tells.
      });
      child.stdin?.end(input);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve({ stdout, stderr });
        else {
          const how = signal ? `was stopped by ${signal}` : `exited ${code ?? '?'}`;
          reject(new Error(`${args.join(' ')} in ${netns} ${how}: ${stderr.trim()}`));
        }
      });
    });
  }

  /** A long-running process in `netns`; resolves once its output matches `ready`. */
  start(netns: string, args: readonly string[], ready: RegExp): Promise<ChildProcess> {
    return new Promise((resolve, reject) => {
      const child = this.#spawn(netns, args);
      let out = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${args[0] ?? ''} in ${netns} did not start in 10 s: ${out.trim()}`));
      }, 10_000);
      const seen = (d: Buffer): void => {
        if (out.length < 64 * 1024) out += d.toString();
        if (ready.test(out)) {
          clearTimeout(timer);
          resolve(child);
        }
      };
      child.stdout?.on('data', seen);
      child.stderr?.on('data', seen);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(
          new Error(`${args[0] ?? ''} in ${netns} exited ${code ?? signal ?? '?'}: ${out.trim()}`),
        );
      });
    });
  }

  /**
   * Stops every process of the run and deletes its namespaces and directories; returns
   * the namespaces that remain (none, unless deletion failed). Idempotent.
   */
  cleanup(): { removed: string[]; left: string[] } {
    const removed = this.#cleaned ? [] : [...this.#namespaces];
    if (!this.#cleaned) {
      this.#cleaned = true;
      for (const child of this.#children) child.kill('SIGTERM');
      if (this.#children.size > 0) sleepSync(200);
      for (const netns of this.#namespaces) {
        const pids = spawnSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' }).stdout ?? '';
        for (const pid of pids.split('\n').filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
        spawnSync('ip', ['netns', 'del', netns]);
      }
      for (const dir of this.#directories) rmSync(dir, { recursive: true, force: true });
    }
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
    const left = list
      .split('\n')
      .map((line) => line.split(' ')[0] ?? '')
      .filter((name) => name.startsWith(`${this.prefix}-`));
    return { removed, left };
  }
}
