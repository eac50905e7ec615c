/** What `rekey list` does (../commands/list.ts defines it). */
import { filterHealth, nextRotation, secretHealth, type SecretStatusName } from '../../api/secret-health.js';
import type { CliContext } from '../context.js';
import { withRuntime } from '../with-runtime.js';

export async function list(ctx: CliContext, options: { name?: string; status?: SecretStatusName; json?: boolean }): Promise<void> {
  await withRuntime('cli', ctx, async (runtime) => {
    const redisUp = await runtime.connect().then(() => true, () => false);
    const rows = filterHealth(await secretHealth(runtime.db), { name: options.name, status: options.status });
    const next = redisUp ? await Promise.all(rows.map((h) => nextRotation(runtime.queues, h))) : rows.map(() => null);
    const when = (d: Date | null) => d?.toISOString() ?? '-';
    if (options.json) {
      ctx.out(JSON.stringify(rows.map(({ id: _id, ...h }, i) => ({ ...h, nextRotation: next[i]?.toISOString() ?? null })), null, 2));
      return;
    }
    if (!rows.length) return ctx.out('No secrets match.');
    const width = Math.max(...rows.map((h) => h.name.length));
    for (const [i, h] of rows.entries()) {
      const conditions = h.conditions.length > 1 ? ` (${h.conditions.join(', ')})` : '';
      ctx.out(`${h.name.padEnd(width)}  ${h.status.padEnd(10)}  current ${h.currentVersion === null ? '-' : `v${h.currentVersion}`}  rotated ${when(h.lastRotatedAt)}  next ${redisUp ? when(next[i]!) : 'unknown (Redis unreachable)'}${conditions}`);
    }
  });
}
