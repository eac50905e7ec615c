/** `rekey session list|end`: the dashboard's sessions (docs/dashboard.md). Definitions; the work is in ../actions/sessions.ts, imported when one runs. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';

const actions = () => import('../actions/sessions.js');

export function registerSessionCommands(program: Command, ctx: CliContext): void {
  const session = program.command('session').description("Dashboard sessions: list them, end a person's or a token's (or all)");

  session
    .command('list')
    .description('Sessions not over yet: who (token:<name> or oidc:<issuer>#<subject>), their name, until when (never a session id)')
    .option('--json', 'print as JSON')
    .action(async (options: { json?: boolean }) => (await actions()).list(ctx, options));

  session
    .command('end')
    .description("End every session of one actor (as `session list` names it) at once, or every session with --all")
    .option('--actor <actor>', 'token:<name> or oidc:<issuer>#<subject>')
    .option('--all', 'every session of every actor')
    .action(async (options: { actor?: string; all?: boolean }, command: Command) => (await actions()).end(ctx, options, (message) => command.error(message, { exitCode: 2, code: 'rekey.session.usage' })));
}
