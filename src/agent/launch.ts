/**
 * What a container's process is, decided from the pod spec alone (pure):
 * the command line, the environment and the working directory, with
 * Kubernetes' semantics — `command` replaces the image's entrypoint and
 * `args` its arguments; there are no images here, so a container without a
 * `command` cannot start (CreateContainerConfigError, as kubelet reports a
 * container whose configuration it cannot build); env values are literal or
 * from the downward API; `$(VAR)` references expand as in kubelet
 * (third_party/forked/golang/expansion). Also the restart rules: which
 * exits restart, and after how long.
 */
import type { KubeObject } from '../api/types.js';
import type { RestartPolicy } from './status.js';

export interface ProbeSpec {
  exec?: { command: string[] };
  httpGet?: {
    path?: string;
    port: number | string;
    host?: string;
    scheme?: string;
    httpHeaders?: { name: string; value?: string }[];
  };
  tcpSocket?: { port: number | string; host?: string };
  initialDelaySeconds?: number;
  timeoutSeconds?: number;
  periodSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}

export interface EnvVarSpec {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

export interface ContainerSpec {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVarSpec[];
  workingDir?: string;
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: ProbeSpec;
  livenessProbe?: ProbeSpec;
  startupProbe?: ProbeSpec;
}

export function containersOf(pod: KubeObject): ContainerSpec[] {
  const list = pod.spec?.containers;
  return Array.isArray(list) ? (list as ContainerSpec[]) : [];
}

/** The environment every container starts from; the pod's env entries override it. */
export const baseEnvironment: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
};

export interface LaunchPlan {
  /** argv: command then args, references expanded. */
  argv: string[];
  env: Record<string, string>;
  workingDir: string;
}

export type LaunchDecision =
  | { ok: true; plan: LaunchPlan }
  | { ok: false; reason: 'CreateContainerConfigError'; message: string };

/** What the downward API gives a fieldRef (the paths the API accepts, validation/pod.ts). */
export interface PodFacts {
  name: string;
  namespace: string;
  nodeName: string;
  podIP: string;
}

/**
 * Expands `$(NAME)` from `lookup`; `$$` is a literal `$`; a reference to an
 * unknown name, or an unterminated one, stays as written (expansion.go).
 */
export function expandReferences(
  text: string,
  lookup: (name: string) => string | undefined,
): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (c !== '$' || i + 1 >= text.length) {
      out += c;
      continue;
    }
    const next = text.charAt(i + 1);
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = text.indexOf(')', i + 2);
      if (close < 0) {
        out += text.slice(i);
        break;
      }
      const name = text.slice(i + 2, close);
      out += lookup(name) ?? `$(${name})`;
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

function fieldValue(path: string, facts: PodFacts): string {
  switch (path) {
    case 'metadata.name':
      return facts.name;
    case 'metadata.namespace':
      return facts.namespace;
    case 'spec.nodeName':
      return facts.nodeName;
    case 'status.podIP':
      return facts.podIP;
    default:
      return '';
  }
}

/** Decides the container's process, or why it cannot be started. */
export function planLaunch(container: ContainerSpec, facts: PodFacts): LaunchDecision {
  const env: Record<string, string> = { ...baseEnvironment, HOSTNAME: facts.name };
  // Each value may refer to the entries before it (kubelet makeEnvironmentVariables).
  const defined = new Map<string, string>();
  for (const item of container.env ?? []) {
    const fieldPath = item.valueFrom?.fieldRef?.fieldPath;
    const value =
      fieldPath !== undefined
        ? fieldValue(fieldPath, facts)
        : expandReferences(item.value ?? '', (name) => defined.get(name));
    defined.set(item.name, value);
    env[item.name] = value;
  }
  const command = container.command ?? [];
  if (command.length === 0) {
    return {
      ok: false,
      reason: 'CreateContainerConfigError',
      message: `container "${container.name}" has no command: strata runs no images, so spec.containers[].command must name the program to run`,
    };
  }
  const lookup = (name: string): string | undefined => defined.get(name);
  return {
    ok: true,
    plan: {
      argv: [...command, ...(container.args ?? [])].map((arg) => expandReferences(arg, lookup)),
      env,
      workingDir: container.workingDir || '/',
    },
  };
}

/** Whether an exit restarts the container under the pod's restartPolicy. */
export function restartsAfter(policy: RestartPolicy, exitCode: number): boolean {
  return policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
}

/** The first back-off: kubelet waits 10 s; 1 s here, so a crash loop is seen and fixed sooner. */
export const initialBackoffMs = 1000;
/** kubelet's MaxContainerBackOff. */
export const maxBackoffMs = 300_000;
/** A run this long ends a crash loop: kubelet forgets a back-off entry after twice the maximum. */
export const backoffResetMs = 2 * maxBackoffMs;

/**
 * The delay before restart number `crashes + 1` of a crash loop, as
 * kubelet's doBackOff: the first restart at once, then the back-off
 * doubling from its initial value to the maximum.
 */
export function restartDelayMs(crashes: number): number {
  if (crashes <= 0) return 0;
  return Math.min(maxBackoffMs, initialBackoffMs * 2 ** (crashes - 1));
}
