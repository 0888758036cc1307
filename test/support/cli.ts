// The strata CLI under test: `main` in this process against a real API server on a
// unix socket in a temporary state directory (a MemoryStore behind it), with what it
// prints captured; and the built CLI as a child process, for the commands that start
// and stop processes.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningApiServer, startApiServer } from '../../src/apiserver/server.js';
import { main } from '../../src/cli/main.js';
import { strataExecutable } from '../../src/cluster/components.js';
import { MemoryStore } from '../../src/store/memory.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `strata args...` in this process; `stdin` is what `-f -` reads. */
export async function strata(args: readonly string[], stdin = ''): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await main(
    args,
    { write: (text: string) => (stdout += text) },
    { write: (text: string) => (stderr += text) },
    () => stdin,
  );
  return { code, stdout, stderr };
}

/** An API server on `<stateDir>/api.sock`, as `strata apiserver` serves it, over a MemoryStore. */
export class TestCluster {
  private constructor(
    readonly stateDir: string,
    private readonly server: RunningApiServer,
  ) {}

  static async start(): Promise<TestCluster> {
    const stateDir = mkdtempSync(join(tmpdir(), 'strata-cli-'));
    const server = await startApiServer({
      store: new MemoryStore(),
      listen: { socketPath: join(stateDir, 'api.sock') },
    });
    return new TestCluster(stateDir, server);
  }

  /** `strata args... --state-dir <this cluster>`. */
  run(args: readonly string[], stdin = ''): Promise<CliRun> {
    return strata([...args, '--state-dir', this.stateDir], stdin);
  }

  async stop(): Promise<void> {
    await this.server.close();
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** Runs the built `dist/bin/strata` as a child process. */
export function strataProcess(
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [strataExecutable, ...args], {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      resolve({ code: code ?? (signal === null ? 1 : 128), stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}
