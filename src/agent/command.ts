/**
 * `strata agent ...`: the node agent as a command. Runs until SIGTERM or
 * SIGINT, then stops watching and leaves the pods running for the next
 * agent. Returns the exit code: 0 after a signal, 1 when the agent cannot
 * start, 2 for a bad command line.
 */
import { messageChain } from '../cni/errors.js';
import { type Agent, runAgent } from './agent.js';
import { AgentUsageError, agentUsage, parseAgentArgs } from './options.js';

export interface CommandOutput {
  write(text: string): unknown;
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
  const onSignal = (): void => {
    abort.abort();
    stopRequested?.();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    let agent: Agent;
    try {
      agent = await runAgent({ ...parseAgentArgs(argv), signal: abort.signal });
    } catch (error) {
      if (abort.signal.aborted) return 0;
      if (error instanceof AgentUsageError) {
        err.write(`strata agent: ${error.message}\n\n${agentUsage}`);
        return 2;
      }
      err.write(`strata agent: ${messageChain(error)}\n`);
      return 1;
    }
    await stopped;
    await agent.stop();
    return 0;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
