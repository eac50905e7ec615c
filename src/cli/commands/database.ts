/** migrate, apply, config schema, audit verify. */
import type { Command } from 'commander';
import { configJsonSchema } from '../../config/json-schema.js';
import { loadConfigFile } from '../../config/load.js';
import { isEmpty } from '../../config/plan.js';
import { anchorProblem, verifyAudit } from '../../db/audit.js';
import { migrate } from '../../db/migrate.js';
import { describeRotations, formatRotationMetadata } from '../../events/rotation-metadata.js';
import { loadSettings } from '../../settings.js';
import { applyConfig } from '../apply.js';
import { ExitCode, type CliContext } from '../main.js';
import { withRuntime } from '../with-runtime.js';

export function registerDatabaseCommands(program: Command, ctx: CliContext): void {
  program
    .command('migrate')
    .description('Apply database migrations (idempotent; safe to run from several places at once)')
    .action(async () => {
      const applied = await migrate(loadSettings().databaseUrl);
      ctx.out(applied.length ? `Applied ${applied.length} migration(s): ${applied.join(', ')}` : 'Database is up to date.');
    });

  program
    .command('apply')
    .description('Validate a config file, print the plan, and apply it to the database and the schedules')
    .requiredOption('-f, --file <path>', 'rekey.yaml')
    .option('--dry-run', 'print the plan and change nothing')
    .option('--json', 'print the plan as JSON')
    .option('--no-rotation-metadata', "do not mirror schedules into the stores' own rotation metadata")
    .action(async (options: { file: string; dryRun?: boolean; json?: boolean; rotationMetadata: boolean }) => {
      const loaded = await loadConfigFile(options.file, ctx.modules);
      await withRuntime('cli', ctx, async (runtime) => {
        const { plan, revision } = await applyConfig(runtime, loaded, { file: options.file, actor: 'cli', out: ctx.out, json: !!options.json, dryRun: !!options.dryRun });
        if (revision === undefined) {
          if (!options.json) ctx.out('Dry run: nothing applied.');
          return;
        }
        if (!options.json) ctx.out(isEmpty(plan) ? `No changes (config revision ${revision}).` : `Applied as config revision ${revision}.`);
        if (options.rotationMetadata) {
          // Best effort after the apply: a failure is reported per secret and undoes nothing.
          const results = await describeRotations(runtime.resolver, [...plan.secrets.added, ...plan.secrets.changed.map((c) => c.name)]);
          const write = options.json ? (text: string) => void process.stderr.write(`${text}\n`) : ctx.out; // keep stdout pure JSON
          for (const line of formatRotationMetadata(results)) write(line);
        }
      });
    });

  program
    .command('config')
    .description('Configuration helpers')
    .command('schema')
    .description('Print the JSON Schema of rekey.yaml')
    .action(() => ctx.out(JSON.stringify(configJsonSchema(ctx.modules), null, 2)));

  program
    .command('audit')
    .description('Audit log tools')
    .command('verify')
    .description('Check the audit log hash chain; exits 1 and names the first bad row on tampering')
    .option('--anchor <anchor>', 'an anchor an earlier verify printed: also prove no event up to it was removed')
    .option('--json', 'print the result as JSON')
    .action(async (options: { anchor?: string; json?: boolean }, command: Command) => {
      const problem = options.anchor === undefined ? undefined : anchorProblem(options.anchor);
      if (problem) command.error(`rekey audit verify: ${problem}`, { exitCode: 2 });
      await withRuntime('cli', ctx, async (runtime) => {
        const result = await verifyAudit(runtime.db, { anchor: options.anchor });
        if (options.json) ctx.out(JSON.stringify({ ...result, seq: 'seq' in result ? result.seq.toString() : undefined }));
        else if (result.ok) {
          ctx.out(`Audit log intact: ${result.events} events, hash chain verified${options.anchor ? ', anchor matches' : ''}.`);
          ctx.out(`Anchor: ${result.anchor} (keep it outside the database; pass it to --anchor later)`);
        }
        else ctx.out(`Audit log TAMPERED: row ${result.seq} ${result.problem} (${result.events} rows before it verified).`);
        if (!result.ok) throw new ExitCode(1);
      });
    });
}
