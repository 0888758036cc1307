// The node agent as the end-to-end tests run it: `strata agent` arguments on
// the command line, run inside a node's namespace with
// `ip netns exec <node> node dist/test/support/strata-agent-test.js ...`.
import { agentCommand } from '../../src/agent/index.js';

process.exitCode = await agentCommand(process.argv.slice(2));
