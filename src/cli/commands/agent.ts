/** `rekey agent`: the delivery sidecar (docs/delivery.md). The definition; the work is in src/agent, imported when it runs. */
import { Option, type Command } from 'commander';
import type { OnRevoke } from '../../agent/agent.js';
import type { CliContext } from '../context.js';
import { port } from '../options.js';

const collect = (value: string, previous: string[]) => [...previous, value];

export interface AgentFlags {
  server: string;
  clientKeyFile?: string;
  tokenFile?: string;
  port: number;
  requestTokenFile: string;
  secret: string[];
  audience: string[];
  template: string[];
  pidFile?: string;
  signal: string;
  onRevoke: OnRevoke;
}

export function registerAgentCommand(program: Command, ctx: CliContext): void {
  program
    .command('agent')
    .description('Sidecar: authenticate to rekey server, keep tokens and values in memory, serve them on 127.0.0.1 behind a per-host token, render templates')
    .requiredOption('--server <url>', 'rekey server base URL (default: the REKEY_SERVER environment variable)', process.env.REKEY_SERVER)
    .option('--client-key-file <path>', 'authenticate with the client key in this file')
    .option('--token-file <path>', 'authenticate with the JWT in this file (a projected service account token; read for every request)')
    .option('--port <port>', 'loopback port to serve on', port, 2773)
    .requiredOption('--request-token-file <path>', `the per-host token callers send in X-Rekey-Agent-Token (created, 0600, when missing)`)
    .option('--secret <name>', 'a secret to fetch at start and keep fresh (repeatable)', collect, [])
    .option('--audience <audience>', 'an audience whose token to keep fresh (repeatable)', collect, [])
    .option('--template <source:destination>', 'render {{ secret "name" }} / {{ token "audience" }} into a 0600 file (repeatable)', collect, [])
    .option('--pid-file <path>', 'signal the process whose pid this file holds when a rendered file changes (only a process of the file\'s owner; a regular file no group or other user may write)')
    .option('--signal <name>', 'the signal sent', 'SIGHUP')
    .addOption(
      new Option('--on-revoke <action>', 'a rendered file holding a value revoked with no replacement to fetch yet: rewritten with that value empty (blank), removed, or kept; the process signalled either way')
        .choices(['blank', 'remove', 'keep'])
        .default('blank'),
    )
    .action(async (flags: AgentFlags) => (await import('../../agent/run.js')).runAgent(ctx, flags));
}
