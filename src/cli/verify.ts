/** What `rekey verify [NAME]` does (commands/verify.ts defines it): the drift check on demand; exit 0 when every target is in sync, 1 otherwise. */
import type { TargetReport } from '../core/drift.js';
import { RekeyError } from '../core/errors.js';
import { describeDrift } from '../db/sync.js';
import { ExitCode, type CliContext } from './context.js';
import { withRuntime } from './with-runtime.js';

export async function verify(ctx: CliContext, name: string | undefined, options: { repair?: boolean; json?: boolean }): Promise<void> {
  await withRuntime('cli', ctx, async (runtime) => {
    if (options.repair) await runtime.connect();
    let secrets: string[] | undefined;
    if (name) {
      const rows = await runtime.db.secret.findMany({ where: { OR: [{ name }, { name: { startsWith: `${name}/` } }] }, select: { name: true } });
      if (!rows.length) throw new RekeyError('REKEY_ERR_UNKNOWN', `no managed secret named ${name}`);
      secrets = rows.map((r) => r.name);
    }
    const reports = await runtime.drift.checkNow(secrets, (target, bound) => runtime.engine.checkTarget(target, bound, { repair: options.repair ?? false }));
    ctx.out(options.json ? JSON.stringify(reports, null, 2) : formatReports(reports));
    if (reports.some((r) => r.results.some((s) => s.error || s.missing.length || s.unwanted.length))) throw new ExitCode(1);
  });
}

export function formatReports(reports: readonly TargetReport[]): string {
  const lines = reports.flatMap((report) =>
    report.results.map((r) => {
      const drift = describeDrift(r);
      const state = r.error ? `ERROR ${r.error}` : drift ? `DRIFT ${drift}` : 'in sync';
      const repaired = [...r.redeployed.map((n) => `redeployed v${n}`), ...r.retiring.map((n) => `retiring v${n}`)].join(', ');
      return `${report.target}  ${r.secret}  ${state} (${r.method})${repaired ? `; ${repaired}` : ''}`;
    }),
  );
  return lines.length ? lines.join('\n') : 'No target to verify.';
}
