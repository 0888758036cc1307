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
  netnsPath: string;
  nsenter: string;
  env: Record<string, string>;
  workingDir: string;
  ports: ContainerSpec['ports'];
}

function resolvePort(port: number | string, target: ProbeTarget): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return target.ports?.find((p) => p.name === port)?.containerPort;
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => {
      done(true);
    });
    socket.once('timeout', () => {
      done(false);
    });
    socket.once('error', () => {
      done(false);
    });
  });
}

function httpProbe(
  spec: NonNullable<ProbeSpec['httpGet']>,
  host: string,
  port: number,
  timeoutMs: number,
): Promise<boolean> {
  const request = spec.scheme === 'HTTPS' ? httpsRequest : httpRequest;
  const headers: Record<string, string> = { 'User-Agent': 'kube-probe/strata' };
  for (const h of spec.httpHeaders ?? []) headers[h.name] = h.value ?? '';
  return new Promise((resolve) => {
    const req = request(
      { host, port, path: spec.path ?? '/', method: 'GET', headers, rejectUnauthorized: false },
      (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        resolve(code >= 200 && code < 400);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy());
    req.once('error', () => {
      resolve(false);
    });
    req.end();
  });
}

function execProbe(command: string[], target: ProbeTarget, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(target.nsenter, [`--net=${target.netnsPath}`, '--', ...command], {
      env: target.env,
      cwd: target.workingDir,
      stdio: 'ignore',
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    child.once('error', () => {
      resolve(false);
    });
    child.once('exit', (code) => {
      resolve(code === 0);
    });
  });
}

/** Runs a probe once; true on success. */
export function probeOnce(probe: ProbeSpec, target: ProbeTarget): Promise<boolean> {
  const timeoutMs = Math.max(1, probe.timeoutSeconds ?? 1) * 1000;
  if (probe.exec) return execProbe(probe.exec.command, target, timeoutMs);
  const handler = probe.httpGet ?? probe.tcpSocket;
  if (!handler) return Promise.resolve(false);
  const port = resolvePort(handler.port, target);
  if (port === undefined) return Promise.resolve(false);
  const host = handler.host || target.podIP;
  return probe.httpGet
    ? httpProbe(probe.httpGet, host, port, timeoutMs)
    : tcpProbe(host, port, timeoutMs);
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

  constructor(
    readonly kind: ProbeKind,
    private readonly probe: ProbeSpec,
    private readonly target: ProbeTarget,
    private readonly onChange: (result: ProbeResult) => void,
    initial: ProbeResult = initialResult[kind],
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
      void this.#tick();
    }, delayMs);
  }

  async #tick(): Promise<void> {
    const ok = await probeOnce(this.probe, this.target);
    if (this.#stopped) return;
    this.#run = ok === this.#lastOutcome ? this.#run + 1 : 1;
    this.#lastOutcome = ok;
    const threshold = ok ? (this.probe.successThreshold ?? 1) : (this.probe.failureThreshold ?? 3);
    const result: ProbeResult = ok ? 'success' : 'failure';
    if (this.#run >= threshold && result !== this.#result) {
      this.#result = result;
      this.onChange(result);
    }
    this.#schedule(Math.max(1, this.probe.periodSeconds ?? 10) * 1000);
  }
}
