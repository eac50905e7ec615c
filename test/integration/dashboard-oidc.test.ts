/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return -- answers are JSON, checked field by field */
/**
 * Dashboard sign-in with OpenID Connect (issue 16) in Chromium against a real provider run
 * locally (`oidc-provider`, with its own login and consent pages): authorization code + PKCE,
 * state and nonce; the `groups` claim mapped to scopes by rekey.yaml; the session then works
 * like a token's and audit events name the subject. Refused: a wrong state, a replayed code, a
 * person whose groups map to no scope, an ID token tampered with on its way back, the provider's
 * own refusal (error=access_denied: the person cancelled). Signing out ends rekey's session and,
 * through the provider's end_session_endpoint (RP-initiated logout), the provider's.
 */
import { importJWK, type JWK, SignJWT } from 'jose';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { dashboardRoutes } from '../../src/dashboard/routes.js';
import { call, tokenFor } from '../support/api.js';
import { type Chromium, openChromium } from '../support/browser.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';
import { type LocalIdp, rsaKey, startIdp } from '../support/oidc-provider.js';

const JOURNAL = 'dashboard-oidc';
const WAIT = { timeout: 30_000 };
const CLIENT_SECRET = 'rekey-dashboard-client-secret-0123456789';
/** The provider's people: login → groups. */
const PEOPLE: Record<string, string[]> = { alice: ['sre', 'everyone'], mallory: ['marketing', 'everyone'] };

let h: Harness;
let idp: LocalIdp;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let base: string;
let consoleErrors: Chromium['consoleErrors'];
let violations: string[];
let tamper = false;
/** Claims the provider's ID token gets on its way back, signed again with the provider's own key (as the provider could issue it). */
let reissue: Record<string, unknown> | undefined;
let idpKey: JWK;
let hold = false;
let held: string | undefined;

const config = (groups: string) => `${memoryConfig(JOURNAL, { 'pay-api': 'grace: 1h' })}env: { allow: [TEST_OIDC_CLIENT_SECRET] }
dashboard:
  oidc:
    issuer: ${idp.issuer}
    clientId: rekey-dashboard
    clientSecret: \${env:TEST_OIDC_CLIENT_SECRET}
    redirectUri: ${base}/ui/oidc/callback
    scopes: [openid, profile, groups]
    insecure: true
    groups: { ${groups} }
`;

beforeAll(async () => {
  h = await startHarness({ label: 'dashboard-oidc', routes: [adminApiRoutes, dashboardRoutes] });
  base = h.serving!.url;
  idp = await startIdp(
    {
      clients: [
        // A public client: no secret, PKCE alone (dashboard.oidc without clientSecret).
        { client_id: 'rekey-public', token_endpoint_auth_method: 'none', redirect_uris: [`${base}/ui/oidc/callback`], grant_types: ['authorization_code'], response_types: ['code'] },
        {
          client_id: 'rekey-dashboard',
          client_secret: CLIENT_SECRET,
          redirect_uris: [`${base}/ui/oidc/callback`],
          post_logout_redirect_uris: [`${base}/ui/`],
          grant_types: ['authorization_code'],
          response_types: ['code'],
        },
      ],
      jwks: { keys: [(idpKey = await rsaKey('idp-key'))] },
      claims: { openid: ['sub'], profile: ['name', 'preferred_username'], groups: ['groups'] },
      conformIdTokenClaims: false, // the groups claim in the ID token, as most providers put it
      findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id, preferred_username: id, groups: PEOPLE[id] ?? [] }) }),
      pkce: { required: () => true },
      features: { devInteractions: { enabled: true } },
    },
    undefined,
    undefined,
    '127.0.0.2', // another site than rekey's 127.0.0.1, as a real provider is: its pages' redirects back are cross-site navigations
  );
  // The way back to rekey, for the held callbacks; and the wire between rekey and the token
  // endpoint, for the tampered case: the ID token's subject changes, its signature stays.
  idp.provider.use(async (ctx, next) => {
    await next();
    const location: unknown = ctx.response.get('location');
    if (hold && typeof location === 'string' && location.startsWith(`${base}/ui/oidc/callback?`)) {
      held = location;
      ctx.response.remove('location');
      ctx.status = 200;
      ctx.body = 'held by the test';
    }
    const body = ctx.body as { id_token?: string } | undefined;
    if (!(tamper || reissue) || ctx.path !== '/token' || typeof body?.id_token !== 'string') return;
    const [header, payload, signature] = body.id_token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    if (reissue) {
      const signed = await new SignJWT({ ...claims, ...reissue }).setProtectedHeader({ alg: 'RS256', kid: 'idp-key' }).sign(await importJWK(idpKey, 'RS256'));
      ctx.body = { ...body, id_token: signed };
      return;
    }
    ctx.body = { ...body, id_token: `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: 'admin' })).toString('base64url')}.${signature}` };
  });
  process.env.TEST_OIDC_CLIENT_SECRET = CLIENT_SECRET;
  await h.apply(config('sre: [read, rotate]'));
  expect((await h.rotate('pay-api')).status).toBe('succeeded');
  ({ browser, context, page, consoleErrors, violations } = await openChromium(undefined, { backForwardCache: true }));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await idp?.close();
  await h?.stop();
});

