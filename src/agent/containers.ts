/**
 * One container of a pod: a process started in the pod's network namespace
 * (`ip netns exec <pod>`, which also binds the pod's /etc/netns/<pod>/resolv.conf
 * over /etc/resolv.conf in a mount namespace of its own), in a session of its own so signals
 * reach everything it forks, with stdout and stderr appended to
 * `pods/<uid>/<container>.log`. It is restarted per the pod's
 * restartPolicy with kubelet's back-off (launch.ts), probed (probes.ts),
 * and stopped with SIGTERM, then SIGKILL after the grace period.
 *
 * A process started by an earlier agent is adopted from its record (pid
 * and start time): it is not started again, and since only its parent
 * could wait() for it, its end is noticed by polling /proc, with an exit
 * code that is unknown (kubelet's ContainerStatusUnknown, 137).
 */
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContainerRecord, Termination } from './state.js';
import {
  type ContainerSpec,
  type LaunchPlan,
  type PodFacts,
  backoffResetMs,
  planLaunch,
  restartDelayMs,
  restartsAfter,
} from './launch.js';
import { ProbeLoop, type ProbeResult, type ProbeTarget } from './probes.js';
import {
  type ProcessIdentity,
  identify,
  isRunning,
  sessionMembers,
  signalContainer,
} from './processes.js';
import type { ContainerView, RestartPolicy } from './status.js';

/** How often an adopted process (one the agent cannot wait for) is looked at. */
const adoptedPollMs = 1000;

export interface ContainerContext {
  facts: PodFacts;
  restartPolicy: RestartPolicy;
  terminationGracePeriodSeconds: number;
  /**
   * The command prefix that runs a program inside the pod's network
   * namespace with its /etc/netns files (`ip netns exec <name>`; `ip` by
   * absolute path: the container's PATH may not lead to it).
   */
  enter: readonly string[];
  logPath: string;
  log: (line: string) => void;
  /** Something a status or the record shows changed. */
  onChange: () => void;
}

interface RunningProcess {
  id: ProcessIdentity;
  startedAt: string;
  poll?: NodeJS.Timeout;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The executable the first word names, looked up as execvp would in the container's PATH. */
export function findExecutable(name: string, path: string, cwd: string): string | undefined {
  const executable = (file: string): boolean => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (name.includes('/')) {
    const file = isAbsolute(name) ? name : resolve(cwd, name);
    return executable(file) ? file : undefined;
  }
  for (const dir of path.split(':')) {
    const file = join(dir || '.', name);
    if (executable(file)) return isAbsolute(file) ? file : resolve(cwd, file);
  }
  return undefined;
}

export class ContainerRunner {
  readonly name: string;
  #restartCount: number;
  #process: RunningProcess | undefined;
  /** How the current run ended, while it is not restarted. */
  #terminated: Termination | undefined;
  #lastTerminated: Termination | undefined;
  #configError: string | undefined;
  /** Restarts in the current crash loop, and when the next may happen. */
  #crashes = 0;
  #restartAt = 0;
  #backoffMs = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  /** When the termination under way sends SIGKILL; a shorter grace period brings it closer. */
  #killAt: number | undefined;
  #probes: ProbeLoop[] = [];
  #started = false;
  #ready = false;

  constructor(
    private readonly spec: ContainerSpec,
    private readonly ctx: ContainerContext,
    record?: ContainerRecord,
  ) {
    this.name = spec.name;
    this.#restartCount = record?.restartCount ?? 0;
    this.#lastTerminated = record?.lastTerminated;
    this.#terminated = record?.terminated;
    if (record?.process) this.#adopt(record.process);
  }

