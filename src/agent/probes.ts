/**
 * Container probes (readiness, liveness, startup) with kubelet's semantics
 * (pkg/kubelet/prober: worker.go, prober.go): tcpSocket and httpGet are
 * made from the node's namespace to the pod's IP, as kubelet makes them
 * from the host; exec runs the command inside the pod's network namespace
 * with the container's environment. A result changes only after
 * successThreshold successes or failureThreshold failures in a row;
 * readiness starts as failure, liveness as success, startup as unknown.
 */
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { ContainerSpec, ProbeSpec } from './launch.js';

export type ProbeKind = 'readiness' | 'liveness' | 'startup';
export type ProbeResult = 'success' | 'failure' | 'unknown';

export interface ProbeTarget {
  podIP: string;
  /** The command prefix that runs a program in the pod's network namespace (ContainerContext.enter). */
  enter: readonly string[];
  env: Record<string, string>;
  workingDir: string;
  ports: ContainerSpec['ports'];
}

/** What one run of a probe found: success, or failure and why (kubelet's probe output). */
export interface ProbeOutcome {
  ok: boolean;
  /** Why it failed, for the agent's log (strata has no Events to put it in). */
  message?: string;
}

const success: ProbeOutcome = { ok: true };

function failure(message: string): ProbeOutcome {
  return { ok: false, message };
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function resolvePort(port: number | string, target: ProbeTarget): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return target.ports?.find((p) => p.name === port)?.containerPort;
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const where = `dial tcp ${host}:${port}`;
    const socket = connect({ host, port, timeout: timeoutMs });
    const done = (outcome: ProbeOutcome): void => {
      socket.destroy();
      resolve(outcome);
    };
    socket.once('connect', () => {
      done(success);
    });
    socket.once('timeout', () => {
      done(failure(`${where}: i/o timeout`));
    });
    socket.once('error', (error) => {
      done(failure(`${where}: ${error.message}`));
    });
  });
}

function httpProbe(
  spec: NonNullable<ProbeSpec['httpGet']>,
  host: string,
  port: number,
  timeoutMs: number,
): Promise<ProbeOutcome> {
  const https = spec.scheme === 'HTTPS';
  const request = https ? httpsRequest : httpRequest;
  const path = spec.path ?? '/';
  const url = `${https ? 'https' : 'http'}://${host}:${port}${path}`;
  const headers: Record<string, string> = { 'User-Agent': 'kube-probe/strata' };
  for (const h of spec.httpHeaders ?? []) headers[h.name] = h.value ?? '';
  return new Promise((resolve) => {
    const req = request(
      { host, port, path, method: 'GET', headers, rejectUnauthorized: false },
      (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        resolve(
          code >= 200 && code < 400
            ? success
            : failure(`HTTP probe failed with statuscode: ${code}`),
        );
      },
    );
    req.setTimeout(timeoutMs, () => {
      req.destroy(new Error(`timeout after ${timeoutMs / 1000}s`));
    });
    req.once('error', (error) => {
      resolve(failure(`Get ${JSON.stringify(url)}: ${error.message}`));
    });
    req.end();
  });
}

function execProbe(
  command: string[],
  target: ProbeTarget,
  timeoutMs: number,
): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const child = spawn(target.enter[0] ?? 'ip', [...target.enter.slice(1), ...command], {
      env: target.env,
      cwd: target.workingDir,
      stdio: 'ignore',
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    child.once('error', (error) => {
      resolve(failure(`cannot run ${JSON.stringify(command)}: ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      if (code === 0) resolve(success);
      else if (signal) resolve(failure(`command ${JSON.stringify(command)} killed by ${signal}`));
      else resolve(failure(`command ${JSON.stringify(command)} exited with ${code ?? '?'}`));
    });
  });
}

function runHandler(probe: ProbeSpec, target: ProbeTarget): Promise<ProbeOutcome> {
  const timeoutMs = Math.max(1, probe.timeoutSeconds ?? 1) * 1000;
  if (probe.exec) return execProbe(probe.exec.command, target, timeoutMs);
  const handler = probe.httpGet ?? probe.tcpSocket;
  if (!handler) return Promise.resolve(failure('the probe has no handler'));
  const port = resolvePort(handler.port, target);
  if (port === undefined) {
    return Promise.resolve(
      failure(`port ${JSON.stringify(handler.port)} is not a named port of the container`),
    );
  }
  const host = handler.host || target.podIP;
  return probe.httpGet
    ? httpProbe(probe.httpGet, host, port, timeoutMs)
    : tcpProbe(host, port, timeoutMs);
}

/**
 * Runs a probe once. Never rejects: a probe the runtime refuses to even
 * start (Node throws synchronously for a path with a space, a header value
 * with a newline, a port out of range, an argument with a NUL byte) is a
 * failed probe, with the reason as its message — one pod's manifest must
 * not be able to take the agent down.
 */
export async function probeOnce(probe: ProbeSpec, target: ProbeTarget): Promise<ProbeOutcome> {
  try {
    return await runHandler(probe, target);
  } catch (error) {
    return failure(`the probe cannot be run: ${errorMessage(error)}`);
  }
}

const initialResult: Record<ProbeKind, ProbeResult> = {
  readiness: 'failure',
  liveness: 'success',
  startup: 'unknown',
};

/** One probe of one container, run every periodSeconds until stopped. */
export class ProbeLoop {
  #result: ProbeResult;
  #lastOutcome: boolean | undefined;
  #run = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  /** The failure message last logged, so a probe that keeps failing the same way logs once. */
  #lastMessage: string | undefined;

  constructor(
    readonly kind: ProbeKind,
    private readonly probe: ProbeSpec,
    private readonly target: ProbeTarget,
    private readonly onChange: (result: ProbeResult) => void,
    initial: ProbeResult = initialResult[kind],
    private readonly log: (line: string) => void = () => undefined,
  ) {
    this.#result = initial;
  }

  get result(): ProbeResult {
    return this.#result;
  }

  start(): void {
    this.#schedule((this.probe.initialDelaySeconds ?? 0) * 1000);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#tick().catch((error: unknown) => {
        // A bug here must cost one probe run, not the agent: the loop goes on.
        this.log(`${this.kind} probe: ${errorMessage(error)}`);
        this.#schedule(this.#periodMs);
      });
    }, delayMs);
  }

  get #periodMs(): number {
    return Math.max(1, this.probe.periodSeconds ?? 10) * 1000;
  }

  async #tick(): Promise<void> {
    const { ok, message } = await probeOnce(this.probe, this.target);
    if (this.#stopped) return;
    if (ok) this.#lastMessage = undefined;
    else if (message !== undefined && message !== this.#lastMessage) {
      this.#lastMessage = message;
      this.log(`${this.kind} probe failed: ${message}`);
    }
    this.#run = ok === this.#lastOutcome ? this.#run + 1 : 1;
    this.#lastOutcome = ok;
    const threshold = ok ? (this.probe.successThreshold ?? 1) : (this.probe.failureThreshold ?? 3);
    const result: ProbeResult = ok ? 'success' : 'failure';
    if (this.#run >= threshold && result !== this.#result) {
      this.#result = result;
      this.onChange(result);
    }
    this.#schedule(this.#periodMs);
  }
}
