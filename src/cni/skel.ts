/**
 * The part every CNI plugin shares (libcni's `skel`): read the environment
 * and stdin, negotiate the version, call the command, print the result or
 * the spec's error object, and choose the exit code.
 */
import { readFileSync, writeSync } from 'node:fs';
import { CniError, CniErrorCode, messageChain } from './errors.js';
import { type CniEnvironment, readEnvironment } from './environment.js';
import { type NetConf, decodeJson, parseNetConf } from './netconf.js';
import { type CniResult, encodeResult } from './result.js';
import {
  currentVersion,
  isSupportedVersion,
  supportedVersions,
  versionAtLeast,
} from './version.js';

export interface CniPlugin {
  add(conf: NetConf, env: CniEnvironment, stdin: string): Promise<CniResult>;
  del(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void>;
  check(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void>;
  status(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void>;
  gc(conf: NetConf, env: CniEnvironment, stdin: string): Promise<void>;
}

export interface PluginIo {
  env: NodeJS.ProcessEnv;
  readStdin(): string;
  writeStdout(text: string): void;
  writeStderr(text: string): void;
}

export const processIo: PluginIo = {
  env: process.env,
  readStdin: () => {
    // A non-blocking stdin answers EAGAIN until the runtime has written: wait for
    // it (up to ten seconds) rather than read an empty configuration.
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let waited = 0; ; waited += 5) {
      try {
        return readFileSync(0, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || waited >= 10_000) {
          throw new CniError(
            CniErrorCode.IoFailure,
            `cannot read stdin: ${(error as Error).message}`,
          );
        }
        Atomics.wait(pause, 0, 0, 5);
      }
    }
  },
  // Plain writes to fds 1 and 2: creating Bun's process.stdout stream costs
  // several milliseconds, more than a whole ADD should take.
  writeStdout: (text) => {
    writeSync(1, text);
  },
  writeStderr: (text) => {
    writeSync(2, text);
  },
};

/** Which operations each version knows (CHECK from 0.4.0, STATUS and GC from 1.1.0). */
function requireCommandVersion(command: string, version: string): void {
  const minimum =
    command === 'CHECK' ? '0.4.0' : command === 'GC' || command === 'STATUS' ? '1.1.0' : undefined;
  if (minimum && !versionAtLeast(version, minimum)) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `${command} needs cniVersion ${minimum} or later; the configuration is ${version}`,
    );
  }
}

/** Runs one plugin invocation and returns the exit code. */
export async function runPlugin(plugin: CniPlugin, io: PluginIo): Promise<number> {
  let version: string = currentVersion;
  try {
    const stdin = io.readStdin();
    // Know the version first, so even an environment error answers in it.
    try {
      const peek = JSON.parse(stdin) as { cniVersion?: unknown };
      if (typeof peek.cniVersion === 'string' && isSupportedVersion(peek.cniVersion))
        version = peek.cniVersion;
    } catch {
      // Reported below, once we know the command needs a configuration.
    }
    const env = readEnvironment(io.env);
    if (env.command === 'VERSION') {
      io.writeStdout(JSON.stringify({ cniVersion: currentVersion, supportedVersions }) + '\n');
      return 0;
    }
    const conf = parseNetConf(decodeJson(stdin));
    version = conf.cniVersion;
    requireCommandVersion(env.command, conf.cniVersion);
    switch (env.command) {
      case 'ADD': {
        const result = await plugin.add(conf, env, stdin);
        io.writeStdout(JSON.stringify(encodeResult(result, conf.cniVersion)) + '\n');
        return 0;
      }
      case 'DEL':
        await plugin.del(conf, env, stdin);
        return 0;
      case 'CHECK':
        await plugin.check(conf, env, stdin);
        return 0;
      case 'STATUS':
        await plugin.status(conf, env, stdin);
        return 0;
      case 'GC':
        await plugin.gc(conf, env, stdin);
        return 0;
    }
  } catch (error) {
    const code = error instanceof CniError ? error.code : CniErrorCode.Internal;
    const details = error instanceof CniError ? error.details : '';
    const out: Record<string, unknown> = { cniVersion: version, code, msg: messageChain(error) };
    if (details) out.details = details;
    io.writeStdout(JSON.stringify(out) + '\n');
    if (io.env.STRATA_CNI_DEBUG && error instanceof Error && error.stack)
      io.writeStderr(error.stack + '\n');
    return 1;
  }
  return 0;
}
