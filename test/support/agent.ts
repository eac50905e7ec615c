/** What the tests' `rekey agent` instances share. */
import type { AgentOptions } from '../../src/agent/agent.js';

/** The per-host token the tests' agents require on every request. */
export const REQUEST_TOKEN = 'agent-request-token-0123456789abcdef';

/**
 * startAgent()'s options for a test agent of `server`: the credential `credential`, any free
 * loopback port, no secret, audience or template but what `options` names.
 */
export function agentOptions(server: string, options: Partial<AgentOptions> = {}): AgentOptions {
  return { server, credential: () => Promise.resolve('credential'), requestToken: REQUEST_TOKEN, port: 0, secrets: [], audiences: [], templates: [], ...options };
}
