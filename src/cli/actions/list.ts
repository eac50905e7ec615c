/** What `rekey list` does (../commands/list.ts defines it): the admin API's `GET /secrets`, a page at a time. */
import { readOperation } from '../../api/local.js';
import type { ListOptions } from '../commands/list.js';
import type { CliContext } from '../context.js';
import { nextPageCommand } from '../options.js';
import { withRuntime } from '../with-runtime.js';

interface Summary {
  name: string;
  status: string;
  conditions: string[];
  currentVersion: number | null;
  lastRotatedAt: string | null;
  nextRotation: string | null;
}

export async function list(ctx: CliContext, options: ListOptions): Promise<void> {
  await withRuntime(ctx, async (runtime) => {
    const redisUp = await runtime.connect().then(() => true, () => false);
    const { name, status, limit, after } = options;
    const page = (await readOperation(runtime, 'listSecrets', { query: { name, status, limit, after } })) as { items: Summary[]; next: string | null };
    const filters = [name && `--name '${name}'`, status && `--status ${status}`].filter(Boolean).join(' ');
    const more = page.next && `next page: ${nextPageCommand(filters ? `list ${filters}` : 'list', page.next, limit)}`;
    if (options.json) {
      ctx.out(JSON.stringify(page.items, null, 2));
      if (more) process.stderr.write(`rekey: ${more}\n`); // stdout stays the page's JSON
      return;
    }
    if (!page.items.length) return ctx.out('No secrets match.');
    const width = Math.max(...page.items.map((h) => h.name.length));
    for (const h of page.items) {
      const conditions = h.conditions.length > 1 ? ` (${h.conditions.join(', ')})` : '';
      ctx.out(`${h.name.padEnd(width)}  ${h.status.padEnd(10)}  current ${h.currentVersion === null ? '-' : `v${h.currentVersion}`}  rotated ${h.lastRotatedAt ?? '-'}  next ${redisUp ? (h.nextRotation ?? '-') : 'unknown (Redis unreachable)'}${conditions}`);
    }
    if (more) ctx.out(`\n${more}`);
  });
}
