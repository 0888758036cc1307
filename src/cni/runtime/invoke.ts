/**
 * Running one plugin the way a container runtime does (CNI spec 1.1.0,
 * section 2 "Execution Protocol"; libcni pkg/invoke): the executable named
 * by `type` is found in the bin dirs, the parameters go in CNI_* environment
 * variables, the configuration on stdin; the result, or the error object
 * `{code, msg, details}`, comes back on stdout.
 */
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { findPlugin } from '../delegate.js';
import type { CniCommand } from '../environment.js';
import { CniError, CniErrorCode } from '../errors.js';
import { type CniResult, decodeResult } from '../result.js';
import { currentVersion } from '../version.js';

/** libcni's CacheDir: results of ADD are kept under `<cacheDir>/results`. */
export const defaultCacheDir = '/var/lib/cni';
/** How long one plugin call may run before it is killed. */
export const defaultPluginTimeoutMs = 60_000;

/** How this runtime finds and runs plugins (libcni's CNIConfig). */
export interface CniRuntimeConfig {
  /** Directories searched for plugin executables, in order; passed to plugins as CNI_PATH. */
  binDirs: readonly string[];
  /** Result cache directory (default /var/lib/cni, as libcni). */
  cacheDir?: string;
  /** Kill a plugin that runs longer than this many milliseconds. */
  timeoutMs?: number;
  /** The environment plugins inherit (default process.env), as libcni passes os.Environ(). */
  env?: NodeJS.ProcessEnv;
  /** Run plugins inside this named network namespace (`ip netns exec`): a local node's namespace. */
  pluginNetns?: string;
}

/** One call: the command, the attachment parameters, the configuration for stdin. */
export interface PluginRequest {
  command: CniCommand;
  containerId?: string;
  /** CNI_NETNS: the path of the container's network namespace. */
  netns?: string;
  ifname?: string;
  /** CNI_ARGS as key/value pairs. */
  args?: readonly (readonly [string, string])[];
  config: Readonly<Record<string, unknown>>;
  /** How messages name the plugin, e.g. `plugins[1] (portmap)`; default its type. */
  label?: string;
}

/** A plugin's failure: the spec's code (or the plugin's own, 100+), its msg and details. */
export class PluginError extends CniError {
  /** The plugin's type (executable name). */
  readonly plugin: string;
  readonly command: CniCommand;
  /** The plugin's own message, without the runtime's prefix. */
  readonly msg: string;
  /** Failures of the DELs run to undo a failed chain ADD; they do not replace this error. */
  readonly rollbackErrors: Error[] = [];

  constructor(
    plugin: string,
    command: CniCommand,
    code: number,
    msg: string,
    options: { label?: string; details?: string; cause?: unknown } = {},
  ) {
    const details = options.details ? `: ${options.details}` : '';
    super(
      // Codes above the spec's are the plugin's own (spec 1.1.0, "Error"); carried as given.
      code as CniErrorCode,
      `${options.label ?? plugin} failed on ${command}: ${msg}${details}`,
      { details: options.details ?? '', cause: options.cause },
    );
    this.name = 'PluginError';
    this.plugin = plugin;
    this.command = command;
    this.msg = msg;
  }
}

/** The executable for `type`: the first in the bin dirs that can be run (libcni FindInPath); `field` names it in errors. */
export function findInPath(type: string, binDirs: readonly string[], field = 'type'): string {
  return findPlugin(type, binDirs, field);
}

interface ExecOutcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  spawnError?: NodeJS.ErrnoException;
}

/** After the plugin exits, how long to wait for pipes a leftover child of it may still hold. */
const pipeGraceMs = 1000;