/** Sends the browser to the provider from the sign-in page; with `login`, signs in there and consents. */
async function startSignIn(login?: string): Promise<void> {
  await context.clearCookies({ name: '__Host-rekey_session' }); // whatever an earlier test left
  await page.goto(`${base}/ui/`);
  await page.click('#oidc-sign-in', WAIT);
  if (!login) return;
  await page.waitForSelector('input[name=login]', WAIT);
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any password: the development login page checks none');
  await page.click('button[type=submit]');
  await page.waitForSelector('button:has-text("Continue")', WAIT);
  await page.click('button:has-text("Continue")');
}

/** The callback URL the provider sends the browser to next, held back by the provider (it answers a page instead). */
async function heldCallback(start: () => Promise<void>): Promise<URL> {
  held = undefined;
  hold = true;
  try {
    await start();
    await expect.poll(() => held, WAIT).toBeDefined();
  } finally {
    hold = false;
  }
  return new URL(held!);
}

const refusal = async () => (await page.waitForSelector('form.signin [role=alert]', WAIT)).textContent();
const sessionCookie = async () => (await context.cookies(base)).find((c) => c.name === '__Host-rekey_session');

/**
 * Ends rekey's session as the Sign out button does (DELETE /ui/session), without following the
 * provider's logout page it answers (which would revoke the consent later cases rely on).
 */
async function signOut(): Promise<void> {
  const cookie = `__Host-rekey_session=${(await sessionCookie())!.value}`;
  const me = await call(h, '/ui/session', { headers: { cookie } });
  const out = await call(h, '/ui/session', { method: 'DELETE', headers: { cookie, 'x-csrf-token': me.json.csrfToken as string } });
  expect(out.status).toBe(200);
  expect(String(out.json.endSession)).toMatch(new RegExp(`^${idp.issuer}/`));
  await context.clearCookies({ name: '__Host-rekey_session' });
}

