/**
 * What `rekey verify [NAME]` does (commands/verify.ts defines it): the drift check of every target and
 * the store check of every secret (src/core/store-drift.ts), on demand; exit 0 when all are in sync, 1 otherwise.
 */
import type { TargetReport } from '../core/drift.js';
import { RekeyError } from '../core/errors.js';
import type { StoreCheckReport } from '../core/store-drift.js';
import { storeSyncName } from '../core/sync.js';
import { describeDrift, describeStoreDrift } from '../db/sync.js';
import { STORE_CHECK_SLICE } from '../reconcile-passes.js';
import { ExitCode, type CliContext } from './context.js';
import { withRuntime } from './with-runtime.js';

export async function verify(ctx: CliContext, name: string | undefined, options: { repair?: boolean; json?: boolean }): Promise<void> {
  await withRuntime(ctx, async (runtime) => {
    const repair = options.repair ?? false;
    if (repair) await runtime.connect();
    const where = name ? { OR: [{ name }, { name: { startsWith: `${name}/` } }] } : { removedAt: null };
    const names = (await runtime.db.secret.findMany({ where, select: { name: true }, orderBy: { name: 'asc' } })).map((r) => r.name);
    if (name && !names.length) throw new RekeyError('REKEY_ERR_UNKNOWN', `no managed secret named ${name}`);
    const targets = await runtime.drift.checkNow(name ? names : undefined, (target, bound) => runtime.engine.checkTarget(target, bound, { repair }));
    const stores: StoreCheckReport = { results: [], skipped: [] };
    // A slice at a time, as the full reconcile pass checks them: bounded PostgreSQL reads whatever the number of secrets.
    for (let i = 0; i < names.length; i += STORE_CHECK_SLICE) {
      const slice = await runtime.engine.checkStores(names.slice(i, i + STORE_CHECK_SLICE), { repair });
      stores.results.push(...slice.results);
      stores.skipped.push(...slice.skipped);
    }
    ctx.out(options.json ? JSON.stringify({ targets, stores }, null, 2) : [formatReports(targets), formatStoreReport(stores)].filter(Boolean).join('\n') || 'Nothing to verify.');
    const targetDrift = targets.some((r) => r.results.some((s) => s.error || s.missing.length || s.unwanted.length));
    const storeDrift = stores.results.some((r) => r.error || r.found !== 'in-sync');
    if (targetDrift || storeDrift) throw new ExitCode(1);
  });
}

/** One line per secret and target: `edge  payments-api-key  DRIFT missing v7 (inspect)`. */
export function formatReports(reports: readonly TargetReport[]): string {
  const lines = reports.flatMap((report) =>
    report.results.map((r) => {
      const drift = describeDrift(r);
      const state = r.error ? `ERROR ${r.error}` : drift ? `DRIFT ${drift}` : 'in sync';
      const repaired = [...r.redeployed.map((n) => `redeployed v${n}`), ...r.retiring.map((n) => `retiring v${n}`)].join(', ');
      return `${report.target}  ${r.secret}  ${state} (${r.method})${repaired ? `; ${repaired}` : ''}`;
    }),
  );
  return lines.join('\n');
}

/** Why checkStores leaves a secret out (StoreCheckReport.skipped). */
const SKIPPED = 'no current version, a rotation running or ran meanwhile, or its providers could not be built';

/** One line per secret whose store was compared: `store:aws-prod  payments-api-key  DRIFT store current v8 (failed), rekey current v7; repaired`. */
export function formatStoreReport(report: StoreCheckReport): string {
  const lines = report.results.map((r) => {
    const head = `${storeSyncName(r.store)}  ${r.secret}`;
    if (!r.found) return `${head}  ERROR ${r.error ?? 'unknown'}`;
    if (r.found === 'in-sync') return `${head}  in sync (v${r.rekeyCurrent})`;
    const done = r.repaired ? '; repaired' : r.error ? `; not repaired: ${r.error}` : '';
    return `${head}  DRIFT ${describeStoreDrift(r)}${done}`;
  });
  const skipped = report.skipped.map((secret) => `store  ${secret}  not compared (${SKIPPED})`);
  return [...lines, ...skipped].join('\n');
}
