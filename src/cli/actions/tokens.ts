/** What `rekey token create|list|revoke` do (../commands/tokens.ts defines them). */
import { parseDuration } from '../../core/duration.js';
import { createToken, listTokens, revokeToken } from '../../api/tokens.js';
import type { CliContext } from '../context.js';
import { withRuntime } from '../with-runtime.js';

export async function create(ctx: CliContext, options: { name: string; scope: string[]; ttl?: string; json?: boolean }): Promise<void> {
  await withRuntime(ctx, async (runtime) => {
    const ttlMs = options.ttl === undefined ? undefined : parseDuration(options.ttl);
    const { token: value, info } = await createToken(runtime.db, runtime.audit, { name: options.name, scopes: options.scope, actor: runtime.actor, ...(ttlMs === undefined ? {} : { ttlMs }) });
    if (options.json) ctx.out(JSON.stringify({ token: value, name: info.name, scopes: info.scopes, expiresAt: info.expiresAt?.toISOString() ?? null }));
    else ctx.out(`${value}\n(token ${info.name}: ${info.scopes.join(' ')}${info.expiresAt ? `, expires ${info.expiresAt.toISOString()}` : ''}; shown once, store it now)`);
  });
}

export async function list(ctx: CliContext, options: { json?: boolean }): Promise<void> {
  await withRuntime(ctx, async (runtime) => {
    const tokens = await listTokens(runtime.db);
    if (options.json) return ctx.out(JSON.stringify(tokens, null, 2));
    if (!tokens.length) return ctx.out('No API tokens. Create one with `rekey token create --name NAME --scope read`.');
    const when = (d: Date | null) => d?.toISOString() ?? '-';
    for (const t of tokens) {
      const state = t.revokedAt ? `revoked ${when(t.revokedAt)}` : t.expiresAt && t.expiresAt <= new Date() ? 'expired' : 'live';
      ctx.out(`${t.name}  ${state}  scopes: ${t.scopes.join(' ')}  created ${when(t.createdAt)}  expires ${when(t.expiresAt)}  last used ${when(t.lastUsedAt)}`);
    }
  });
}

export async function revoke(ctx: CliContext, name: string): Promise<void> {
  await withRuntime(ctx, async (runtime) => {
    const revoked = await revokeToken(runtime.db, runtime.audit, name, runtime.actor);
    ctx.out(revoked ? `Revoked token ${name}.` : `Token ${name} was already revoked.`);
  });
}
