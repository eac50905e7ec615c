/**
 * `rekey history NAME` and `rekey audit log [NAME]`: definitions; the work is in
 * ../actions/history.ts, imported when one runs. Both read through the admin API's read
 * operations, in process (src/api/local.ts).
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { CliContext } from '../context.js';
import { positiveInt } from '../options.js';

const actions = () => import('../actions/history.js');

/** An instant, as an ISO 8601 date-time (`2026-12-04T07:00:00Z`) or a date (`2026-12-04`, midnight UTC). */
function instant(text: string): string {
  const at = /^\d{4}-\d{2}-\d{2}$/.test(text) ? new Date(`${text}T00:00:00Z`) : new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(at.getTime())) throw new InvalidArgumentError('not a date or an ISO 8601 date-time (2026-12-04, 2026-12-04T07:00:00Z)');
  return at.toISOString();
}

function sequence(text: string): string {
  if (!/^\d{1,19}$/.test(text)) throw new InvalidArgumentError('not an event number (the seq a previous page ended with)');
  return text;
}

export function registerHistoryCommands(program: Command, audit: Command, ctx: CliContext): void {
  program
    .command('history')
    .description("A secret's versions (states and times, what issued them) and its runs (kind, trigger, outcome, step, attempts, error), newest first")
    .argument('<name>')
    .option('--limit <n>', 'how many versions and runs to show', positiveInt, 20)
    .option('--json', 'print as JSON')
    .action(async (name: string, options: { limit: number; json?: boolean }) => (await actions()).history(ctx, name, options));

  audit
    .command('log')
    .description("Audit events, newest first (a secret's, when NAME is given), filtered by action, actor and time")
    .argument('[name]')
    .option('--action <action>', 'only this action (run.finished, version.revoked, api.rotateSecret, ...)')
    .option('--actor <actor>', 'only this actor (cli:USER, token:NAME, oidc:ISSUER#SUBJECT, worker, leak/github/...); a kind alone (cli, token, oidc) finds every actor of it')
    .option('--since <time>', 'events at or after this date or date-time', instant)
    .option('--until <time>', 'events before this date or date-time', instant)
    .option('--limit <n>', 'events per page (up to 500)', positiveInt, 50)
    .option('--after <seq>', 'the page after the one that ended with this event number', sequence)
    .option('--json', 'print the page as JSON ({ items, next })')
    .action(async (name: string | undefined, options: AuditLogOptions) => (await actions()).auditLog(ctx, name, options));
}

export interface AuditLogOptions {
  action?: string;
  actor?: string;
  since?: string;
  until?: string;
  limit: number;
  after?: string;
  json?: boolean;
}
