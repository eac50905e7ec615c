/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call -- answers are JSON, checked field by field */
/**
 * The dashboard's session at the HTTP level (issue 16): a token exchanged for a cookie that is
 * HttpOnly, SameSite=Strict and Secure; the cookie authenticates the admin API; a
 * state-changing request with it needs the session's CSRF token; a wrong token gets no
 * session; signing out or revoking the token ends it; Redis holds no session id; an operator
 * lists the sessions and ends one person's (or all) with `rekey session list|end`.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { csrfToken, SESSION_IDLE_MS, Sessions, sessionsOf } from '../../src/api/sessions.js';
import { revokeToken } from '../../src/api/tokens.js';
import { CONTENT_SECURITY_POLICY } from '../../src/dashboard/assets.js';
import { dashboardRoutes } from '../../src/dashboard/routes.js';
import { call, tokenFor } from '../support/api.js';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';
import { memoryConfig } from '../support/memory-provider.js';

let h: Harness;
let operator: string;

beforeAll(async () => {
  h = await startHarness({ label: 'dashboard-session', routes: [adminApiRoutes, dashboardRoutes] });
  await h.apply(memoryConfig('dashboard-session', { 'pay-api': 'grace: 1h' }));
  expect((await h.rotate('pay-api')).status).toBe('succeeded');
  operator = await tokenFor(h, 'operator', ['read', 'rotate']);
});
afterAll(() => h?.stop());

/** Signs in with `token`; answers the cookie pair to send back and the CSRF token. */
async function signIn(token: string): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const answer = await call(h, '/ui/session', { method: 'POST', token });
  expect(answer.status).toBe(200);
  const setCookie = answer.headers.get('set-cookie') ?? '';
  return { cookie: setCookie.split(';')[0]!, csrf: answer.json.csrfToken as string, setCookie };
}

/** The actors of the `action` events GET /api/v1/audit finds with the actor filter `filter`, sorted. */
async function auditActors(action: string, filter: string): Promise<string[]> {
  const answer = await call(h, `/api/v1/audit?action=${action}&actor=${encodeURIComponent(filter)}`, { token: operator });
  expect(answer.status).toBe(200);
  return (answer.json.items as Array<{ actor: string }>).map((e) => e.actor).sort();
}

const rotations = () => h.runtime.db.run.count({ where: { secret: { name: 'pay-api' }, kind: 'rotation' } });

