/**
 * The dashboard end to end in a real browser (issue 16): Debian's Chromium driven by
 * playwright-core against `rekey server`'s /ui and /api/v1 with real workers, PostgreSQL and
 * Redis. One browser for the whole file (the machine has 2 cores). Any console error or
 * Content-Security-Policy violation fails the test; the 401s a sign-in page is expected to
 * meet are asserted where they happen. Screenshots land in test-artifacts/dashboard/.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { SESSION_IDLE_MS } from '../../src/api/sessions.js';
import { Verifications } from '../../src/api/verifications.js';
import { CONTENT_SECURITY_POLICY } from '../../src/dashboard/assets.js';
import { dashboardRoutes } from '../../src/dashboard/routes.js';
import { packageRoot } from '../../src/paths.js';
import { call, tokenFor } from '../support/api.js';
import { type Chromium, openChromium } from '../support/browser.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';

const JOURNAL = 'dashboard-browser';
const ARTIFACTS = join(packageRoot, 'test-artifacts', 'dashboard');
const WAIT = { timeout: 30_000 };

let h: Harness;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let base: string;
let ops: string;
let consoleErrors: Chromium['consoleErrors'];
let violations: string[];

/** Console errors so far that are not the expected 401 of /ui/session, after taking those out (how many there were). */
function take401s(): number {
  const expected = (e: { text: string; url: string }) => e.url === `${base}/ui/session` && e.text.includes('status of 401');
  const count = consoleErrors.filter(expected).length;
  consoleErrors.splice(0, consoleErrors.length, ...consoleErrors.filter((e) => !expected(e)));
  return count;
}

/** A screenshot of the viewport, or of its top `height` pixels (docs/dashboard-*.png are two of these). */
async function shot(name: string, height?: number): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), ...(height ? { clip: { x: 0, y: 0, width: page.viewportSize()!.width, height } } : {}) });
}

/** The `names` attributes of every element matching `selector`, in document order. */
const attributes = (selector: string, names: string[]) =>
  page.evaluate<Array<Array<string | null>>>(`[...document.querySelectorAll(${JSON.stringify(selector)})].map((e) => ${JSON.stringify(names)}.map((n) => e.getAttribute(n)))`);

/** Everything the page shows, for the search for values. */
const pageText = () => page.evaluate<string>('document.documentElement.outerHTML');

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  h = await startHarness({ label: 'dashboard-browser', routes: [adminApiRoutes, dashboardRoutes] });
  await h.apply(
    memoryConfig(JOURNAL, {
      'pay-api': 'grace: 1h',
      'pay-web': 'grace: 1h',
      'billing-db': 'grace: 1h, retry: { attempts: 1, backoff: 10ms }',
    }),
  );
  for (const name of ['pay-api', 'pay-api', 'pay-web', 'billing-db']) expect((await h.rotate(name)).status).toBe('succeeded');
  // billing-db's next rotation fails: the overview must list it before the healthy ones.
  journal(JOURNAL).fail('deploy:edge', 1, false);
  expect((await h.rotate('billing-db')).status).toBe('rolled_back');
  ops = await tokenFor(h, 'ops', ['admin']);
  base = h.serving!.url;

  ({ browser, context, page, consoleErrors, violations } = await openChromium());
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await h?.stop();
});

