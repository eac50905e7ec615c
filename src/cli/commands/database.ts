/** migrate, apply, config schema, audit verify (and, through ./history.ts, audit log and history): definitions; the work is in ../actions/database.ts, imported when one runs. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { registerHistoryCommands } from './history.js';

const actions = () => import('../actions/database.js');

export function registerDatabaseCommands(program: Command, ctx: CliContext): void {
  program
    .command('migrate')
    .description('Create the database if it does not exist, apply migrations as the owner role, then grant the runtime role its privileges (idempotent; safe to run from several places at once)')
    .option('--print-grants', "print the statements that grant DATABASE_URL's role what the runtime needs, and change nothing")
    .action(async (options: { printGrants?: boolean }) => (await actions()).migrateCommand(ctx, options));

  program
    .command('apply')
    .description('Validate a config file, print the plan, and apply it to the database and the schedules')
    .requiredOption('-f, --file <path>', 'rekey.yaml')
    .option('--dry-run', 'print the plan and change nothing')
    .option('--json', 'print the plan as JSON')
    .option('--no-rotation-metadata', "do not mirror schedules into the stores' own rotation metadata")
    .option('--defer-rotation-metadata', "mark the schedules to mirror, but leave the writes to the workers (within a minute): for an apply that has no cloud credentials, as Helm's hook")
    .option('--allow-remove-all', 'apply a file that manages no secret, removing every one managed now (refused otherwise: an empty or truncated file)')
    .action(async (options: { file: string; dryRun?: boolean; json?: boolean; rotationMetadata: boolean; deferRotationMetadata?: boolean; allowRemoveAll?: boolean }) => (await actions()).apply(ctx, options));

  program
    .command('config')
    .description('Configuration helpers')
    .command('schema')
    .description('Print the JSON Schema of rekey.yaml')
    // Built by `npm run config-schema` (src/config/json-schema.ts): building it here would import every provider's SDK.
    .action(async () => ctx.out(JSON.stringify((await import('../../config/rekey.schema.json', { with: { type: 'json' } })).default, null, 2)));

  const audit = program.command('audit').description('Audit log tools');
  registerHistoryCommands(program, audit, ctx);
  audit
    .command('verify')
    .description('Check the audit log chains (HMAC under REKEY_AUDIT_KEY); exits 1 and names the first bad row on tampering')
    .option('--anchor <anchor>', 'an anchor an earlier verify or the anchor job printed: also prove no event up to it was removed')
    .option('--since <anchor>', 'check only what was appended after that (signed) anchor, from the chain heads it pins: fast on a large log, but a row removed from the middle of a chain before it is found only by a whole walk')
    .option('--json', 'print the result as JSON')
    .action(async (options: { anchor?: string; since?: string; json?: boolean }, command: Command) => (await actions()).auditVerify(ctx, options, command));
}
