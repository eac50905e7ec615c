/** What `rekey history` and `rekey audit log` do (../commands/history.ts defines them). */
import type { z } from 'zod';
import { readOperation } from '../../api/local.js';
import { ApiProblem } from '../../api/problems.js';
import type { auditEvent, run } from '../../api/read-history.js';
import { RekeyError } from '../../core/errors.js';
import type { Runtime } from '../../runtime.js';
import type { CliContext } from '../context.js';
import type { AuditLogOptions } from '../commands/history.js';
import { withRuntime } from '../with-runtime.js';

type AuditEvent = z.infer<typeof auditEvent>;
type Run = z.infer<typeof run>;
interface Version {
  number: number;
  state: string;
  fingerprint: string | null;
  issuedAt: string;
  promotedAt: string | null;
  retiredAt: string | null;
  revokedAt: string | null;
  compromisedAt: string | null;
  issuedBy: { runId: string; trigger: string } | null;
}
interface Page<T> {
  items: T[];
  next: string | null;
}

/** A read operation; a secret the API would answer 404 for is the CLI's unknown name. */
async function read<T>(runtime: Runtime, operationId: string, input: { params?: object; query?: object }): Promise<T> {
  try {
    return (await readOperation(runtime, operationId, input)) as T;
  } catch (error) {
    if (error instanceof ApiProblem && error.code === 'REKEY_API_NOT_FOUND') throw new RekeyError('REKEY_ERR_UNKNOWN', error.detail ?? 'not found');
    throw error;
  }
}

const short = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

export async function history(ctx: CliContext, name: string, options: { limit: number; json?: boolean }): Promise<void> {
  await withRuntime(ctx, async (runtime) => {
    const secret = await read<{ versions: Version[] }>(runtime, 'getSecret', { params: { name }, query: { versions: options.limit } });
    const runs = await read<Page<Run>>(runtime, 'listRuns', { query: { secret: name, limit: options.limit } });
    if (options.json) return ctx.out(JSON.stringify({ name, versions: secret.versions, runs: runs.items }, null, 2));
    ctx.out(`${name}: versions, newest first`);
    for (const v of secret.versions) {
      const times = [`issued ${short(v.issuedAt)}`, v.promotedAt && `promoted ${short(v.promotedAt)}`, v.compromisedAt && `leaked ${short(v.compromisedAt)}`, v.retiredAt && `retired ${short(v.retiredAt)}`, v.revokedAt && `revoked ${short(v.revokedAt)}`];
      ctx.out(`  v${v.number}  ${v.state.padEnd(11)}  ${v.fingerprint ?? '-'}  ${times.filter(Boolean).join(', ')}${v.issuedBy ? `  (${v.issuedBy.trigger})` : ''}`);
    }
    ctx.out(`${name}: runs, newest first`);
    if (!runs.items.length) ctx.out('  none');
    for (const r of runs.items) {
      const what = `${r.kind}${r.emergency ? ' (emergency)' : ''} by ${r.trigger}`;
      ctx.out(`  ${short(r.startedAt)}  ${r.id.slice(0, 8)}  ${what.padEnd(28)}  ${r.status.padEnd(11)}  step ${r.step}, attempt ${r.attempts}${r.error ? `: ${r.error}` : ''}`);
    }
  });
}

export async function auditLog(ctx: CliContext, name: string | undefined, options: AuditLogOptions): Promise<void> {
  await withRuntime(ctx, async (runtime) => {
    const { json, ...query } = options;
    const page = await read<Page<AuditEvent>>(runtime, 'listAuditEvents', { query: { ...query, ...(name ? { secret: name } : {}) } });
    if (json) return ctx.out(JSON.stringify(page, null, 2));
    if (!page.items.length) return ctx.out('No audit events match.');
    for (const e of page.items) {
      const data = e.data && typeof e.data === 'object' && Object.keys(e.data).length ? `  ${JSON.stringify(e.data)}` : '';
      ctx.out(`${e.seq.padStart(7)}  ${short(e.at)}  ${e.actor}  ${e.action}${e.secret ? `  ${e.secret}` : ''}${data}`);
    }
    if (page.next) ctx.out(`(more: --after ${page.next})`);
  });
}