describe('OIDC sign-in', () => {
  it('signs in through the provider, rotates a secret, and the audit log names the subject', async () => {
    await startSignIn('alice');
    await page.waitForSelector('tr[data-secret="pay-api"]', WAIT);
    expect(new URL(page.url()).pathname).toBe('/ui/');
    expect(await page.textContent('header .token-name')).toBe('alice');
    expect(await sessionCookie()).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
    expect((await context.cookies(base)).map((c) => c.name)).not.toContain('__Host-rekey_oidc'); // the flow's cookie is spent

    await page.click('a[href="#/secrets/pay-api"]');
    await page.waitForSelector('.tl-row[data-version="1"][data-state="current"]', WAIT);
    await page.click('#rotate-now');
    await page.waitForSelector('.tl-row[data-version="2"][data-state="current"]', WAIT);
    await page.waitForSelector('.card:has(h2:text("Audit events")) tr:has-text("api.rotateSecret"):has-text("#alice")', WAIT);
    const run = await h.runtime.db.run.findFirstOrThrow({ where: { secret: { name: 'pay-api' }, kind: 'rotation' }, orderBy: { startedAt: 'desc' } });
    const actors = await h.runtime.db.auditEvent.findMany({ where: { OR: [{ runId: run.id, action: 'run.started' }, { action: { in: ['api.rotateSecret', 'dashboard.signedIn'] } }] } });
    expect(actors.map((e) => [e.action, e.actor]).sort()).toEqual([
      // Named with the provider: another provider's alice is another person.
      ['api.rotateSecret', `oidc:${idp.issuer}#alice`],
      ['dashboard.signedIn', `oidc:${idp.issuer}#alice`],
      ['run.started', `oidc:${idp.issuer}#alice`],
    ]);
  });

  it("re-checks the person's scopes on every request: revoking is not one of them, and unmapping the group ends the session", async () => {
    const cookie = `__Host-rekey_session=${(await sessionCookie())!.value}`;
    const me = await call(h, '/ui/session', { headers: { cookie } });
    expect(me.json).toMatchObject({ name: 'alice', scopes: ['read', 'rotate'] });
    const revoke = await call(h, '/api/v1/secrets/pay-api/versions/1/revoke', { method: 'POST', headers: { cookie, 'x-csrf-token': me.json.csrfToken as string } });
    expect([revoke.status, revoke.json.code]).toEqual([403, 'REKEY_API_FORBIDDEN']);
    // Every process reads the applied config again within a second (src/resolver.ts): wait for this one's.
    const applied = async (groups: string) => {
      await h.apply(config(groups));
      await expect.poll(async () => Object.keys((await h.runtime.applied('dashboard'))!.oidc!.groups), WAIT).toEqual([groups.split(':')[0]]);
    };
    const listed = async () => (await call(h, '/api/v1/secrets', { headers: { cookie } })).json;
    await applied('sre-leads: [admin]');
    expect((await listed()).code).toBe('REKEY_API_SESSION_INVALID');
    await applied('sre: [read, rotate]');
    expect((await listed()).items).toHaveLength(1);
    await page.reload();
    await page.waitForSelector('.tl-row[data-version="2"]', WAIT);
    await signOut();
  });

  it("ends the session the browser held when someone signs in through the provider, though the redirect back carries no SameSite=Strict cookie, and when that sign-in is refused", async () => {
    // A shared browser: someone signed in with a token, then another person signs in with the provider.
    const token = await tokenFor(h, 'shared-browser', ['read']);
    await context.clearCookies({ name: '__Host-rekey_session' });
    await page.goto(`${base}/ui/`);
    await page.fill('#token', token);
    await page.click('form.signin button[type=submit]');
    await page.waitForSelector('header .token-name:text("shared-browser")', WAIT);
    const held = `__Host-rekey_session=${(await sessionCookie())!.value}`;
    await context.clearCookies({ name: /^_session/ }); // nobody signed in at the provider: alice logs in there
    await page.goto(`${base}/ui/oidc/start`);
    await page.waitForSelector('input[name=login]', WAIT);
    await page.fill('input[name=login]', 'alice');
    await page.fill('input[name=password]', 'any password: the development login page checks none');
    await page.click('button[type=submit]');
    await page.waitForSelector('button:has-text("Continue")', WAIT);
    const back = page.waitForRequest((r) => r.url().startsWith(`${base}/ui/oidc/callback?`), WAIT);
    await page.click('button:has-text("Continue")');
    // The provider is another site and its page sent the browser back: a cross-site navigation, which leaves the session cookie behind.
    expect((await (await back).allHeaders()).cookie ?? '').not.toContain('__Host-rekey_session');
    await page.waitForSelector('header .token-name:text("alice")', WAIT);
    const old = await call(h, '/api/v1/secrets', { headers: { cookie: held } });
    expect([old.status, old.json.code]).toEqual([401, 'REKEY_API_SESSION_INVALID']);
    // A sign-in that comes back refused ends the session too: the refusal shows, not the session's page.
    const alices = `__Host-rekey_session=${(await sessionCookie())!.value}`;
    reissue = { aud: ['other-app', 'rekey-dashboard'], azp: 'other-app' };
    try {
      await page.goto(`${base}/ui/oidc/start`); // the provider remembers alice: straight back
      expect(await refusal()).toContain('could not be verified');
    } finally {
      reissue = undefined;
    }
    expect((await call(h, '/api/v1/secrets', { headers: { cookie: alices } })).status).toBe(401);
    await context.clearCookies({ name: '__Host-rekey_session' });
  });

  it('logs no code when the callback fails after the exchange, and answers a problem, not the error', async () => {
    // The audit event of the sign-in cannot be written (the database went away at that moment).
    const append = vi.spyOn(h.runtime.audit, 'append').mockRejectedValueOnce(new Error('the database went away'));
    try {
      const callback = await heldCallback(() => startSignIn()); // the provider remembers alice: straight back
      const logged = h.logs.length;
      const answer = (await page.goto(callback.href))!;
      expect(append).toHaveBeenCalled();
      const lines = h.logs.slice(logged).join('\n');
      expect(lines).toContain('the database went away');
      for (const name of ['code', 'state']) expect(lines, name).not.toContain(callback.searchParams.get(name)!);
      expect([answer.status(), ((await answer.json()) as { code: string }).code]).toEqual([500, 'REKEY_API_INTERNAL']);
    } finally {
      append.mockRestore();
    }
    expect(await sessionCookie()).toBeUndefined();
    // The page's 500, which Chromium reports as a console error: this test's own.
    const expected = (e: { text: string; url: string }) => e.url.startsWith(`${base}/ui/oidc/callback?`) && e.text.includes('status of 500');
    expect(consoleErrors.filter(expected)).toHaveLength(1);
    consoleErrors.splice(0, consoleErrors.length, ...consoleErrors.filter((e) => !expected(e)));
  });

  it('refuses a callback whose state is not the one this browser started', async () => {
    const callback = await heldCallback(() => startSignIn()); // the provider remembers alice: straight back
    callback.searchParams.set('state', 'A'.repeat(43));
    await page.goto(callback.href);
    expect(await refusal()).toContain('stale or was not started here');
    expect(await sessionCookie()).toBeUndefined();
  });

  it('refuses a replayed code, even with a fresh state', async () => {
    const first = await heldCallback(() => startSignIn());
    await page.goto(first.href);
    await page.waitForSelector('tr[data-secret="pay-api"]', WAIT);
    await signOut();
    const second = await heldCallback(() => startSignIn());
    second.searchParams.set('code', first.searchParams.get('code')!);
    await page.goto(second.href);
    expect(await refusal()).toContain('refused the sign-in code');
    expect(await sessionCookie()).toBeUndefined();
  });

  it('refuses an ID token tampered with on its way back', async () => {
    tamper = true;
    try {
      await startSignIn();
      expect(await refusal()).toContain('could not be verified');
    } finally {
      tamper = false;
    }
    expect(await sessionCookie()).toBeUndefined();
    expect(h.logs.some((l) => l.includes('OIDC ID token refused') && l.includes('"reason":"signature"'))).toBe(true);
  });

  /** Signs in (the provider remembers alice: straight back) with the ID token's `claims` replaced; answers the refusal or the overview's first row. */
  const signedIn = async (claims: Record<string, unknown>) => {
    reissue = claims;
    try {
      await startSignIn();
      return await page.waitForSelector('form.signin [role=alert], tr[data-secret="pay-api"]', WAIT).then((e) => e.textContent());
    } finally {
      reissue = undefined;
    }
  };

  it("refuses an ID token the provider made for several clients unless its azp is rekey's client id", async () => {
    // OpenID Connect Core 3.1.3.7: with several audiences, azp must be present; when present, it must name this client.
    expect(await signedIn({ aud: ['other-app', 'rekey-dashboard'], azp: 'other-app' })).toContain('could not be verified');
    expect(await sessionCookie()).toBeUndefined();
    expect(await signedIn({ aud: ['other-app', 'rekey-dashboard'] })).toContain('could not be verified');
    expect(await sessionCookie()).toBeUndefined();
    expect(h.logs.some((l) => l.includes('OIDC ID token refused') && l.includes('"reason":"claim azp"'))).toBe(true);
    // Re-signed with the provider's key, a token for this client alone is accepted: the refusals above are the azp's.
    expect(await signedIn({ aud: 'rekey-dashboard', azp: 'rekey-dashboard' })).toContain('pay-api');
    await signOut();
  });

  it('refuses an ID token not issued during this sign-in: iat a year ago, or a day ahead (its exp still to come)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const logged = h.logs.length;
    expect(await signedIn({ iat: now - 365 * 86400, exp: now + 3600 })).toContain('could not be verified');
    expect(await sessionCookie()).toBeUndefined();
    expect(await signedIn({ iat: now + 86400, exp: now + 2 * 86400 })).toContain('could not be verified');
    expect(await sessionCookie()).toBeUndefined();
    expect(h.logs.slice(logged).filter((l) => l.includes('OIDC ID token refused')).map((l) => /"reason":"([^"]+)"/.exec(l)?.[1])).toEqual(['expired', 'claim iat']);
  });

  it('refuses a person whose groups map to no scope, and records who it was', async () => {
    await context.clearCookies({ name: /^_session/ }); // sign alice out at the provider
    await startSignIn('mallory');
    expect(await refusal()).toContain('none of your groups');
    expect(await sessionCookie()).toBeUndefined();
    const refused = await h.runtime.db.auditEvent.findFirstOrThrow({ where: { action: 'dashboard.signInRefused' } });
    expect(refused).toMatchObject({ actor: `oidc:${idp.issuer}#mallory`, data: { reason: 'no_scope', groups: ['marketing', 'everyone'] } });
  });

  it("refuses the provider's own refusal: error=access_denied when the person cancels at its login page", async () => {
    await context.clearCookies({ name: /^_session/ }); // nobody signed in at the provider
    const callback = await heldCallback(async () => {
      await startSignIn();
      await page.click('a:has-text("[ Cancel ]")', WAIT);
    });
    expect([callback.searchParams.get('error'), callback.searchParams.has('code')]).toEqual(['access_denied', false]);
    await page.goto(callback.href);
    expect(await refusal()).toContain('did not sign you in');
    expect(await sessionCookie()).toBeUndefined();
    expect(h.logs.some((l) => l.includes('OIDC sign-in refused') && l.includes('"reason":"provider"'))).toBe(true);
  });

  it("signing out ends rekey's session, then the provider's through its end_session_endpoint", async () => {
    await context.clearCookies({ name: /^_session/ });
    await startSignIn('alice');
    await page.waitForSelector('tr[data-secret="pay-api"]', WAIT);
    const cookie = `__Host-rekey_session=${(await sessionCookie())!.value}`;
    await page.click('#sign-out');
    await page.waitForSelector('button:has-text("Yes, sign me out")', WAIT);
    // Back from the provider's page: what comes back (from the back/forward cache, or loaded again) shows nothing of rekey's.
    await page.goBack({ waitUntil: 'commit' });
    expect(await (await page.waitForSelector('form.signin, main section', WAIT)).evaluate((e) => e.tagName)).toBe('FORM');
    await page.goForward();
    await page.waitForSelector('button:has-text("Yes, sign me out")', WAIT);
    const logout = new URL(page.url());
    expect(logout.origin).toBe(new URL(idp.issuer).origin);
    expect([logout.searchParams.get('client_id'), logout.searchParams.get('post_logout_redirect_uri')]).toEqual(['rekey-dashboard', `${base}/ui/`]);
    // rekey's session ended before the browser left: the old cookie signs nobody in.
    expect((await call(h, '/ui/session', { headers: { cookie } })).status).toBe(401);
    expect(await sessionCookie()).toBeUndefined();
    await page.click('button:has-text("Yes, sign me out")');
    await page.waitForSelector('form.signin', WAIT);
    expect(page.url()).toBe(`${base}/ui/`);
    const signedOut = await h.runtime.db.auditEvent.findMany({ where: { action: 'dashboard.signedOut', actor: `oidc:${idp.issuer}#alice` } });
    expect(signedOut.length).toBeGreaterThan(0);
    // The provider forgot alice too: signing in asks for her login again.
    await startSignIn();
    await page.waitForSelector('input[name=login]', WAIT);
  });

  it('signs in as a public client (no clientSecret: PKCE alone); its code is worthless without the verifier', async () => {
    const publicConfig = config('sre: [read, rotate]').replace('clientId: rekey-dashboard', 'clientId: rekey-public').replace(/^ {4}clientSecret: .*\n/m, '');
    expect(publicConfig).not.toContain('clientSecret');
    await h.apply(publicConfig);
    await expect.poll(async () => (await h.runtime.applied('dashboard'))?.oidc?.clientId, WAIT).toBe('rekey-public');
    try {
      await context.clearCookies({ name: /^_session/ });
      const callback = await heldCallback(() => startSignIn('alice'));
      // Without the verifier, the code is worthless to whoever took it from the way back: the provider refuses it.
      const stolen = await fetch(`${idp.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'authorization_code', code: callback.searchParams.get('code')!, redirect_uri: `${base}/ui/oidc/callback`, client_id: 'rekey-public' }) });
      expect(stolen.status).toBe(400);
      // rekey, holding the verifier, exchanges it.
      await page.goto(callback.href);
      await page.waitForSelector('tr[data-secret="pay-api"]', WAIT);
      expect(await page.textContent('header .token-name')).toBe('alice');
      await signOut();
    } finally {
      await h.apply(config('sre: [read, rotate]'));
      await expect.poll(async () => (await h.runtime.applied('dashboard'))?.oidc?.clientId, WAIT).toBe('rekey-dashboard');
    }
  });

  it('showed no value, and rekey\'s pages had no console error or CSP violation', () => {
    const ours = consoleErrors.filter((e) => e.url.startsWith(base) && !(e.url === `${base}/ui/session` && e.text.includes('status of 401')));
    expect(ours).toEqual([]);
    expect(violations).toEqual([]);
    const logs = h.logs.join('\n');
    for (const value of [...journal(JOURNAL).values(), CLIENT_SECRET]) expect(logs.includes(value)).toBe(false);
  });
});