function spawnOnce(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  stdin: string,
  timeoutMs: number,
): Promise<ExecOutcome> {
  return new Promise((resolve) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    let settled = false;
    let grace: NodeJS.Timeout | undefined;
    // Its own process group, so a timeout kills the plugin and whatever it started.
    const child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const finish = (outcome: Omit<ExecOutcome, 'stdout' | 'stderr' | 'timedOut'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(grace);
      resolve({
        ...outcome,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        timedOut,
      });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // A plugin may exit without reading stdin (VERSION); the broken pipe is not an error.
    child.stdin.on('error', () => undefined);
    child.on('error', (error: NodeJS.ErrnoException) => {
      finish({ status: null, signal: null, spawnError: error });
    });
    child.on('exit', (status, signal) => {
      grace = setTimeout(() => {
        finish({ status, signal });
      }, pipeGraceMs);
    });
    child.on('close', (status, signal) => {
      finish({ status, signal });
    });
    child.stdin.end(stdin);
  });
}

/** libcni RawExec retries "text file busy": the executable is being replaced right now. */
function textFileBusy(outcome: ExecOutcome): boolean {
  return (
    outcome.spawnError?.code === 'ETXTBSY' ||
    (outcome.status !== 0 && outcome.stdout.trim() === '' && /text file busy/i.test(outcome.stderr))
  );
}

/** CNI_ARGS: `KEY=VALUE` pairs joined by `;` (spec 1.1.0, "Parameters"). */
export function formatCniArgs(args: readonly (readonly [string, string])[] = []): string {
  return args.map(([key, value]) => `${key}=${value}`).join(';');
}

/** The plugin's error object, or a message from stderr when it printed none (libcni pluginErr). */
function pluginFailure(
  type: string,
  request: PluginRequest,
  outcome: ExecOutcome,
  timeoutMs: number,
): PluginError {
  const label = request.label ?? type;
  if (outcome.spawnError) {
    return new PluginError(
      type,
      request.command,
      CniErrorCode.Internal,
      `cannot run: ${outcome.spawnError.message}`,
      {
        label,
        cause: outcome.spawnError,
      },
    );
  }
  if (outcome.timedOut) {
    return new PluginError(
      type,
      request.command,
      CniErrorCode.Internal,
      `did not finish within ${timeoutMs} ms and was killed`,
      {
        label,
      },
    );
  }
  const stdout = outcome.stdout.trim();
  const stderr = outcome.stderr.trim();
  if (stdout !== '') {
    try {
      const error = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
      if (typeof error.code === 'number' && typeof error.msg === 'string') {
        return new PluginError(type, request.command, error.code, error.msg, {
          label,
          details: typeof error.details === 'string' ? error.details : '',
        });
      }
    } catch {
      // Not an error object: reported below with the raw output.
    }
    return new PluginError(
      type,
      request.command,
      CniErrorCode.Internal,
      `failed (${outcome.status ?? outcome.signal ?? 'unknown status'}) but its output is not a CNI error object: ${JSON.stringify(stdout.slice(0, 500))}`,
      { label },
    );
  }
  const how = outcome.signal
    ? `killed by ${outcome.signal}`
    : `exit status ${outcome.status ?? 'unknown'}`;
  return new PluginError(
    type,
    request.command,
    CniErrorCode.Internal,
    stderr === '' ? `failed with no error message (${how})` : `failed (${how}): ${stderr}`,
    { label },
  );
}

function typeOf(pluginPath: string): string {
  return pluginPath.slice(pluginPath.lastIndexOf('/') + 1);
}

