/**
 * `strata exec POD [-c CONTAINER] [-n NS] -- COMMAND [ARG...]`: runs a
 * command in the pod's network namespace, as its containers run (they are
 * ordinary processes on this machine, in that namespace), with the
 * container's environment, stdin, stdout and stderr attached, and its exit
 * code passed through. `-i` and `-t` are accepted for kubectl habits:
 * stdin is always attached.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { constants } from 'node:os';
import { parseArgs } from 'node:util';
import type { KubeObject } from '../api/types.js';
import {
  CommandError,
  UsageError,
  namespaceOption,
  parseCommandLine,
  targetOptions,
} from './args.js';
import { connect } from './connect.js';
import type { Io } from './io.js';
import { type ContainerSpec, findPod, podField, podNetns, podPhase } from './pod-target.js';

/** The container's environment variables as the agent gives them (literal values and downward-API fields). */
export function containerEnv(pod: KubeObject, container: ContainerSpec): Record<string, string> {
  const facts: Record<string, string> = {
    'metadata.name': pod.metadata.name ?? '',
    'metadata.namespace': pod.metadata.namespace ?? '',
    'spec.nodeName': podField(pod.spec?.nodeName),
    'status.podIP': podField(pod.status?.podIP),
  };
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    const fieldPath = variable.valueFrom?.fieldRef?.fieldPath;
    env[variable.name] =
      fieldPath === undefined ? (variable.value ?? '') : (facts[fieldPath] ?? '');
  }
  return env;
}

/** The exit code of a child that ended by a signal, as shells report it. */
function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

export async function execCommand(argv: readonly string[], io: Io): Promise<number> {
  const separator = argv.indexOf('--');
  const flags = separator < 0 ? argv : argv.slice(0, separator);
  const command = separator < 0 ? [] : argv.slice(separator + 1);
  const { values, positionals } = parseCommandLine('exec', () =>
    parseArgs({
      args: [...flags],
      options: {
        ...targetOptions,
        ...namespaceOption,
        container: { type: 'string', short: 'c' },
        stdin: { type: 'boolean', short: 'i' },
        tty: { type: 'boolean', short: 't' },
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  const [arg, ...extra] = positionals;
  if (arg === undefined || extra.length > 0 || command.length === 0) {
    throw new UsageError(
      'strata exec: name one pod and give the command after --, for example "strata exec web-7d4b9-x2k8p -- ip addr"',
    );
  }
  const connection = connect(values);
  let target;
  try {
    target = await findPod(connection, arg, values.namespace, values.container, io.err);
  } finally {
    connection.client.close();
  }
  const { pod, name, container } = target;
  const netns = podNetns(connection.record?.name ?? connection.target.name, pod);
  if (!existsSync(`/run/netns/${netns}`)) {
    throw new CommandError(
      `pod ${name} has no network namespace on this machine (${netns}; the pod is ${podPhase(pod)})`,
    );
  }
  const cwd =
    container.workingDir !== undefined &&
    isAbsolute(container.workingDir) &&
    existsSync(container.workingDir)
      ? container.workingDir
      : undefined;
  const child = spawn('ip', ['netns', 'exec', netns, ...command], {
    stdio: 'inherit',
    env: { ...process.env, ...containerEnv(pod, container) },
    cwd,
  });
  return new Promise((resolve, reject) => {
    child.once('error', (error) => {
      reject(new CommandError(`cannot run ip netns exec: ${error.message}`, { cause: error }));
    });
    child.once('exit', (code, signal) => {
      resolve(signal === null ? (code ?? 1) : signalExitCode(signal));
    });
  });
}
