/**
 * The runtime's parameters, passed in environment variables (CNI spec 1.1.0,
 * "Parameters"), validated the way libcni validates them before a call.
 */
import { CniError, CniErrorCode } from './errors.js';

export const cniCommands = ['ADD', 'DEL', 'CHECK', 'STATUS', 'VERSION', 'GC'] as const;
export type CniCommand = (typeof cniCommands)[number];

export interface CniEnvironment {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS, parsed: `KEY=VALUE` pairs separated by `;`. */
  args: Map<string, string>;
  /** CNI_PATH, split on `:`. */
  path: string[];
}

const containerIdPattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function invalid(message: string): CniError {
  return new CniError(CniErrorCode.InvalidEnvironmentVariables, message);
}

/** Checks an interface name as libcni does: the kernel's IFNAMSIZ and the characters it refuses. */
export function validateInterfaceName(name: string, variable: string): void {
  if (name === '') throw invalid(`${variable} must not be empty`);
  // IFNAMSIZ counts bytes, as libcni's len(ifName) does, not characters.
  if (Buffer.byteLength(name, 'utf8') > 15) {
    throw invalid(`${variable} "${name}" is longer than 15 bytes`);
  }
  if (name === '.' || name === '..') throw invalid(`${variable} must not be "." or ".."`);
  if (/[/:\s]/.test(name)) {
    throw invalid(`${variable} "${name}" contains "/", ":" or white space`);
  }
}

/** Checks a container ID against the spec's rule: alphanumeric first, then `[a-zA-Z0-9_.-]`. */
export function validateContainerId(id: string, variable: string): void {
  if (!containerIdPattern.test(id)) {
    throw invalid(
      `${variable} "${id}" is invalid: it must start with a letter or digit, followed by letters, digits, "_", "." or "-"`,
    );
  }
}

function parseArgs(raw: string): Map<string, string> {
  const args = new Map<string, string>();
  if (raw === '') return args;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw invalid(`CNI_ARGS: "${pair}" is not of the form KEY=VALUE`);
    args.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return args;
}

/** Which variables each command needs (CNI spec 1.1.0, "Parameters", per operation). */
const required: Record<CniCommand, readonly string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  GC: [],
  STATUS: [],
  VERSION: [],
};

/** Reads and validates the CNI parameters for the command named in CNI_COMMAND. */
export function readEnvironment(env: NodeJS.ProcessEnv): CniEnvironment {
  const command = env.CNI_COMMAND;
  if (command === undefined || command === '') throw invalid('CNI_COMMAND is not set');
  if (!(cniCommands as readonly string[]).includes(command)) {
    throw invalid(`CNI_COMMAND "${command}" is not one of ${cniCommands.join(', ')}`);
  }
  const cmd = command as CniCommand;
  for (const variable of required[cmd]) {
    if (env[variable] === undefined || env[variable] === '') {
      throw invalid(`${variable} is required for ${cmd} but is not set`);
    }
  }
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  if (containerId !== '') validateContainerId(containerId, 'CNI_CONTAINERID');
  if (ifname !== '') validateInterfaceName(ifname, 'CNI_IFNAME');
  const netns = env.CNI_NETNS ?? '';
  if (netns !== '' && !netns.startsWith('/')) {
    throw invalid(`CNI_NETNS "${netns}" must be an absolute path`);
  }
  return {
    command: cmd,
    containerId,
    netns,
    ifname,
    args: parseArgs(env.CNI_ARGS ?? ''),
    path: (env.CNI_PATH ?? '').split(':').filter((p) => p !== ''),
  };
}

/**
 * Keys of CNI_ARGS this plugin understands; others are refused unless
 * `IgnoreUnknown` is set, as the reference plugins do.
 */
export function checkArgs(args: Map<string, string>, known: readonly string[]): void {
  const ignore = args.get('IgnoreUnknown');
  if (ignore !== undefined && ['1', 'true', 'True'].includes(ignore)) return;
  for (const key of args.keys()) {
    if (key !== 'IgnoreUnknown' && !known.includes(key)) {
      throw invalid(
        `CNI_ARGS: unknown argument "${key}" (set IgnoreUnknown=1 to let the plugin ignore it)`,
      );
    }
  }
}
