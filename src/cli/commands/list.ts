/** `rekey list`: secrets with their status and next rotation, a page at a time, on the admin API's read model (src/api/secret-health.ts). Definition; the work is in ../actions/list.ts, imported when it runs. */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { STATUSES, type SecretStatusName } from '../../api/statuses.js';
import type { CliContext } from '../context.js';
import { positiveInt, STATUS_PAGE } from '../options.js';

function statusName(text: string): SecretStatusName {
  if (!(STATUSES as readonly string[]).includes(text)) throw new InvalidArgumentError(`one of ${STATUSES.join(', ')}`);
  return text as SecretStatusName;
}

export interface ListOptions {
  name?: string;
  status?: SecretStatusName;
  json?: boolean;
  limit: number;
  after?: string;
}

export function registerListCommand(program: Command, ctx: CliContext): void {
  program
    .command('list')
    .description('Secrets with their status (leaked, no-current, failing, drifted, rotating, healthy), current version, last and next rotation')
    .option('--name <glob>', 'only names matching this glob (payments-*)')
    .option('--status <status>', `only secrets meeting this condition (${STATUSES.join(', ')})`, statusName)
    .option('--json', 'print as JSON')
    .option('--limit <n>', 'secrets per page (up to 500)', positiveInt, STATUS_PAGE)
    .option('--after <name>', 'the page after this secret (the last one shown): `rekey list` ends with the command for the next page')
    .action(async (options: ListOptions) => (await import('../actions/list.js')).list(ctx, options));
}
