/** The node agent: what the CLI and tests import. */
export { type Agent, runAgent } from './agent.js';
export { agentCommand } from './command.js';
export {
  type AgentOptions,
  type AgentSettings,
  AgentUsageError,
  type Backend,
  agentUsage,
  parseAgentArgs,
} from './options.js';