describe('the dashboard in Chromium', () => {
  it('serves the page with a strict CSP and under 150 KB of gzipped JavaScript', async () => {
    const response = await page.goto(`${base}/ui`);
    expect(response!.status()).toBe(200);
    expect(response!.headers()['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe|\*|data:|https?:/);
    await page.waitForSelector('form.signin', WAIT);
    expect(take401s()).toBe(1); // the page asked whether a session exists: none
    expect(await attributes('script', ['src', 'type'])).toEqual([['/ui/assets/main.js', 'module']]);
    expect(await page.evaluate("[...document.querySelectorAll('script, style, [style]')].filter((e) => e.textContent.trim() || e.hasAttribute('style')).length")).toBe(0);
    const modules = ['main', 'api', 'dom', 'views/overview', 'views/secret', 'views/timeline', 'views/leaks', 'views/audit', 'views/config', 'views/signin'];
    let gzipped = 0;
    for (const name of modules) {
      const asset = await fetch(`${base}/ui/assets/${name}.js`);
      expect(asset.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
      gzipped += gzipSync(Buffer.from(await asset.arrayBuffer())).length;
    }
    console.log(`dashboard JavaScript: ${modules.length} modules, ${gzipped} bytes gzipped`);
    expect(gzipped).toBeLessThan(150 * 1024);
    expect((await fetch(`${base}/ui/assets/../../package.json`)).status).toBe(404);
    await shot('sign-in');
  });

  it('refuses a wrong token and sets no cookie', async () => {
    await page.fill('#token', 'rkadm_' + 'A'.repeat(36));
    await page.click('form.signin button[type=submit]');
    await page.waitForSelector('form.signin [role=alert]', WAIT);
    expect(await page.textContent('form.signin [role=alert]')).toContain('unknown, revoked or expired');
    expect(await page.inputValue('#token')).toBe('');
    expect(await context.cookies()).toEqual([]);
    expect(take401s()).toBe(1);
  });

  it('signs in with a token and shows every secret, the failing one first', async () => {
    await page.fill('#token', ops);
    await page.click('form.signin button[type=submit]');
    await page.waitForSelector('tr[data-secret="pay-web"]', WAIT);
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: '__Host-rekey_session', httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
    expect(await page.evaluate('document.cookie')).toBe(''); // HttpOnly: out of the page's reach
    expect(await attributes('tr[data-secret]', ['data-secret', 'data-status'])).toEqual([
      ['billing-db', 'failing'],
      ['pay-api', 'healthy'],
      ['pay-web', 'healthy'],
    ]);
    expect(await page.textContent('tr[data-secret="billing-db"]')).toContain('rolled_back');
    expect(await page.textContent('header .token-name')).toBe('ops');
    await shot('overview', 300);
  });

  it('rotates a secret from its page and the timeline follows the run without a reload', async () => {
    await page.click('a[href="#/secrets/pay-api"]');
    await page.waitForSelector('.tl-row[data-version="2"][data-state="current"]', WAIT);
    expect(await attributes('.tl-row', ['data-version', 'data-state'])).toEqual([
      ['2', 'current'],
      ['1', 'previous'],
    ]);
    await page.evaluate('window.marker = 1');
    journal(JOURNAL).delayMs = 300; // a run slow enough to be watched step by step
    await page.click('#rotate-now');
    await page.waitForSelector('.notice-ok:has-text("Rotation queued")', WAIT);
    // The running run is expanded with its steps, then v3 becomes current with v2 in its overlap window.
    await page.waitForSelector('.run-detail .steps', WAIT);
    await page.waitForSelector('.tl-row[data-version="3"][data-state="current"]', WAIT);
    journal(JOURNAL).delayMs = 0;
    await page.waitForSelector('.tl-row[data-version="2"][data-state="previous"] .seg-overlap', WAIT);
    await page.waitForSelector('tr.run-row:has-text("succeeded")', WAIT);
    expect(await page.evaluate('window.marker')).toBe(1); // no reload happened
    const run = await h.runtime.db.run.findFirstOrThrow({ where: { secret: { name: 'pay-api' }, kind: 'rotation' }, orderBy: { startedAt: 'desc' } });
    expect(run.status).toBe('succeeded');
    expect((await h.runtime.db.auditEvent.findFirstOrThrow({ where: { runId: run.id, action: 'run.started' } })).actor).toBe('token:ops');
    await page.waitForSelector('.card:has(h2:text("Audit events")) tr:has-text("api.rotateSecret")', WAIT);
    await shot('secret', 620);
  });

  it("checks drift, repairs a key a target lost and shows a store serving a version it does not know", async () => {
    const j = journal(JOURNAL);
    const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'pay-api' }, state: 'current' } });
    j.accepted.get('edge')!.delete(current.fingerprint!);
    // The store's current stage moved by hand onto a version written outside rekey: reported, left as it is.
    const held = j.stored.get(current.storeVersionId!)!;
    const foreign = randomUUID();
    held.stages = [];
    j.stored.set(foreign, { secret: 'pay-api', versionId: randomUUID(), value: held.value, stages: ['current'] });
    await page.click('#check-drift');
    await page.waitForSelector(`.notice-ok:has-text("edge: deployed v${current.number} again")`, WAIT);
    await page.waitForSelector(`.notice-ok:has-text("store mem: current stage on a version rekey does not know (${foreign}), rekey current is v${current.number}")`, WAIT);
    expect(j.accepted.get('edge')!.has(current.fingerprint!)).toBe(true);
    j.stored.delete(foreign);
    held.stages = ['current'];
    await page.click('#check-drift');
    await page.waitForSelector('.notice-ok:has-text("Every target holds exactly the keys it should, and the store serves the current version.")', WAIT);
  });

  it('revokes a version only after its name is typed', async () => {
    await page.click('button[data-revoke="2"]');
    const confirm = page.locator('dialog.confirm button[type=submit]');
    expect(await confirm.isDisabled()).toBe(true);
    await page.fill('#typed-confirm', 'pay-api v3');
    expect(await confirm.isDisabled()).toBe(true);
    await page.fill('#typed-confirm', 'pay-api v2');
    expect(await confirm.isDisabled()).toBe(false);
    await shot('revoke-confirm');
    await confirm.click();
    await page.waitForSelector('.notice-ok:has-text("v2:")', WAIT);
    await page.waitForSelector('.tl-row[data-version="2"][data-state="revoked"]', WAIT);
    const events = await h.runtime.db.auditEvent.findMany({ where: { action: 'api.revokeVersion' } });
    expect(events.map((e) => [e.actor, e.secret])).toEqual([['token:ops', 'pay-api']]);
  });

  it('shows a leak report as it arrives', async () => {
    await page.click('header a[href="#/leaks"]');
    await page.waitForSelector('tr[data-leak]', WAIT); // the revoke above went through the leak path
    const before = await page.locator('tr[data-leak]').count();
    const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'pay-web' }, state: 'current' } });
    await h.runtime.engine.reportLeak({ source: 'github', deliveryId: 'gh-delivery-1', fingerprint: current.fingerprint!, receivedAt: new Date() });
    await page.waitForSelector(`tr[data-leak]:has-text("github"):has-text("pay-web v${current.number}")`, WAIT);
    expect(await page.locator('tr[data-leak]').count()).toBe(before + 1);
    await page.waitForSelector('tr[data-leak]:has-text("github") td[data-label="Report → blocked"]:not(:text("—"))', WAIT);
    await shot('leaks');
  });

  it('filters the audit log and verifies it in the background, showing the latest verification on return', async () => {
    await page.click('header a[href="#/audit"]');
    await page.waitForSelector('tr[data-seq]', WAIT);
    await page.fill('input[name=secret]', 'pay-api');
    await page.fill('input[name=actor]', 'token:ops');
    await page.click('form.filters button[type=submit]');
    // (waitForFunction would evaluate a string in the page, which the CSP refuses: no 'unsafe-eval'.)
    const filtered = "(() => { const rows = [...document.querySelectorAll('tr[data-seq]')]; return rows.length > 0 && rows.every((r) => r.textContent.includes('token:ops') && r.textContent.includes('pay-api')); })()";
    await expect.poll(() => page.evaluate<boolean>(filtered), WAIT).toBe(true);
    await page.click('#verify-audit');
    await page.waitForSelector('.verify .notice-ok:has-text("Verified")', WAIT);
    const anchor = (await page.textContent('.verify .anchor'))!;
    expect(anchor).toMatch(/^\d+:[0-9a-f]{64}:[0-9a-f]{64}$/);
    // Only what came after that anchor: the API's `since`.
    await page.fill('input[name=anchor]', anchor);
    await page.check('#verify-since');
    await page.click('#verify-audit');
    await page.waitForSelector(`.verify .notice-ok:has-text("after the anchor (event ${anchor.split(':')[0]})")`, WAIT);
    await shot('audit');
    // The walk ran on the server (POST /audit/verifications): the page opened again shows the latest, and who started it.
    await page.click('header a[href="#/"]');
    await page.click('header a[href="#/audit"]');
    await page.waitForSelector(`.verify .notice-ok:has-text("after the anchor (event ${anchor.split(':')[0]})")`, WAIT);
    await page.waitForSelector('.verify .muted:has-text("Started by")', WAIT);
    // One whose server shut down after its first batch: this server (the admin API's, looking every
    // few seconds) takes it up where it stopped, and the page follows it to its end and says so.
    const other: Verifications = new Verifications(h.runtime, { batch: 1, onProgress: () => void other.close() });
    await other.start({}, 'token:other');
    await page.click('header a[href="#/"]');
    await page.click('header a[href="#/audit"]');
    await page.waitForSelector('.verify .muted:has-text("Started by token:other")', WAIT);
    await page.waitForSelector('.verify .muted:has-text("Taken up again by another server after event 1 (1 of 3 times)")', WAIT);
    await page.waitForSelector('.verify .notice-ok:has-text("Verified")', WAIT);
  });

  it('shows what a config revision changed, and decommissions the secret it removed after its name is typed', async () => {
    await h.apply(memoryConfig(JOURNAL, { 'pay-api': 'grace: 1h', 'pay-web': 'grace: 1h' }));
    await page.click('header a[href="#/config"]');
    await page.waitForSelector('[data-diff] li:has-text("- secrets.billing-db")', WAIT);
    await shot('config');
    await page.evaluate(`location.hash = '#/secrets/billing-db'`);
    await page.click('#decommission');
    const confirm = page.locator('dialog.confirm button[type=submit]');
    await page.fill('#typed-confirm', 'billing');
    expect(await confirm.isDisabled()).toBe(true);
    await page.fill('#typed-confirm', 'billing-db');
    await confirm.click();
    await page.waitForSelector('.notice-ok:has-text("Decommissioning: v1")', WAIT);
    await page.waitForSelector('.tl-row[data-version="1"][data-state="revoked"]', WAIT);
    expect((await h.runtime.db.auditEvent.findMany({ where: { action: 'api.decommissionSecret' } })).map((e) => e.actor)).toEqual(['token:ops']);
  });

  it('fits a phone screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [hash, ready] of [['#/', 'tr[data-secret]'], ['#/secrets/pay-api', '.tl-row'], ['#/leaks', 'tr[data-leak]']] as const) {
      await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
      await page.waitForSelector(ready, WAIT);
      const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
      expect(overflow, hash).toBeLessThanOrEqual(0);
      if (hash === '#/secrets/pay-api') await shot('secret-phone');
      if (hash === '#/') await shot('overview-phone');
    }
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  it('shows hostile text from PostgreSQL as text: no element, attribute or script comes of it', async () => {
    // Secret and token names cannot hold markup (the config schema, createToken); what can is what
    // providers, people and reporters write: errors, audit actors and data, leak sources.
    const hostile = (n: number) => `"><img src=x onerror="window.xss=${n}"><svg onload="window.xss=${n}">'`;
    const pay = await h.runtime.db.secret.findFirstOrThrow({ where: { name: 'pay-api' } });
    const run = await h.runtime.db.run.findFirstOrThrow({ where: { secretId: pay.id }, orderBy: { startedAt: 'desc' } });
    await h.runtime.db.run.update({ where: { id: run.id }, data: { error: hostile(1) } });
    await h.runtime.db.delivery.updateMany({ where: { version: { secretId: pay.id } }, data: { lastError: hostile(2) } });
    await h.runtime.db.targetSync.updateMany({ where: { secretId: pay.id }, data: { lastError: hostile(3) } });
    await h.runtime.db.leakReport.updateMany({ data: { source: hostile(4) } });
    await h.runtime.db.$transaction((tx) => h.runtime.audit.append(tx, { actor: hostile(5), action: 'test.hostile', secret: 'pay-api', data: { note: hostile(6) } }));
    for (const [hash, shown] of [['#/', 1], ['#/secrets/pay-api', 3], ['#/leaks', 4], ['#/audit', 5]] as const) {
      await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
      await expect.poll(() => page.evaluate<boolean>(`document.querySelector('main').textContent.includes(${JSON.stringify(hostile(shown))})`), WAIT).toBe(true);
      expect(await page.evaluate<number>("document.querySelectorAll('img, [onerror], [onload]').length"), hash).toBe(0);
      expect(await page.evaluate<unknown>('window.xss'), hash).toBeUndefined();
    }
    // In an attribute (a delivery badge's title), the quote stays inside the value.
    await page.evaluate("location.hash = '#/secrets/pay-api'");
    await page.waitForSelector('td span[title]', WAIT);
    expect(new Set((await attributes('td span[title]', ['title'])).flat())).toEqual(new Set([hostile(2)]));
    expect(await page.evaluate<unknown>('window.xss')).toBeUndefined();
  });

  it("refuses another origin's form posting an action with the session's cookie: cross-site (no cookie) and same-site (no CSRF token)", async () => {
    const rotations = () => h.runtime.db.run.count({ where: { secret: { name: 'pay-web' }, kind: 'rotation' } });
    const before = await rotations();
    // A page that posts a rotation as soon as it loads: a form needs no CORS, and text/plain is a "simple" request.
    const attack = `<!doctype html><form method="post" enctype="text/plain" action="${base}/api/v1/secrets/pay-web/rotate"><input name="a" value="b"></form><script>document.forms[0].submit()</script>`;
    const attacker = await context.newPage();
    // Cross-site: another host entirely, answered by the browser's request routing, never the network.
    await context.route('http://attacker.test/**', (route) => route.fulfill({ contentType: 'text/html', body: attack }));
    // Same-site but cross-origin: 127.0.0.1 on another port, which SameSite does not tell apart from rekey.
    const sameSite = createServer((_request, response) => response.writeHead(200, { 'content-type': 'text/html' }).end(attack));
    await new Promise<void>((resolve) => sameSite.listen(0, '127.0.0.1', resolve));
    try {
      for (const [from, code] of [
        ['http://attacker.test/', 'REKEY_API_UNAUTHENTICATED'],
        [`http://127.0.0.1:${(sameSite.address() as { port: number }).port}/`, 'REKEY_API_CSRF'],
      ] as const) {
        const posted = attacker.waitForResponse((r) => r.url() === `${base}/api/v1/secrets/pay-web/rotate`, WAIT);
        await attacker.goto(from);
        const answer = await posted;
        expect([answer.request().method(), answer.status(), ((await answer.json()) as { code: string }).code], from).toEqual(['POST', code === 'REKEY_API_CSRF' ? 403 : 401, code]);
      }
    } finally {
      await attacker.close();
      await context.unroute('http://attacker.test/**');
      sameSite.closeAllConnections();
      await new Promise((resolve) => sameSite.close(resolve));
    }
    expect(await rotations()).toBe(before);
  });

  it("times out an open tab: the page's polling leaves the idle time running, its person's input starts it again, and a page that polls nothing clears itself", async () => {
    // A tab of its own, with a session of its own, whose clock the test moves: polls and the input's once-a-minute report happen when it says.
    const [cookie] = await context.cookies(base);
    const own = (await call(h, '/ui/session', { method: 'POST', token: ops })).headers.get('set-cookie')!.split(';')[0]!.split('=')[1]!;
    const key = `${h.env.prefix}:dashboard-session:${createHash('sha256').update(own).digest('hex')}`;
    const tab = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    try {
      await tab.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort('blockedbyclient'));
      await tab.addCookies([{ ...cookie!, value: own }]);
      await tab.clock.install();
      const page = await tab.newPage();
      const opened = page.waitForRequest((r) => r.url() === `${base}/ui/session`, WAIT);
      await page.goto(`${base}/ui/`);
      await page.waitForSelector('tr[data-secret="pay-web"]', WAIT);
      expect((await opened).headers()['x-rekey-activity']).toBe('1'); // opening the page is its person's doing
      const left = () => h.runtime.redis.pttl(key);
      await h.runtime.redis.pexpire(key, 600_000); // ten minutes of idle time left
      // The overview polls every 5 s: a poll reads the session and leaves its idle time as it was.
      const polled = page.waitForRequest((r) => r.url().startsWith(`${base}/api/v1/secrets`), WAIT);
      await tab.clock.runFor(6_000);
      const poll = await polled;
      expect((await poll.response())!.status()).toBe(200);
      expect(poll.headers()['x-rekey-activity']).toBeUndefined();
      expect(await left()).toBeLessThanOrEqual(600_000);
      // A key pressed a minute after the page opened: the server hears of it, and the 30 minutes start again.
      await tab.clock.fastForward(60_000);
      const reported = page.waitForRequest((r) => r.url() === `${base}/ui/session` && r.headers()['x-rekey-activity'] === '1', WAIT);
      await page.keyboard.press('Shift');
      expect((await (await reported).response())!.status()).toBe(200);
      expect(await left()).toBeGreaterThan(600_000);
      // The audit log polls nothing. Left alone, the session times out (Redis forgets it); the page asks when it would have, and clears itself.
      await page.evaluate("location.hash = '#/audit'");
      await page.waitForSelector('main section table', WAIT);
      await h.runtime.redis.del(key);
      await tab.clock.fastForward(SESSION_IDLE_MS + 2_000);
      expect(await (await page.waitForSelector('form.signin [role=alert]', WAIT)).textContent()).toContain('Your session has ended');
      expect(await page.$('main')).toBeNull();
    } finally {
      await tab.close();
    }
  });

  it('never shows a value, and signs out', async () => {
    const values = journal(JOURNAL).values();
    expect(values.length).toBeGreaterThan(0);
    for (const hash of ['#/', '#/secrets/pay-api', '#/leaks', '#/audit', '#/config']) {
      await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
      await page.waitForSelector('main section', WAIT);
      const html = await pageText();
      for (const value of values) expect(html.includes(value), hash).toBe(false);
      expect(html.includes(ops)).toBe(false);
    }
    await page.click('#sign-out');
    await page.waitForSelector('form.signin', WAIT);
    expect(await context.cookies()).toEqual([]);
  });

  it('had no console error and no CSP violation, and would have seen one', async () => {
    expect(consoleErrors).toEqual([]);
    expect(violations).toEqual([]);
    // The control: an inline style is refused, and the refusal is seen (an inline script could not even be
    // written: Trusted Types make `script.textContent = '...'` throw).
    const colour = () => page.evaluate<string>('getComputedStyle(document.body).color');
    const before = await colour();
    await page.evaluate("document.head.append(Object.assign(document.createElement('style'), {}).appendChild(document.createTextNode('body { color: rgb(255, 0, 0) }')).parentNode)");
    await expect.poll(() => violations.length, { timeout: 10_000 }).toBe(1);
    expect(violations[0]).toMatch(/^style-src/);
    expect(await colour()).toBe(before);
    await expect(page.evaluate("document.createElement('script').textContent = 'window.inlineRan = true'")).rejects.toThrow(/TrustedScript/);
  });
});
