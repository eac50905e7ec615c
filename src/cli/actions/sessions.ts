/** What `rekey session list|end` do (../commands/sessions.ts defines them). */
import { personActor } from '../../api/actors.js';
import { type ListedSession, sessionsOf } from '../../api/sessions.js';
import type { Runtime } from '../../runtime.js';
import type { CliContext } from '../context.js';
import { withRuntime } from '../with-runtime.js';

/** Each session with its actor as the audit log names it: `token:<name>` (looked up by the token's id) or the person's. */
async function withActors(runtime: Runtime, sessions: ListedSession[]): Promise<Array<ListedSession & { actor: string }>> {
  const ids = sessions.flatMap((s) => ('tokenId' in s ? [s.tokenId] : []));
  const names = new Map((ids.length ? await runtime.db.apiToken.findMany({ where: { id: { in: ids } }, select: { id: true, name: true } }) : []).map((t) => [t.id, t.name]));
  return sessions.map((s) => ({ ...s, actor: 'tokenId' in s ? `token:${names.get(s.tokenId) ?? s.tokenId}` : personActor(s.person) }));
}

export async function list(ctx: CliContext, options: { json?: boolean }): Promise<void> {
  await withRuntime(ctx, async (runtime) => {
    const sessions = (await withActors(runtime, await sessionsOf(runtime).list())).sort((a, b) => a.actor.localeCompare(b.actor));
    const shown = sessions.map((s) => ({ actor: s.actor, name: 'person' in s ? s.person.name : null, expiresAt: s.expiresAt.toISOString() }));
    if (options.json) return ctx.out(JSON.stringify(shown, null, 2));
    if (!shown.length) return ctx.out('No dashboard sessions.');
    for (const s of shown) ctx.out(`${s.actor}${s.name ? `  (${s.name})` : ''}  until ${s.expiresAt} at most`);
  });
}

export async function end(ctx: CliContext, options: { actor?: string; all?: boolean }, usage: (message: string) => never): Promise<void> {
  if (!options.all === !options.actor) usage('give --actor ACTOR (as `rekey session list` names it) or --all');
  await withRuntime(ctx, async (runtime) => {
    const sessions = sessionsOf(runtime);
    const ended = (await withActors(runtime, await sessions.list())).filter((s) => options.all || s.actor === options.actor);
    await sessions.endHashed(...ended.map((s) => s.hash));
    const whose = options.all ? 'every actor' : options.actor!;
    await runtime.db.$transaction((tx) => runtime.audit.append(tx, { actor: runtime.actor, action: 'dashboard.sessionsEnded', data: { of: whose, count: ended.length } }));
    ctx.out(`Ended ${ended.length} session${ended.length === 1 ? '' : 's'} of ${whose}.`);
  });
}
