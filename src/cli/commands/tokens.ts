/** `rekey token create|list|revoke`: the admin API's tokens (docs/admin-api.md). Definitions; the work is in ../actions/tokens.ts, imported when one runs. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { duration } from '../options.js';

const actions = () => import('../actions/tokens.js');

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerTokenCommands(program: Command, ctx: CliContext): void {
  const token = program.command('token').description('Admin API tokens: create (printed once, stored hashed), list, revoke');

  token
    .command('create')
    .description('Create a token and print it once; only its SHA-256 is stored')
    .requiredOption('--name <name>', 'a name for the audit log (token:<name>); never reused')
    .requiredOption('--scope <scope>', 'read, rotate, revoke or admin, optionally :<secret name glob> (repeatable)', collect, [])
    .option('--ttl <duration>', 'expire after this long (e.g. 90d); default: never', duration)
    .option('--json', 'print the token and its details as JSON')
    .action(async (options: { name: string; scope: string[]; ttl?: string; json?: boolean }) => (await actions()).create(ctx, options));

  token
    .command('list')
    .description('Tokens with their scopes, expiry, last use and revocation (never the tokens)')
    .option('--json', 'print as JSON')
    .action(async (options: { json?: boolean }) => (await actions()).list(ctx, options));

  token
    .command('revoke')
    .description('Revoke a token by name (its requests are refused at once)')
    .argument('<name>')
    .action(async (name: string) => (await actions()).revoke(ctx, name));
}
