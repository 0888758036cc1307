/**
 * Runs the kernel's own tools (today nft) as child processes: a whole
 * change per process, never one per rule. `runAsync` lets the step run while
 * the caller goes on (the plugin's nft transaction runs beside its own
 * rtnetlink requests).
 */
/**
 * node:child_process, loaded on first use: the ADD of a plain bridge
 * network never starts a process, and loading the module costs the compiled
 * plugin start-up time on every call.
 */
function childProcess(): typeof import('node:child_process') {
  return process.getBuiltinModule('node:child_process');
}

/** A tool that exited non-zero; carries its stderr for the user. */
export class CommandError extends Error {
  readonly command: string;
  readonly stderr: string;
  readonly status: number | null;

  constructor(command: string, status: number | null, stderr: string) {
    const detail = stderr.trim().split('\n').filter(Boolean).join('; ');
    super(
      `${command} failed${status === null ? '' : ` (exit ${status})`}${detail ? `: ${detail}` : ''}`,
    );
    this.name = 'CommandError';
    this.command = command;
    this.stderr = stderr;
    this.status = status;
  }
}

export interface CommandOutput {
  stdout: string;
  stderr: string;
}

/** Runs `file args...` with `input` on stdin; throws CommandError unless it exits 0. */
export function run(file: string, args: readonly string[], input = ''): CommandOutput {
  const child = childProcess().spawnSync(file, args, {
    input,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (child.error) {
    throw new CommandError(`${file} ${args.join(' ')}`.trim(), null, child.error.message);
  }
  if (child.status !== 0) {
    throw new CommandError(`${file} ${args.join(' ')}`.trim(), child.status, child.stderr);
  }
  return { stdout: child.stdout, stderr: child.stderr };
}

/** `run`, without waiting: the promise settles when the process exits. */
export function runAsync(
  file: string,
  args: readonly string[],
  input = '',
): Promise<CommandOutput> {
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error) => {
      reject(new CommandError(`${file} ${args.join(' ')}`.trim(), null, error.message));
    });
    child.on('close', (status) => {
      const out = Buffer.concat(stdout).toString('utf8');
      const err = Buffer.concat(stderr).toString('utf8');
      if (status === 0) resolve({ stdout: out, stderr: err });
      else reject(new CommandError(`${file} ${args.join(' ')}`.trim(), status, err));
    });
    child.stdin.on('error', () => {
      // The process may exit before reading all its input; its exit status tells.
    });
    child.stdin.end(input);
  });
}
