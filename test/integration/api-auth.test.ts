/**
 * Admin API authentication (issue 16): tokens made by `rekey token create`, stored as a hash
 * only, presented as a bearer token; every request, unknown paths included, is authenticated
 * before anything else happens, and refusals are problems with codes that echo nothing.
 */
import { createHash } from 'node:crypto';
import { userInfo } from 'node:os';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { hasValidChecksum } from '../../src/core/key-format.js';
import { revokeTokens } from '../../src/leaks/cli.js';
import { call, tokenFor } from '../support/api.js';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ label: 'api-auth', routes: [adminApiRoutes] });
});
afterAll(() => h?.stop());

const problem = (answer: { status: number; contentType: string; json: { code?: string } }) => ({ status: answer.status, type: answer.contentType.split(';')[0], code: answer.json?.code });

describe('refusals', () => {
  it('no token: 401 REKEY_API_UNAUTHENTICATED on every path, unknown ones too, before the body is read', async () => {
    for (const path of ['/api/v1/openapi.json', '/api/v1/no-such-thing', '/api/v1/secrets']) {
      expect(problem(await call(h, path))).toEqual({ status: 401, type: 'application/problem+json', code: 'REKEY_API_UNAUTHENTICATED' });
    }
    // A malformed body is never parsed for a caller without a token.
    const response = await fetch(`${h.serving!.url}/api/v1/openapi.json`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    expect(response.status).toBe(401);
  });

  it('a path fastify cannot route (bad percent-encoding, an over-long segment) is refused without echoing it', async () => {
    for (const path of ['/api/v1/secrets/%E0%A4%A-<b>marker</b>', `/api/v1/secrets/${'m'.repeat(150)}<b>marker</b>`, '/ui/assets/%E0%A4%A-<b>marker</b>']) {
      const response = await fetch(`${h.serving!.url}${path}`);
      expect([path, response.status >= 400 && response.status < 500]).toEqual([path, true]);
      expect(await response.text()).not.toContain('marker');
    }
  });

  it('a wrong, forged or made-up token: 401 REKEY_API_TOKEN_INVALID, and the answer echoes none of it', async () => {
    const real = await tokenFor(h, 'forgery-base', ['read']);
    const forged = `${real.slice(0, -1)}${real.endsWith('0') ? '1' : '0'}`;
    const other = `rkadm_${'A'.repeat(30)}`;
    for (const token of [forged, other, 'hello', real.replace('rkadm_', 'rk_live_')]) {
      const answer = await call(h, '/api/v1/openapi.json', { token });
      expect(problem(answer)).toEqual({ status: 401, type: 'application/problem+json', code: 'REKEY_API_TOKEN_INVALID' });
      expect(answer.text).not.toContain(token);
      expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="rekey"');
    }
  });

  it('a revoked token and an expired one are refused like unknown ones', async () => {
    const revoked = await tokenFor(h, 'soon-revoked', ['read']);
    expect((await call(h, '/api/v1/openapi.json', { token: revoked })).status).toBe(200);
    const result = await rekey(['token', 'revoke', 'soon-revoked'], h.childEnv());
    expect(result).toMatchObject({ code: 0, stdout: 'Revoked token soon-revoked.\n' });
    expect(problem(await call(h, '/api/v1/openapi.json', { token: revoked })).code).toBe('REKEY_API_TOKEN_INVALID');
    const expiring = await tokenFor(h, 'short-lived', ['read'], 60_000);
    expect((await call(h, '/api/v1/openapi.json', { token: expiring })).status).toBe(200);
    await h.runtime.db.apiToken.update({ where: { name: 'short-lived' }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect(problem(await call(h, '/api/v1/openapi.json', { token: expiring })).code).toBe('REKEY_API_TOKEN_INVALID');
  });

  it("a source's failed authentications never lock out an authenticated caller from the same address", async () => {
    const good = await tokenFor(h, 'same-address', ['read']);
    const failures = await Promise.all(Array.from({ length: 60 }, () => call(h, '/api/v1/openapi.json', { token: `rkadm_${'x'.repeat(36)}` })));
    expect(failures.every((f) => f.status === 401 || f.status === 429)).toBe(true);
    expect((await call(h, '/api/v1/openapi.json', { token: good })).status).toBe(200);
  });
});

describe('rekey token', () => {
  it('create prints the token once; PostgreSQL keeps its SHA-256, scopes and expiry, never the token', async () => {
    const result = await rekey(['token', 'create', '--name', 'ci-deploy', '--scope', 'read', '--scope', 'rotate:payments-*', '--ttl', '90d', '--json'], h.childEnv());
    expect(result.code).toBe(0);
    const created = JSON.parse(result.stdout) as { token: string; scopes: string[]; expiresAt: string };
    expect(created.token).toMatch(/^rkadm_[0-9A-Za-z]{36}$/);
    expect(hasValidChecksum(created.token)).toBe(true); // found by `rekey scan` and scanners that know the format
    expect(created.scopes).toEqual(['read', 'rotate:payments-*']);
    expect(Date.parse(created.expiresAt) - Date.now()).toBeGreaterThan(89 * 86_400_000);
    const [row] = await h.runtime.db.$queryRaw<Array<Record<string, unknown>>>`SELECT * FROM api_tokens WHERE name = 'ci-deploy'`;
    expect(row!.hash).toBe(createHash('sha256').update(created.token).digest('hex'));
    expect(JSON.stringify(row)).not.toContain(created.token.slice(6, 30));
    expect((await call(h, '/api/v1/openapi.json', { token: created.token })).status).toBe(200);

    const list = await rekey(['token', 'list'], h.childEnv());
    expect(list.stdout).toMatch(/^ci-deploy {2}live {2}scopes: read rotate:payments-\*/m);
    expect(list.stdout).not.toContain(created.token.slice(6));
    const audit = await h.runtime.db.auditEvent.findFirst({ where: { action: 'token.created', data: { path: ['name'], equals: 'ci-deploy' } } });
    // The operator who ran it, by their OS account.
    expect(audit).toMatchObject({ actor: `cli:${userInfo().username}`, data: { name: 'ci-deploy', scopes: ['read', 'rotate:payments-*'] } });
  });

  it('refuses bad scopes, bad names and a name used before (revoked or not), with exit 1', async () => {
    expect((await rekey(['token', 'create', '--name', 'x', '--scope', 'write'], h.childEnv())).code).toBe(1);
    expect((await rekey(['token', 'create', '--name', 'Bad Name', '--scope', 'read'], h.childEnv())).code).toBe(1);
    const reused = await rekey(['token', 'create', '--name', 'soon-revoked', '--scope', 'read'], h.childEnv());
    expect(reused.code).toBe(1);
    expect(reused.stderr).toContain('never reused');
    expect((await rekey(['token', 'revoke', 'nobody'], h.childEnv())).code).toBe(1);
  });
});

describe('a leaked admin token', () => {
  it('reported leaked (here by `rekey revoke --token-stdin`, as by any receiver), it is revoked at once and audited as such', async () => {
    const token = await tokenFor(h, 'pushed-to-github', ['admin']);
    expect((await call(h, '/api/v1/openapi.json', { token })).status).toBe(200);
    const [outcome] = await revokeTokens(h.runtime, Readable.from([`${token}\n`]));
    expect(outcome).toMatchObject({ outcome: 'unknown', secret: null });
    expect(problem(await call(h, '/api/v1/openapi.json', { token })).code).toBe('REKEY_API_TOKEN_INVALID');
    const event = await h.runtime.db.auditEvent.findFirstOrThrow({ where: { action: 'token.revoked', data: { path: ['name'], equals: 'pushed-to-github' } } });
    // Who ran the command (the runtime's actor: `cli:<OS user>` for `rekey`), as a receiver's report names the report.
    expect(event.actor).toBe(h.runtime.actor);
    expect(event.data).toMatchObject({ reason: 'leaked' });
    expect(h.logs.some((line) => line.includes('admin API token reported leaked') && line.includes('"tokenName":"pushed-to-github"') && !line.includes(token))).toBe(true);
  });
});
