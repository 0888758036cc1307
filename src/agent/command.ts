/**
 * `strata agent ...`: the node agent as a command. Runs until SIGTERM or
 * SIGINT, then stops watching and leaves the pods running for the next
 * agent. Returns the exit code: 0 after a signal, 1 when the agent cannot
 * start (or fails for good, below), 2 for a bad command line.
 *
 * Errors that escape every handler. As kubelet, one node's agent must not
 * go down for a bug that one pod's worker, probe or watch ran into: nothing
 * supervises the agent, and without it the node's pods are neither
 * restarted nor stopped nor reported. So, once the agent runs:
 *
 * - an unhandled rejection is logged and the agent keeps running. A
 *   rejected promise is one asynchronous task that already unwound (a pod
 *   sync, a probe run, a watch, a heartbeat), and every one of those is
 *   re-run by the next event, timer or housekeeping pass, which re-derive
 *   what to do from the API and the state directory, not from memory.
 * - an uncaught exception is logged and the agent keeps running, for the
 *   same reason: it ended one callback (a timer, a child's exit, a socket
 *   event). Two cases are not survived: an exception while the agent is
 *   still starting (no pod runs yet, and `strata up` should see the start
 *   fail), and Node's own ERR_INTERNAL_ASSERTION (the runtime is broken).
 *   Then the agent stops as after SIGTERM (pods keep running, the next
 *   agent adopts them) and exits with 1.
 */
import { messageChain } from '../cni/errors.js';
import { type Agent, runAgent } from './agent.js';
import { AgentUsageError, agentUsage, parseAgentArgs } from './options.js';

export interface CommandOutput {
  write(text: string): unknown;
}

function explain(error: unknown): string {
  if (error instanceof Error && error.stack) return error.stack;
  return messageChain(error);
}

/** Runs `strata agent` with `argv` (the arguments after `agent`). */
export async function agentCommand(
  argv: readonly string[],
  err: CommandOutput = process.stderr,
): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    err.write(agentUsage);
    return 0;
  }
  const abort = new AbortController();
  let stopRequested: (() => void) | undefined;
  const stopped = new Promise<void>((resolve) => {
    stopRequested = resolve;
  });
  let running = false;
  let fatal: unknown;
  const report = (line: string): void => {
    err.write(`${new Date().toISOString()} ${line}\n`);
  };
  const onSignal = (): void => {
    abort.abort();
    stopRequested?.();
  };
  const onRejection = (reason: unknown): void => {
    report(`unhandled rejection (a bug; the agent keeps running): ${explain(reason)}`);
  };
  const onException = (error: unknown): void => {
    const internal = (error as { code?: unknown } | null)?.code === 'ERR_INTERNAL_ASSERTION';
    if (running && !internal) {
      report(`uncaught exception (a bug; the agent keeps running): ${explain(error)}`);
      return;
    }
    report(`uncaught exception (the agent stops): ${explain(error)}`);
    fatal ??= error;
    onSignal();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  try {
    let agent: Agent;
    try {
      agent = await runAgent({ ...parseAgentArgs(argv), signal: abort.signal });
    } catch (error) {
      if (fatal !== undefined) return 1;
      if (abort.signal.aborted) return 0;
      if (error instanceof AgentUsageError) {
        err.write(`strata agent: ${error.message}\n\n${agentUsage}`);
        return 2;
      }
      err.write(`strata agent: ${messageChain(error)}\n`);
      return 1;
    }
    running = fatal === undefined && !abort.signal.aborted;
    await stopped;
    running = false;
    await agent.stop();
    return fatal === undefined ? 0 : 1;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  }
}
