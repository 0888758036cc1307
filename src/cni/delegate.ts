/**
 * Delegation to another plugin, as the spec describes for IPAM plugins: the
 * delegate is found in CNI_PATH, gets the same environment and the same
 * network configuration on stdin, and its result or error is passed on.
 */
import { accessSync, constants } from 'node:fs';
import { CniError, CniErrorCode, type CniErrorCode as Code } from './errors.js';
import type { CniCommand, CniEnvironment } from './environment.js';
import { type CniResult, decodeResult } from './result.js';

/** The delegate's executable: the first `type` in CNI_PATH that can be run. */
export function findPlugin(type: string, path: readonly string[], field: string): string {
  if (type.includes('/') || type === '.' || type === '..') {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `${field}: "${type}" is not a plugin name`,
    );
  }
  for (const dir of path) {
    const candidate = `${dir.replace(/\/+$/, '')}/${type}`;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  throw new CniError(
    CniErrorCode.InvalidNetworkConfig,
    `${field}: cannot find plugin "${type}" in CNI_PATH [${path.join(' ')}]`,
  );
}

/** Runs the delegate for `command` and returns its decoded result (ADD) or nothing. */
export async function execDelegate(
  type: string,
  command: CniCommand,
  stdin: string,
  env: CniEnvironment,
  field = 'ipam.type',
): Promise<CniResult | undefined> {
  const file = findPlugin(type, env.path, field);
  // Loaded when needed: most calls delegate nothing, and the module costs start-up time.
  const { spawn } = process.getBuiltinModule('node:child_process');
  const { status, stdout, stderr } = await new Promise<{
    status: number | null;
    stdout: string;
    stderr: string;
  }>((resolve, reject) => {
    const child = spawn(file, [], { env: { ...process.env, CNI_COMMAND: command }, stdio: 'pipe' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (error) => {
      reject(new CniError(CniErrorCode.Internal, `${field}: cannot run ${file}: ${error.message}`));
    });
    child.on('close', (code) => {
      resolve({
        status: code,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
  });
  if (status !== 0) {
    let code: Code = CniErrorCode.Internal;
    let msg = stderr.trim() || `exit status ${status}`;
    try {
      const error = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
      if (typeof error.code === 'number') code = error.code as Code;
      if (error.msg) msg = error.details ? `${error.msg}: ${error.details}` : error.msg;
    } catch {
      // Not a CNI error object; keep stderr.
    }
    throw new CniError(code, `${type} ${command} failed: ${msg}`);
  }
  if (command !== 'ADD') return undefined;
  try {
    return decodeResult(JSON.parse(stdout), `the result of ${type}`);
  } catch (error) {
    if (error instanceof CniError) throw error;
    throw new CniError(
      CniErrorCode.DecodingFailure,
      `cannot decode the result of ${type}: ${(error as Error).message}`,
    );
  }
}