/** Runs the plugin for one request and returns its stdout; throws PluginError when it fails. */
export async function execPlugin(
  runtime: CniRuntimeConfig,
  pluginPath: string,
  request: PluginRequest,
): Promise<string> {
  const type = typeOf(pluginPath);
  // Every CNI_* variable is set, empty when unused, so none leaks in from our own environment (libcni Args.AsEnv).
  const env: NodeJS.ProcessEnv = {
    ...(runtime.env ?? process.env),
    CNI_COMMAND: request.command,
    CNI_CONTAINERID: request.containerId ?? '',
    CNI_NETNS: request.netns ?? '',
    CNI_ARGS: formatCniArgs(request.args),
    CNI_IFNAME: request.ifname ?? '',
    CNI_PATH: runtime.binDirs.join(':'),
  };
  const [file, args] = runtime.pluginNetns
    ? ['ip', ['netns', 'exec', runtime.pluginNetns, pluginPath]]
    : [pluginPath, []];
  const stdin = JSON.stringify(request.config);
  const timeoutMs = runtime.timeoutMs ?? defaultPluginTimeoutMs;
  let outcome = await spawnOnce(file, args, env, stdin, timeoutMs);
  for (let retry = 0; retry < 5 && textFileBusy(outcome); retry++) {
    await sleep(1000);
    outcome = await spawnOnce(file, args, env, stdin, timeoutMs);
  }
  if (outcome.spawnError || outcome.timedOut || outcome.status !== 0) {
    throw pluginFailure(type, request, outcome, timeoutMs);
  }
  return outcome.stdout;
}

/** Runs ADD and decodes the result (spec 1.1.0 section 5, "Success"). */
export async function execPluginWithResult(
  runtime: CniRuntimeConfig,
  pluginPath: string,
  request: PluginRequest,
): Promise<CniResult> {
  const stdout = await execPlugin(runtime, pluginPath, request);
  const type = typeOf(pluginPath);
  try {
    return decodeResult(JSON.parse(stdout), `the result of ${type}`);
  } catch (error) {
    throw new PluginError(
      type,
      request.command,
      CniErrorCode.DecodingFailure,
      `cannot decode its result: ${(error as Error).message}`,
      { label: request.label ?? type, cause: error },
    );
  }
}

/** The VERSION answer (spec 1.1.0 section 5, "Version"). */
export interface PluginVersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

const versionInfoCache = new Map<string, Promise<PluginVersionInfo>>();

async function queryVersionInfo(
  runtime: CniRuntimeConfig,
  pluginPath: string,
): Promise<PluginVersionInfo> {
  const type = typeOf(pluginPath);
  // libcni GetVersionInfo sends {"cniVersion": <its own version>} on stdin.
  const stdout = await execPlugin(runtime, pluginPath, {
    command: 'VERSION',
    config: { cniVersion: currentVersion },
  });
  let parsed: { cniVersion?: unknown; supportedVersions?: unknown };
  try {
    parsed = JSON.parse(stdout) as typeof parsed;
  } catch (error) {
    throw new PluginError(
      type,
      'VERSION',
      CniErrorCode.DecodingFailure,
      `cannot decode its answer: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  const cniVersion = typeof parsed.cniVersion === 'string' ? parsed.cniVersion : '';
  const listed = parsed.supportedVersions;
  if (Array.isArray(listed) && listed.every((v) => typeof v === 'string')) {
    return { cniVersion, supportedVersions: listed };
  }
  // A 0.1.0 plugin names only the version it speaks.
  if (cniVersion !== '') return { cniVersion, supportedVersions: [cniVersion] };
  throw new PluginError(
    type,
    'VERSION',
    CniErrorCode.DecodingFailure,
    'its answer has neither supportedVersions nor cniVersion',
  );
}

/**
 * Asks the plugin which spec versions it supports. Answers are remembered per
 * executable (path, size, mtime, inode), so a replaced binary is asked again
 * and parallel callers share one call.
 */
export async function getVersionInfo(
  runtime: CniRuntimeConfig,
  pluginPath: string,
): Promise<PluginVersionInfo> {
  const s = await stat(pluginPath);
  const key = [runtime.pluginNetns ?? '', pluginPath, s.size, s.mtimeMs, s.ino].join('\0');
  let info = versionInfoCache.get(key);
  if (!info) {
    info = queryVersionInfo(runtime, pluginPath);
    versionInfoCache.set(key, info);
    // A failed answer is not remembered: the next caller asks again.
    info.catch(() => versionInfoCache.delete(key));
  }
  return info;
}
