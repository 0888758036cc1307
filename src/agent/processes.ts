/**
 * Container processes as the kernel knows them, through /proc: a process is
 * identified by its pid and its start time (field 22 of /proc/PID/stat,
 * clock ticks since boot), so a pid the kernel has reused for something else
 * is never mistaken for a container, never adopted and never signalled.
 */
import { readFileSync, readdirSync } from 'node:fs';

/** A process as recorded in the state directory: pid plus start time. */
export interface ProcessIdentity {
  pid: number;
  startTicks: number;
}

export interface ProcessStat {
  /** R, S, D, Z, T... (proc(5)). */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  startTicks: number;
}

/** Parses /proc/PID/stat text; the command name may hold spaces and parentheses. */
export function parseProcessStat(text: string): ProcessStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  // Fields from 3 (state) on; field N is at index N - 3.
  const fields = text
    .slice(close + 2)
    .trim()
    .split(' ');
  const num = (field: number): number => Number(fields[field - 3]);
  const stat = {
    state: fields[0] ?? '',
    ppid: num(4),
    pgrp: num(5),
    session: num(6),
    startTicks: num(22),
  };
  return Number.isFinite(stat.startTicks) ? stat : undefined;
}

/** The stat of a pid, or undefined when there is no such process. */
export function readProcessStat(pid: number): ProcessStat | undefined {
  try {
    return parseProcessStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The identity of a process that was just started. */
export function identify(pid: number): ProcessIdentity | undefined {
  const stat = readProcessStat(pid);
  return stat ? { pid, startTicks: stat.startTicks } : undefined;
}

/** Whether the recorded process still runs (and is not a zombie waiting to be reaped). */
export function isRunning(id: ProcessIdentity): boolean {
  const stat = readProcessStat(id.pid);
  return stat !== undefined && stat.startTicks === id.startTicks && stat.state !== 'Z';
}

/**
 * Signals the container: its whole process group (the agent starts each
 * container as a session leader, so children it forks get the signal too),
 * after checking the pid is still that process. False when it is gone.
 */
export function signalContainer(id: ProcessIdentity, signal: NodeJS.Signals): boolean {
  if (!isRunning(id)) return false;
  try {
    process.kill(-id.pid, signal);
    return true;
  } catch {
    try {
      process.kill(id.pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

/** Every process whose session is led by `sid`: what a container forked, even after it exited. */
export function sessionMembers(sid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcessStat(Number(name));
    if (stat?.session === sid && stat.state !== 'Z') out.push(Number(name));
  }
  return out;
}