describe('sign-in', () => {
  it('exchanges a token for an HttpOnly, SameSite=Strict, Secure __Host- cookie and answers the caller, never the token', async () => {
    const answer = await call(h, '/ui/session', { method: 'POST', token: operator });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ name: 'operator', scopes: ['read', 'rotate'] });
    expect(answer.json.csrfToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(answer.text).not.toContain(operator);
    const setCookie = answer.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^__Host-rekey_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=28800; HttpOnly; SameSite=Strict; Secure$/);
    expect(answer.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    // A Secure cookie means the dashboard is served over https: browsers are told to keep to it (HSTS; ignored over plain HTTP).
    for (const headers of [answer.headers, (await call(h, '/ui/')).headers]) expect(headers.get('strict-transport-security')).toBe('max-age=31536000');
    const events = await h.runtime.db.auditEvent.findMany({ where: { action: 'dashboard.signedIn' } });
    expect(events.map((e) => e.actor)).toContain('token:operator');
  });

  it('answers a path under /ui that is none of its routes with its security headers, echoing nothing', async () => {
    const answer = await call(h, '/ui/%3Cscript%3Ealert(1)%3C%2Fscript%3E');
    expect([answer.status, answer.json.code]).toEqual([404, 'REKEY_API_NOT_FOUND']);
    expect(answer.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(answer.headers.get('x-frame-options')).toBe('DENY');
    expect(answer.text).not.toMatch(/script|alert/);
  });

  it('refuses a wrong token, a revoked one, and no token, with no cookie', async () => {
    const wrong = await call(h, '/ui/session', { method: 'POST', token: 'rkadm_' + 'x'.repeat(36) });
    expect([wrong.status, wrong.json.code]).toEqual([401, 'REKEY_API_TOKEN_INVALID']);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    const none = await call(h, '/ui/session', { method: 'POST' });
    expect([none.status, none.json.code]).toEqual([401, 'REKEY_API_UNAUTHENTICATED']);
    const gone = await tokenFor(h, 'gone', ['read']);
    await revokeToken(h.runtime.db, h.runtime.audit, 'gone', 'test');
    expect((await call(h, '/ui/session', { method: 'POST', token: gone })).json.code).toBe('REKEY_API_TOKEN_INVALID');
  });

  it('ends the session the browser held when it signs in again (a copied session id does not outlive the sign-in)', async () => {
    const first = await signIn(operator);
    expect((await call(h, '/ui/session', { headers: { cookie: first.cookie } })).status).toBe(200);
    const again = await call(h, '/ui/session', { method: 'POST', token: operator, headers: { cookie: first.cookie } });
    expect(again.status).toBe(200);
    const second = (again.headers.get('set-cookie') ?? '').split(';')[0]!;
    expect(second).not.toBe(first.cookie);
    expect((await call(h, '/ui/session', { headers: { cookie: first.cookie } })).status).toBe(401);
    expect((await call(h, '/ui/session', { headers: { cookie: second } })).status).toBe(200);
  });

  it('keeps only a hash of the session id in Redis', async () => {
    const { cookie } = await signIn(operator);
    const id = cookie.split('=')[1]!;
    const keys = await h.runtime.redis.keys(`${h.env.prefix}:dashboard-session:*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key).not.toContain(id);
      expect(await h.runtime.redis.get(key)).not.toContain(id);
    }
  });

  it('REKEY_DASHBOARD_COOKIE_SECURE=false: a plain cookie for plain-HTTP development, still HttpOnly and SameSite=Strict', async () => {
    const plain = new Sessions(h.runtime.redis, h.env.prefix, false, () => Promise.resolve(undefined));
    const session = await plain.create({ tokenId: 'token-id' });
    expect(plain.cookie(session)).toBe(`rekey_session=${session.id}; Path=/; Max-Age=28800; HttpOnly; SameSite=Strict`);
    expect(plain.clearCookie()).toBe('rekey_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict');
    await plain.end(session.id);
    expect(await plain.find(session.id, false)).toBeUndefined();
  });
});

describe('the cookie on the admin API', () => {
  it('authenticates reads as the token', async () => {
    const { cookie, csrf } = await signIn(operator);
    const list = await call(h, '/api/v1/secrets', { headers: { cookie } });
    expect(list.status).toBe(200);
    expect(list.json.items.map((s: { name: string }) => s.name)).toEqual(['pay-api']);
    // An answer with data is the caller's: no browser or shared cache keeps it, and it is never sniffed into HTML.
    for (const answer of [list, await call(h, '/api/v1/secrets/pay-api', { headers: { cookie } }), await call(h, '/api/v1/secrets/pay-api', { token: operator })]) {
      expect(answer.headers.get('cache-control')).toBe('no-store');
      expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
    }
    const me = await call(h, '/ui/session', { headers: { cookie } });
    expect(me.json).toMatchObject({ name: 'operator', csrfToken: csrf });
  });

  it('refuses a state-changing request without the CSRF token, or with another session\'s, and acts with its own', async () => {
    const { cookie, csrf } = await signIn(operator);
    const other = await signIn(operator);
    const before = await rotations();
    const missing = await call(h, '/api/v1/secrets/pay-api/rotate', { method: 'POST', headers: { cookie } });
    expect([missing.status, missing.json.code]).toEqual([403, 'REKEY_API_CSRF']);
    const foreign = await call(h, '/api/v1/secrets/pay-api/rotate', { method: 'POST', headers: { cookie, 'x-csrf-token': other.csrf } });
    expect([foreign.status, foreign.json.code]).toEqual([403, 'REKEY_API_CSRF']);
    expect(await rotations()).toBe(before);
    const done = await call(h, '/api/v1/secrets/pay-api/rotate', { method: 'POST', headers: { cookie, 'x-csrf-token': csrf } });
    expect(done.status).toBe(202);
    expect((await h.waitForRun(done.json.runId as string)).status).toBe('succeeded');
    const started = await h.runtime.db.auditEvent.findFirstOrThrow({ where: { runId: done.json.runId as string, action: 'run.started' } });
    expect(started.actor).toBe('token:operator');
    // Scopes are the token's: this one cannot revoke.
    expect((await call(h, '/api/v1/secrets/pay-api/versions/1/revoke', { method: 'POST', headers: { cookie, 'x-csrf-token': csrf } })).json.code).toBe('REKEY_API_FORBIDDEN');
  });

  it('signing out needs the CSRF token and ends the session', async () => {
    const { cookie, csrf } = await signIn(operator);
    expect((await call(h, '/ui/session', { method: 'DELETE', headers: { cookie } })).json.code).toBe('REKEY_API_CSRF');
    const out = await call(h, '/ui/session', { method: 'DELETE', headers: { cookie, 'x-csrf-token': csrf } });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^__Host-rekey_session=; Path=\/; Max-Age=0;/);
    const after = await call(h, '/api/v1/secrets', { headers: { cookie } });
    expect([after.status, after.json.code]).toEqual([401, 'REKEY_API_SESSION_INVALID']);
  });

  it('revoking the token ends its sessions at once; a made-up session id is refused', async () => {
    const doomed = await tokenFor(h, 'doomed', ['read']);
    const { cookie } = await signIn(doomed);
    expect((await call(h, '/api/v1/secrets', { headers: { cookie } })).status).toBe(200);
    await revokeToken(h.runtime.db, h.runtime.audit, 'doomed', 'test');
    expect((await call(h, '/api/v1/secrets', { headers: { cookie } })).json.code).toBe('REKEY_API_SESSION_INVALID');
    const madeUp = await call(h, '/api/v1/secrets', { headers: { cookie: `__Host-rekey_session=${'A'.repeat(43)}` } });
    expect([madeUp.status, madeUp.json.code]).toEqual([401, 'REKEY_API_SESSION_INVALID']);
  });

  it('ends a session SESSION_IDLE_MS after its person last acted, however often the page polls, and any session at its 8 hours however busy', async () => {
    const { cookie, csrf } = await signIn(operator);
    const key = `${h.env.prefix}:dashboard-session:${createHash('sha256').update(cookie.split('=')[1]!).digest('hex')}`;
    // Idle: Redis forgets a session SESSION_IDLE_MS after its person's last action (a tab left hidden, a browser left open).
    expect(await h.runtime.redis.pttl(key)).toBeLessThanOrEqual(SESSION_IDLE_MS);
    const idleFor = async (request: Parameters<typeof call>[2], path = '/api/v1/secrets') => {
      await h.runtime.redis.pexpire(key, 60_000); // a minute left of its idle time
      expect((await call(h, path, request)).status).toBeLessThan(300);
      return h.runtime.redis.pttl(key);
    };
    // The page's polls (GETs without the activity header) leave the idle time running: an open tab still times out.
    expect(await idleFor({ headers: { cookie } })).toBeLessThanOrEqual(60_000);
    expect(await idleFor({ headers: { cookie } }, '/ui/session')).toBeLessThanOrEqual(60_000);
    expect(await idleFor({ headers: { cookie, 'x-rekey-activity': 'yes' } })).toBeLessThanOrEqual(60_000);
    // A state-changing request refused for its CSRF token is no action of the page's person.
    await h.runtime.redis.pexpire(key, 60_000);
    expect((await call(h, '/api/v1/secrets/pay-api/drift-check', { method: 'POST', headers: { cookie }, body: { repair: false } })).status).toBe(403);
    expect(await h.runtime.redis.pttl(key)).toBeLessThanOrEqual(60_000);
    // A person's action starts it again: a read the page marks as following their input, or a change with the CSRF token.
    for (const acted of [await idleFor({ headers: { cookie, 'x-rekey-activity': '1' } }), await idleFor({ method: 'POST', headers: { cookie, 'x-csrf-token': csrf }, body: { repair: false } }, '/api/v1/secrets/pay-api/drift-check')]) {
      expect(acted).toBeGreaterThan(60_000);
      expect(acted).toBeLessThanOrEqual(SESSION_IDLE_MS);
    }
    // Absolute: a session in use all along still ends at its expiresAt.
    const stored = JSON.parse((await h.runtime.redis.get(key))!) as Record<string, unknown>;
    await h.runtime.redis.set(key, JSON.stringify({ ...stored, expiresAt: new Date(Date.now() - 1000).toISOString() }), 'KEEPTTL');
    const over = await call(h, '/api/v1/secrets', { headers: { cookie } });
    expect([over.status, over.json.code]).toEqual([401, 'REKEY_API_SESSION_INVALID']);
    expect(await h.runtime.redis.exists(key)).toBe(0);
  });

  it('a bearer token wins over a cookie, and needs no CSRF token', async () => {
    const { cookie } = await signIn(operator);
    const answer = await call(h, '/api/v1/secrets/pay-api/drift-check', { method: 'POST', token: operator, headers: { cookie }, body: { repair: false } });
    expect(answer.status).toBe(200);
  });
});

describe('a person signed in with OpenID Connect', () => {
  const oidcConfig = (issuer: string) => `${memoryConfig('dashboard-session', { 'pay-api': 'grace: 1h' })}dashboard:
  oidc:
    issuer: ${issuer}
    clientId: rekey-dashboard
    redirectUri: http://127.0.0.1/ui/oidc/callback
    insecure: true
    groups: { sre: [read] }
`;
  const applied = async (issuer: string) => {
    await h.apply(oidcConfig(issuer));
    await expect.poll(async () => (await h.runtime.applied('dashboard'))?.oidc?.issuer, { timeout: 30_000 }).toBe(issuer);
  };

  it("is signed out once dashboard.oidc names another provider: the old provider's subjects and groups are not the new one's", async () => {
    await applied('http://127.0.0.1:9/old-idp');
    // The session the callback makes for alice, signed in by the old provider (src/dashboard/routes.ts).
    const sessions = sessionsOf(h.runtime);
    const session = await sessions.create({ person: { issuer: 'http://127.0.0.1:9/old-idp', subject: 'alice', name: 'alice', groups: ['sre'] } });
    const cookie = sessions.cookie(session).split(';')[0]!;
    expect((await call(h, '/api/v1/secrets', { headers: { cookie } })).status).toBe(200);
    // The operator moves sign-in to another provider (the old one compromised, or retired); the group names stay.
    await applied('http://127.0.0.1:9/new-idp');
    const after = await call(h, '/api/v1/secrets', { headers: { cookie } });
    expect([after.status, after.json.code]).toEqual([401, 'REKEY_API_SESSION_INVALID']);
  });

  it("`rekey session end --actor` ends one person's sessions at once (a person removed at the provider keeps no admin session); --all ends every one", async () => {
    await applied('http://127.0.0.1:9/idp');
    const sessions = sessionsOf(h.runtime);
    const person = (subject: string) => ({ person: { issuer: 'http://127.0.0.1:9/idp', subject, name: `${subject} example`, groups: ['sre'] } });
    const cookieOf = async (principal: Parameters<Sessions['create']>[0]) => sessions.cookie(await sessions.create(principal)).split(';')[0]!;
    const [mallory, bob, viaToken] = [await cookieOf(person('mallory')), await cookieOf(person('bob')), await cookieOf({ tokenId: (await h.runtime.db.apiToken.findUniqueOrThrow({ where: { name: 'operator' } })).id })];
    const status = async (cookie: string) => (await call(h, '/api/v1/secrets', { headers: { cookie } })).status;
    expect([await status(mallory), await status(bob), await status(viaToken)]).toEqual([200, 200, 200]);
    const listed = await rekey(['session', 'list', '--json'], h.childEnv());
    expect(listed.code).toBe(0);
    const actors = (JSON.parse(listed.stdout) as Array<{ actor: string; name: string | null }>).map((s) => `${s.actor} ${s.name}`);
    expect(actors).toEqual(expect.arrayContaining(['oidc:http://127.0.0.1:9/idp#mallory mallory example', 'oidc:http://127.0.0.1:9/idp#bob bob example', 'token:operator null']));
    expect(listed.stdout).not.toMatch(/[A-Za-z0-9_-]{43}/); // no session id

    const ended = await rekey(['session', 'end', '--actor', 'oidc:http://127.0.0.1:9/idp#mallory'], h.childEnv());
    expect([ended.code, ended.stdout.trim()]).toEqual([0, 'Ended 1 session of oidc:http://127.0.0.1:9/idp#mallory.']);
    const refused = await call(h, '/api/v1/secrets', { headers: { cookie: mallory } });
    expect([refused.status, refused.json.code]).toEqual([401, 'REKEY_API_SESSION_INVALID']);
    expect([await status(bob), await status(viaToken)]).toEqual([200, 200]);
    const audited = await h.runtime.db.auditEvent.findFirstOrThrow({ where: { action: 'dashboard.sessionsEnded' }, orderBy: { seq: 'desc' } });
    expect(audited.data).toEqual({ of: 'oidc:http://127.0.0.1:9/idp#mallory', count: 1 });

    expect((await rekey(['session', 'end'], h.childEnv())).code).toBe(2);
    expect((await rekey(['session', 'end', '--all'], h.childEnv())).code).toBe(0);
    expect([await status(bob), await status(viaToken)]).toEqual([401, 401]);
    expect(JSON.parse((await rekey(['session', 'list', '--json'], h.childEnv())).stdout)).toEqual([]);
  });

  it("keys Idempotency-Keys by issuer and subject: the same subject at another provider (another person) neither replays nor reads the first one's answer", async () => {
    const config = (issuer: string) => oidcConfig(issuer).replace('groups: { sre: [read] }', 'groups: { sre: [read, rotate] }');
    const applyIssuer = async (issuer: string) => {
      await h.apply(config(issuer));
      await expect.poll(async () => (await h.runtime.applied('dashboard'))?.oidc?.groups?.sre, { timeout: 30_000 }).toEqual(['read', 'rotate']);
      await expect.poll(async () => (await h.runtime.applied('dashboard'))?.oidc?.issuer, { timeout: 30_000 }).toBe(issuer);
    };
    const sessions = sessionsOf(h.runtime);
    const rotate = async (issuer: string) => {
      const session = await sessions.create({ person: { issuer, subject: '248289761001', name: 'someone', groups: ['sre'] } });
      const cookie = sessions.cookie(session).split(';')[0]!;
      return call(h, '/api/v1/secrets/pay-api/rotate', { method: 'POST', headers: { cookie, 'x-csrf-token': csrfToken(session.id), 'idempotency-key': 'shared-key-1' } });
    };
    await applyIssuer('http://127.0.0.1:9/first-idp');
    const first = await rotate('http://127.0.0.1:9/first-idp');
    expect(first.status).toBe(202);
    await h.waitForRun(first.json.runId as string);
    // Sign-in moves to another provider, whose subject 248289761001 is somebody else, who happens to send the same key.
    await applyIssuer('http://127.0.0.1:9/second-idp');
    const second = await rotate('http://127.0.0.1:9/second-idp');
    expect(second.headers.get('idempotent-replayed')).toBeNull();
    expect(second.status).toBe(202);
    expect(second.json.runId).not.toBe(first.json.runId);
    await h.waitForRun(second.json.runId as string);
  });

  it('is audited as its issuer and subject (two providers may share a subject); filters by subject alone, or by kind, still find it', async () => {
    const issuer = 'http://127.0.0.1:9/idp';
    await applied(issuer);
    const sessions = sessionsOf(h.runtime);
    const session = await sessions.create({ person: { issuer, subject: 'bob#1', name: 'bob', groups: ['sre'] } });
    const cookie = sessions.cookie(session).split(';')[0]!;
    expect((await call(h, '/ui/session', { method: 'DELETE', headers: { cookie, 'x-csrf-token': csrfToken(session.id) } })).status).toBe(204);
    const signedOut = await h.runtime.db.auditEvent.findFirstOrThrow({ where: { action: 'dashboard.signedOut' }, orderBy: { seq: 'desc' } });
    // A `#` of the subject is escaped: the first `#` ends the issuer.
    expect(signedOut.actor).toBe('oidc:http://127.0.0.1:9/idp#bob%231');
    // An event of the same subject at another provider, and one from before (the subject alone).
    await h.runtime.db.$transaction(async (tx) => {
      await h.runtime.audit.append(tx, { actor: 'oidc:http://127.0.0.1:9/other-idp#bob%231', action: 'dashboard.signedOut', data: {} });
      await h.runtime.audit.append(tx, { actor: 'oidc:bob#1', action: 'dashboard.signedOut', data: {} });
      await h.runtime.audit.append(tx, { actor: 'oidc:x#bob#1', action: 'dashboard.signedOut', data: {} });
      // The escape's `%` is not a LIKE wildcard.
      await h.runtime.audit.append(tx, { actor: 'oidc:http://127.0.0.1:9/idp#bobX231', action: 'dashboard.signedOut', data: {} });
    });
    const actors = (filter: string) => auditActors('dashboard.signedOut', filter);
    expect(await actors('oidc:http://127.0.0.1:9/idp#bob%231')).toEqual(['oidc:http://127.0.0.1:9/idp#bob%231']);
    // The subject alone, as filters named a person before: at every provider, and the events from before.
    expect(await actors('oidc:bob#1')).toEqual(['oidc:bob#1', 'oidc:http://127.0.0.1:9/idp#bob%231', 'oidc:http://127.0.0.1:9/other-idp#bob%231']);
    expect(await actors('oidc')).toEqual(['oidc:bob#1', 'oidc:http://127.0.0.1:9/idp#bob%231', 'oidc:http://127.0.0.1:9/idp#bobX231', 'oidc:http://127.0.0.1:9/other-idp#bob%231', 'oidc:x#bob#1']);
  });
});

it('filters the audit log by a kind of actor alone: `cli` finds every operator at the command line, and those from before', async () => {
  await h.runtime.db.$transaction(async (tx) => {
    for (const actor of ['cli', 'cli:alice', 'cli:bob', 'client', 'token:cli']) await h.runtime.audit.append(tx, { actor, action: 'test.kind', data: {} });
  });
  const actors = (filter: string) => auditActors('test.kind', filter);
  expect(await actors('cli')).toEqual(['cli', 'cli:alice', 'cli:bob']);
  expect(await actors('cli:alice')).toEqual(['cli:alice']);
  expect(await actors('token')).toEqual(['token:cli']);
});
