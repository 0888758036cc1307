/**
 * Runs the kernel's own tools (ip, nft, nsenter) as child processes. All
 * kernel changes go through them in batches: one process per step, never
 * one per rule or per link.
 */
import { spawnSync } from 'node:child_process';

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
  const child = spawnSync(file, args, { input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (child.error) {
    throw new CommandError(`${file} ${args.join(' ')}`.trim(), null, child.error.message);
  }
  if (child.status !== 0) {
    throw new CommandError(`${file} ${args.join(' ')}`.trim(), child.status, child.stderr);
  }
  return { stdout: child.stdout, stderr: child.stderr };
}
