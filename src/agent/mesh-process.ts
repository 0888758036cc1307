/**
 * The agent's side of the node's mesh proxy process (`strata mesh-proxy`,
 * mesh-command.ts): starts it in the agent's network namespace, copies its
 * log lines into the agent's log, waits until it says `ready`, restarts it
 * with backoff when it exits on its own, and stops it (SIGTERM, then SIGKILL
 * after a grace period) when the agent stops.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { strataExecutable } from '../cluster/components.js';
import type { MeshProxyOptions } from './mesh-command.js';

/** What the proxy is started with (its command line), and how it is supervised. */
export interface MeshProcessOptions extends MeshProxyOptions {
  log: (line: string) => void;
  /** The command that runs `strata`; dist/bin/strata when unset. */
  executable?: string;
  /** How long the first start may take, restarts included; 60 s. */
  startTimeoutMs?: number;
  /** How long a stopping proxy gets to remove its capture before SIGKILL; 10 s. */
  stopGraceMs?: number;
}

export class MeshProcessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MeshProcessError';
  }
}

const firstBackoffMs = 500;
const maxBackoffMs = 30_000;
/** A run that lasted this long resets the backoff. */
const steadyMs = 60_000;

export class MeshProcess {
  readonly #options: MeshProcessOptions;
  #child: ChildProcess | undefined;
  #stopping = false;
  #backoffMs = firstBackoffMs;
  #restart: NodeJS.Timeout | undefined;
  #restarts = 0;

  constructor(options: MeshProcessOptions) {
    this.#options = options;
  }

  /** The running proxy's pid, for status and benchmarks. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** How many times the proxy was started again after exiting on its own. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Starts the proxy and resolves once it is ready, trying again until the start timeout. */
  async start(): Promise<void> {
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 60_000);
    let backoff = firstBackoffMs;
    for (;;) {
      try {
        await this.#launch(Math.max(1000, deadline - Date.now()));
        return;
      } catch (error) {
        if (this.#stopping) throw error;
        const wait = Math.min(backoff, Math.max(0, deadline - Date.now()));
        if (wait === 0) {
          throw new MeshProcessError(
            `the mesh proxy did not start within ${Math.round((this.#options.startTimeoutMs ?? 60_000) / 1000)} s: ${(error as Error).message}`,
          );
        }
        this.#options.log(`mesh: ${(error as Error).message}; starting again in ${wait} ms`);
        await new Promise((resolve) => setTimeout(resolve, wait));
        backoff = Math.min(backoff * 2, maxBackoffMs);
      }
    }
  }

  /** Stops the proxy (it removes its capture) and waits for it to exit. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restart);
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) =>
      child.once('exit', () => {
        resolve();
      }),
    );
    child.kill('SIGTERM');
    const grace = setTimeout(() => {
      this.#options.log('mesh: the proxy did not stop in time; killing it');
      child.kill('SIGKILL');
    }, this.#options.stopGraceMs ?? 10_000);
    await exited;
    clearTimeout(grace);
  }

  #arguments(): string[] {
    const o = this.#options;
    return [
      'mesh-proxy',
      '--state-dir',
      o.stateDir,
      '--api',
      o.api,
      '--node',
      o.nodeName,
      '--ca-socket',
      o.caSocket,
      '--ca-token-file',
      o.caTokenFile,
      '--trust-domain',
      o.trustDomain,
      ...(o.workloadCertTtlSeconds === undefined
        ? []
        : ['--workload-cert-ttl', `${o.workloadCertTtlSeconds}s`]),
    ];
  }

  /**
   * One run of the process: resolves when it says ready, rejects when it
   * exits before (or is killed for not being ready within `readyWithinMs`).
   */
  #launch(readyWithinMs: number): Promise<void> {
    const child = spawn(this.#options.executable ?? strataExecutable, this.#arguments(), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    const startedAt = Date.now();
    createInterface({ input: child.stderr }).on('line', (line) => {
      this.#options.log(line);
    });
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const late = setTimeout(() => {
        this.#options.log(`mesh: the proxy was not ready within ${readyWithinMs} ms; killing it`);
        child.kill('SIGKILL');
      }, readyWithinMs);
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (line.trim() !== 'ready' || ready) return;
        ready = true;
        clearTimeout(late);
        resolve();
      });
      child.once('error', (error) => {
        if (!ready) reject(new MeshProcessError(`cannot start the mesh proxy: ${error.message}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(late);
        const how = signal === null ? `exit code ${String(code)}` : `signal ${signal}`;
        if (!ready) {
          reject(new MeshProcessError(`the mesh proxy exited before it was ready (${how})`));
          return;
        }
        if (Date.now() - startedAt > steadyMs) this.#backoffMs = firstBackoffMs;
        this.#restartLater(`the proxy exited (${how})`);
      });
    });
  }

  /** Starts the proxy again after the backoff, and again after that while it fails. */
  #restartLater(why: string): void {
    if (this.#stopping) return;
    const wait = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, maxBackoffMs);
    this.#options.log(`mesh: ${why}; starting it again in ${wait} ms`);
    this.#restart = setTimeout(() => {
      this.#restarts += 1;
      this.#launch(this.#options.startTimeoutMs ?? 60_000).catch((error: unknown) => {
        this.#restartLater((error as Error).message);
      });
    }, wait);
  }
}