  /** What the record keeps of this container. */
  get record(): ContainerRecord {
    const record: ContainerRecord = { restartCount: this.#restartCount };
    if (this.#process) record.process = { ...this.#process.id, startedAt: this.#process.startedAt };
    if (this.#terminated) record.terminated = this.#terminated;
    if (this.#lastTerminated) record.lastTerminated = this.#lastTerminated;
    return record;
  }

  get running(): ProcessIdentity | undefined {
    return this.#process?.id;
  }

  /** Finished for good: it ended and the restartPolicy does not restart it. */
  get done(): boolean {
    return (
      this.#process === undefined &&
      this.#terminated !== undefined &&
      !restartsAfter(this.ctx.restartPolicy, this.#terminated.exitCode)
    );
  }

  get view(): ContainerView {
    const base = {
      name: this.name,
      image: this.spec.image ?? '',
      restartCount: this.#restartCount,
      ready: this.#process !== undefined && this.#started && this.#ready,
      started: this.#process !== undefined && this.#started,
    };
    if (this.#process) {
      const { id, startedAt } = this.#process;
      return {
        ...base,
        state: { kind: 'running', startedAt, containerID: `strata://${id.pid}` },
        lastTerminated: this.#lastTerminated,
      };
    }
    if (this.#terminated && !this.done) {
      // kubelet names the whole back-off, not what is left of it, so the status stays put.
      const delay = Math.round(this.#backoffMs / 1000);
      return {
        ...base,
        state: {
          kind: 'waiting',
          reason: 'CrashLoopBackOff',
          message: `back-off ${delay}s restarting failed container=${this.name} pod=${this.ctx.facts.name}`,
        },
        lastTerminated: this.#terminated,
      };
    }
    if (this.#terminated) {
      return {
        ...base,
        state: { kind: 'terminated', ...this.#terminated },
        lastTerminated: this.#lastTerminated,
      };
    }
    if (this.#configError) {
      return {
        ...base,
        state: {
          kind: 'waiting',
          reason: 'CreateContainerConfigError',
          message: this.#configError,
        },
        lastTerminated: this.#lastTerminated,
      };
    }
    return {
      ...base,
      state: { kind: 'waiting', reason: 'ContainerCreating' },
      lastTerminated: this.#lastTerminated,
    };
  }

  /** Starts the container if it should run now; arms a timer when it must wait for its back-off. */
  reconcile(): void {
    if (this.#stopping || this.#process) return;
    if (this.#terminated) {
      if (this.done) return;
      const wait = this.#restartAt - Date.now();
      if (wait > 0) {
        this.#restartTimer ??= setTimeout(() => {
          this.#restartTimer = undefined;
          this.ctx.onChange();
        }, wait);
        return;
      }
      this.#lastTerminated = this.#terminated;
      this.#terminated = undefined;
      this.#restartCount++;
    }
    this.#start();
  }

  #start(): void {
    const decision = planLaunch(this.spec, this.ctx.facts);
    if (!decision.ok) {
      if (this.#configError === undefined) this.ctx.log(decision.message);
      this.#configError = decision.message;
      return;
    }
    this.#configError = undefined;
    const plan = decision.plan;
    const [name = ''] = plan.argv;
    const file = findExecutable(name, plan.env.PATH ?? '', plan.workingDir);
    if (!file) {
      this.#failedToStart(`exec: "${name}": executable file not found in $PATH`);
      return;
    }
    const startedAt = now();
    const log = openSync(this.ctx.logPath, 'a');
    let child;
    try {
      child = spawn(
        this.ctx.enter[0] ?? 'ip',
        [...this.ctx.enter.slice(1), file, ...plan.argv.slice(1)],
        { cwd: plan.workingDir, env: plan.env, stdio: ['ignore', log, log], detached: true },
      );
    } finally {
      closeSync(log);
    }
    child.unref();
    const id = child.pid === undefined ? undefined : identify(child.pid);
    child.once('error', (error) => {
      if (!this.#process) this.#failedToStart(`cannot start "${name}": ${error.message}`);
    });
    if (!id) return;
    this.#process = { id, startedAt };
    this.#killAt = undefined;
    child.once('exit', (code, signal) => {
      const number = signal ? osConstants.signals[signal] : 0;
      this.#exited({
        exitCode: signal ? 128 + number : (code ?? 0),
        ...(signal ? { signal: number } : {}),
        reason: code === 0 ? 'Completed' : 'Error',
        startedAt,
        finishedAt: now(),
        containerID: `strata://${id.pid}`,
      });
    });
    this.#startProbes(plan);
    this.ctx.onChange();
  }

  #failedToStart(message: string): void {
    this.ctx.log(`container ${this.name}: ${message}`);
    const at = now();
    this.#exited({ exitCode: 128, reason: 'StartError', message, startedAt: at, finishedAt: at });
  }

  #adopt(process: ProcessIdentity & { startedAt: string }): void {
    const id = { pid: process.pid, startTicks: process.startTicks };
    if (!isRunning(id)) {
      this.#terminated = {
        exitCode: 137,
        reason: 'ContainerStatusUnknown',
        message: 'the process ended while the agent was not running; its exit code is unknown',
        startedAt: process.startedAt,
        finishedAt: now(),
        containerID: `strata://${id.pid}`,
      };
      return;
    }
    const running: RunningProcess = { id, startedAt: process.startedAt };
    running.poll = setInterval(() => {
      if (isRunning(id) || this.#process !== running) return;
      this.#exited({
        exitCode: 137,
        reason: 'ContainerStatusUnknown',
        message:
          'the process was adopted from an earlier agent, which alone could read its exit code',
        startedAt: process.startedAt,
        finishedAt: now(),
        containerID: `strata://${id.pid}`,
      });
    }, adoptedPollMs);
    this.#process = running;
    // It was started (and probed) before: ready until a probe says otherwise.
    this.#started = true;
    this.#ready = true;
    const decision = planLaunch(this.spec, this.ctx.facts);
    if (decision.ok) this.#startProbes(decision.plan, true);
  }

  #exited(termination: Termination): void {
    clearInterval(this.#process?.poll);
    this.#process = undefined;
    this.#stopProbes();
    this.#started = false;
    this.#ready = false;
    const ranMs = Date.parse(termination.finishedAt) - Date.parse(termination.startedAt ?? '');
    if (ranMs >= backoffResetMs) this.#crashes = 0;
    this.#backoffMs = restartDelayMs(this.#crashes);
    this.#restartAt = Date.now() + this.#backoffMs;
    this.#crashes++;
    this.#terminated = termination;
    this.ctx.onChange();
  }

  #startProbes(plan: LaunchPlan, adopted = false): void {
    const target: ProbeTarget = {
      podIP: this.ctx.facts.podIP,
      enter: this.ctx.enter,
      env: plan.env,
      workingDir: plan.workingDir,
      ports: this.spec.ports,
    };
    const { startupProbe, readinessProbe, livenessProbe } = this.spec;
    const afterStartup = (): void => {
      this.#started = true;
      this.#ready = !readinessProbe || adopted;
      if (readinessProbe) {
        const initial = adopted ? 'success' : 'failure';
        this.#addProbe(
          'readiness',
          readinessProbe,
          target,
          (result) => {
            this.#ready = result === 'success';
            this.ctx.onChange();
          },
          initial,
        );
      }
      if (livenessProbe) {
        this.#addProbe('liveness', livenessProbe, target, (result) => {
          if (result === 'failure') this.#restartUnhealthy('liveness');
        });
      }
    };
    if (startupProbe && !adopted) {
      this.#started = false;
      this.#addProbe('startup', startupProbe, target, (result) => {
        if (result === 'failure') this.#restartUnhealthy('startup');
        else if (result === 'success') {
          this.#stopProbes();
          afterStartup();
          this.ctx.onChange();
        }
      });
    } else {
      afterStartup();
    }
  }

  #addProbe(
    kind: ProbeLoop['kind'],
    spec: NonNullable<ContainerSpec['livenessProbe']>,
    target: ProbeTarget,
    onChange: (result: ProbeResult) => void,
    initial?: ProbeResult,
  ): void {
    const loop = new ProbeLoop(kind, spec, target, onChange, initial, (line) => {
      this.ctx.log(`container ${this.name}: ${line}`);
    });
    this.#probes.push(loop);
    loop.start();
  }

  #stopProbes(): void {
    for (const probe of this.#probes) probe.stop();
    this.#probes = [];
  }

  /** A failed liveness or startup probe: the container is killed, and restarted per policy. */
  #restartUnhealthy(kind: string): void {
    this.ctx.log(`container ${this.name} failed its ${kind} probe and will be restarted`);
    this.#stopProbes();
    void this.#terminate(this.ctx.terminationGracePeriodSeconds);
  }

  /**
   * SIGTERM, SIGKILL after `graceSeconds` (or sooner, see
   * shortenGracePeriod), then whatever the container forked that is left.
   */
  async #terminate(graceSeconds: number): Promise<void> {
    const id = this.#process?.id;
    if (!id) return;
    signalContainer(id, 'SIGTERM');
    this.#killAt = Math.min(this.#killAt ?? Infinity, Date.now() + graceSeconds * 1000);
    while (isRunning(id) && Date.now() < this.#killAt) await sleep(50);
    if (isRunning(id)) signalContainer(id, 'SIGKILL');
    while (isRunning(id)) await sleep(20);
    for (const pid of sessionMembers(id.pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
  }

  /** Stops the container for good (the pod is going): no restart follows. */
  async stop(graceSeconds: number): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    this.#stopProbes();
    await this.#terminate(graceSeconds);
  }

  /**
   * A termination under way gets at most `graceSeconds` more from now (a
   * second, shorter DELETE, or the pod removed from the API): kubelet's pod
   * workers let a grace period shrink, never grow. At 0, SIGKILL at once.
   */
  shortenGracePeriod(graceSeconds: number): void {
    if (this.#killAt === undefined) return;
    this.#killAt = Math.min(this.#killAt, Date.now() + graceSeconds * 1000);
    const id = this.#process?.id;
    if (id && this.#killAt <= Date.now()) signalContainer(id, 'SIGKILL');
  }

  /** Drops timers and probes, leaving the process running (the agent is stopping). */
  dispose(): void {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    clearInterval(this.#process?.poll);
    this.#stopProbes();
  }
}
