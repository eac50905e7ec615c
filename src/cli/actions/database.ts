/** What migrate, apply, config schema and audit verify do (../commands/database.ts defines them). */
import type { Command } from 'commander';
import { loadConfigFile } from '../../config/load.js';
import { isEmpty } from '../../config/plan.js';
import { alarmOnTampering, anchorSeq, requestProblem, verifyAudit, verifySince, walkReporter } from '../../db/audit-verify.js';
import { grantRuntimeRole, runtimeGrants, userOf } from '../../db/grants.js';
import { ensureDatabase, migrate } from '../../db/migrate.js';
import { formatRotationMetadata, writeRotationMetadata } from '../../events/rotation-metadata.js';
import { loadSettings, type Settings } from '../../settings.js';
import { applyConfig } from '../apply.js';
import { describeInfraFailure } from '../failures.js';
import { ExitCode, type CliContext } from '../context.js';
import { withRuntime } from '../with-runtime.js';

export async function migrateCommand(ctx: CliContext, options: { printGrants?: boolean }): Promise<void> {
  const settings = loadSettings();
  const runtimeRole = userOf(settings.databaseUrl);
  if (options.printGrants) {
    for (const sql of runtimeGrants(runtimeRole ?? 'rekey')) ctx.out(`${sql};`);
    return;
  }
  const ownerUrl = settings.migrateDatabaseUrl ?? settings.databaseUrl;
  if (await asOwner(settings, (url) => ensureDatabase(url))) ctx.out(`Created database ${decodeURIComponent(new URL(ownerUrl).pathname.slice(1))}.`);
  const applied = await asOwner(settings, (url) => migrate(url));
  ctx.out(applied.length ? `Applied ${applied.length} migration(s): ${applied.join(', ')}` : 'Database is up to date.');
  if (settings.migrateDatabaseUrl && runtimeRole && runtimeRole !== userOf(ownerUrl)) {
    await asOwner(settings, (url) => grantRuntimeRole(url, runtimeRole));
    ctx.out(`Runtime role ${runtimeRole}: granted; it may INSERT and SELECT the audit log, nothing more there.`);
  } else {
    // A warning, on stderr: stdout stays what scripts read.
    process.stderr.write('rekey: one database role migrates and runs rekey: whoever holds DATABASE_URL can alter the audit log table (verify still catches it); set REKEY_MIGRATE_DATABASE_URL to the owner role (docs/database-roles.md)\n');
  }
}

/**
 * `work` on the owner role's URL. When that is REKEY_MIGRATE_DATABASE_URL, a PostgreSQL failure
 * is described with it: the generic handler would name DATABASE_URL, which migrate did not use.
 */
async function asOwner<T>(settings: Settings, work: (url: string) => Promise<T>): Promise<T> {
  const url = settings.migrateDatabaseUrl ?? settings.databaseUrl;
  try {
    return await work(url);
  } catch (error) {
    const infra = settings.migrateDatabaseUrl === undefined ? undefined : describeInfraFailure(error, { databaseUrl: url, redisUrl: settings.redisUrl }, 'REKEY_MIGRATE_DATABASE_URL');
    if (!infra) throw error;
    process.stderr.write(`rekey: ${infra}\n`);
    throw new ExitCode(1);
  }
}

export async function apply(ctx: CliContext, options: { file: string; dryRun?: boolean; json?: boolean; rotationMetadata: boolean; deferRotationMetadata?: boolean; allowRemoveAll?: boolean }): Promise<void> {
  const loaded = await loadConfigFile(options.file, ctx.modules);
  await withRuntime(ctx, async (runtime) => {
    const { plan, revision } = await applyConfig(runtime, loaded, {
      file: options.file,
      actor: runtime.actor,
      out: ctx.out,
      json: !!options.json,
      dryRun: !!options.dryRun,
      rotationMetadata: options.rotationMetadata,
      allowRemoveAll: !!options.allowRemoveAll,
      // On stderr: stdout stays the plan (and pure JSON with --json).
      progress: (line) => void process.stderr.write(`${line}\n`),
    });
    if (revision === undefined) {
      if (!options.json) ctx.out('Dry run: nothing applied.');
      return;
    }
    if (!options.json) ctx.out(isEmpty(plan) ? `No changes (config revision ${revision}).` : `Applied as config revision ${revision}.`);
    // Deferred: the marks are in PostgreSQL, and the workers (which hold the cloud credentials) write them within a minute.
    if (options.rotationMetadata && !options.deferRotationMetadata) {
      // The secrets this apply marked, and any an earlier one left: a failure is reported per
      // secret, undoes nothing, and stays pending for the workers and the next apply to retry.
      const results = await writeRotationMetadata(runtime.db, runtime.resolver);
      const write = options.json ? (text: string) => void process.stderr.write(`${text}\n`) : ctx.out; // keep stdout pure JSON
      for (const line of formatRotationMetadata(results)) write(line);
    }
  });
}

/** How often `rekey audit verify` prints how far its walk has come, at most; a walk done sooner prints nothing. */
export const WALK_PROGRESS_EVERY_MS = 5000;

/** Every provider's entry: this imports every provider module (and its SDK). */
export async function auditVerify(ctx: CliContext, options: { anchor?: string; since?: string; json?: boolean }, command: Command): Promise<void> {
  const problem = requestProblem(options);
  if (problem) command.error(`rekey audit verify: ${problem}`, { exitCode: 2 });
  await withRuntime(ctx, async (runtime) => {
    const since = options.since;
    // A whole walk of a large log takes minutes (~70,000 rows/s): a line on stderr every few seconds says how far.
    const progress = walkReporter((line) => void process.stderr.write(`  ${line}\n`), WALK_PROGRESS_EVERY_MS);
    const whole = since === undefined ? await verifyAudit(runtime.db, runtime.audit, { anchor: options.anchor, progress }) : undefined;
    const result = whole ?? (await verifySince(runtime.db, runtime.audit, since!, { progress }));
    await alarmOnTampering(runtime, result);
    if (options.json) ctx.out(JSON.stringify({ ...result, seq: 'seq' in result ? result.seq.toString() : undefined }));
    else if (!result.ok) ctx.out(`Audit log TAMPERED: row ${result.seq} ${result.problem} (${result.events} rows before it verified).`);
    else {
      if (since !== undefined) ctx.out(`Audit log intact since row ${anchorSeq(since)}: anchor matches, ${result.events} events after it verified (rows before it not walked).`);
      else ctx.out(`Audit log intact: ${result.events} events, hash chain verified${options.anchor ? ', anchor matches' : ''}.`);
      if (whole?.ok && whole.unkeyed) {
        ctx.out(
          whole.unkeyedPinned
            ? `${whole.unkeyed} events from before REKEY_AUDIT_KEY are pinned by the audit.keyed event.`
            : `${whole.unkeyed} events from before REKEY_AUDIT_KEY are not pinned yet (the first anchor job pins them); only anchors taken before vouch for them.`,
        );
      }
      ctx.out(`Anchor: ${result.anchor} (keep it outside the database; pass it to --anchor or --since later)`);
    }
    if (!result.ok) throw new ExitCode(1);
  });
}
