/**
 * The admin API over loopback with N secrets, each with three versions (revoked, previous,
 * current), a delivery per version and a finished run per version (2% of the latest rolled
 * back): p50/p99 of the first page of GET /api/v1/secrets, of a status filter, and of one
 * secret's detail, each beside a bare fastify route answering a JSON body of about the same
 * size on the same server (the floor: HTTP, JSON, loopback). Requests are sequential. Each
 * request's SQL statements and Redis commands are counted too: they hold under load, rates do not.
 * Then the dashboard in headless Chromium (Debian's, as the browser test), signed in: time from
 * opening /ui to the first secrets on screen and to the overview complete (median of 5 loads),
 * and the JavaScript it ships, gzipped. `--no-browser` skips that part.
 *   npm run bench -- admin-api [--secrets 10000] [--requests 200] [--no-browser]
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { adminApiRoutes } from '../src/api/routes.js';
import { UI_DIR } from '../src/dashboard/assets.js';
import { dashboardRoutes } from '../src/dashboard/routes.js';
import { packageRoot } from '../src/paths.js';
import { createToken } from '../src/api/tokens.js';
import { buildServer } from '../src/http/server.js';
import { createLogger } from '../src/log.js';
import { Runtime } from '../src/runtime.js';
import { loadSettings } from '../src/settings.js';
import { benchEnvironment, countCommands, countStatements, percentile } from './support/environment.js';

export async function main(args: string[]): Promise<Record<string, number>> {
  const { values } = parseArgs({ args, options: { secrets: { type: 'string', default: '10000' }, requests: { type: 'string', default: '200' }, 'no-browser': { type: 'boolean', default: false } } });
  const n = Number(values.secrets);
  const requests = Number(values.requests);
  const env = await benchEnvironment('admin_api');
  // Before any connection is made: the pool's clients bind their query method when they connect.
  const [statements, commands] = [countStatements(), countCommands(env.prefix)];
  const settings = loadSettings({ DATABASE_URL: env.databaseUrl, REDIS_URL: env.redisUrl, REKEY_FINGERPRINT_KEY: 'e'.repeat(64), REKEY_AUDIT_KEY: 'f'.repeat(64), REKEY_QUEUE_PREFIX: env.prefix, LOG_LEVEL: 'warn', REKEY_DASHBOARD_COOKIE_SECURE: 'false' });
  const runtime = new Runtime({ actor: 'bench', settings, log: createLogger('warn'), longLived: true });
  let app: FastifyInstance | undefined;
  try {
    await runtime.connect();
    await seed(runtime, n);
    if (!values['no-browser']) execFileSync(process.execPath, [join(packageRoot, 'scripts', 'build-ui.mjs')], { stdio: 'inherit' });
    const { token } = await createToken(runtime.db, runtime.audit, { name: 'bench', scopes: ['read'], actor: 'bench' });
    let bareBody = '';
    const bare = (app_: FastifyInstance) => {
      app_.get('/bare', (_request, reply) => reply.header('content-type', 'application/json').send(bareBody));
    };
    app = await buildServer(runtime, [bare, adminApiRoutes, dashboardRoutes], { metrics: false });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const headers = { authorization: `Bearer ${token}` };
    const get = async (path: string) => {
      const response = await fetch(`${url}${path}`, { headers });
      const text = await response.text();
      if (!response.ok) throw new Error(`${path}: ${response.status} ${text.slice(0, 200)}`);
      return text;
    };
    const middle = `s${String(Math.ceil(n / 2)).padStart(5, '0')}`;
    const paths = { list: '/api/v1/secrets?limit=50', failing: '/api/v1/secrets?status=failing&limit=50', detail: `/api/v1/secrets/${middle}`, bare: '/bare' };
    bareBody = await get(paths.list); // the floor answers a body as large as the list page
    const figures: Record<string, number> = { secrets: n, requests, listBytes: bareBody.length };
    for (const [name, path] of Object.entries(paths)) {
      for (let i = 0; i < 10; i++) await get(path); // warm up
      // What one request costs, whatever the machine's load: SQL statements and Redis commands.
      const [sqlBefore, redisBefore] = [statements.count(), commands.count()];
      await get(path);
      figures[`${name}Statements`] = statements.count() - sqlBefore;
      figures[`${name}RedisCommands`] = commands.count() - redisBefore;
      const ms: number[] = [];
      for (let i = 0; i < requests; i++) {
        const started = performance.now();
        await get(path);
        ms.push(performance.now() - started);
      }
      ms.sort((a, b) => a - b);
      figures[`${name}P50Ms`] = round(percentile(ms, 50));
      figures[`${name}P99Ms`] = round(percentile(ms, 99));
      console.log(`  ${name.padEnd(8)} ${path.padEnd(42)} p50 ${figures[`${name}P50Ms`]} ms   p99 ${figures[`${name}P99Ms`]} ms   ${figures[`${name}Statements`]} SQL statements, ${figures[`${name}RedisCommands`]} Redis commands`);
    }
    if (!values['no-browser']) Object.assign(figures, await dashboardLoad(url, token));
    console.log(JSON.stringify({ bench: 'admin-api', ...figures }));
    return figures;
  } finally {
    statements.stop();
    commands.stop();
    await app?.close();
    await runtime.close();
    await env.cleanup();
  }
}

/** The dashboard's overview loaded in Chromium with a session: first secrets on screen, and complete. */
async function dashboardLoad(url: string, token: string): Promise<Record<string, number>> {
  const signIn = await fetch(`${url}/ui/session`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  const [name, value] = (signIn.headers.get('set-cookie') ?? '').split(';')[0]!.split('=') as [string, string];
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    await context.addCookies([{ name, value, url }]);
    const page = await context.newPage();
    const first: number[] = [];
    const complete: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      await page.goto(`${url}/ui`);
      await page.waitForSelector('tr[data-secret]', { timeout: 120_000 });
      first.push(performance.now() - started);
      // Complete: every page (and, past the cap, the attention queries) fetched; networkidle is 500 ms without a request.
      await page.waitForLoadState('networkidle', { timeout: 120_000 });
      complete.push(performance.now() - started - 500);
    }
    const gzipped = readdirSync(join(UI_DIR, 'assets'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.js'))
      .reduce((sum, f) => sum + gzipSync(readFileSync(join(UI_DIR, 'assets', f))).length, 0);
    const median = (xs: number[]) => round(xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!);
    const figures = { dashboardFirstRowsMs: median(first), dashboardCompleteMs: median(complete), dashboardJsGzipBytes: gzipped };
    console.log(`  dashboard overview: first secrets on screen ${figures.dashboardFirstRowsMs} ms, complete ${figures.dashboardCompleteMs} ms (median of 5); JavaScript ${gzipped} bytes gzipped`);
    return figures;
  } finally {
    await browser.close();
  }
}

/** N secrets with history, written in a few statements (no provider runs). */
async function seed(runtime: Runtime, n: number): Promise<void> {
  const db = runtime.db;
  await db.$executeRaw`INSERT INTO secrets (id, name, spec, spec_hash, version_counter, last_promoted_at, updated_at)
    SELECT gen_random_uuid(), 's' || lpad(i::text, 5, '0'), '{}'::jsonb, 'bench', 3, now(), now() FROM generate_series(1, ${n}::int) i`;
  await db.$executeRaw`INSERT INTO versions (id, secret_id, number, state, fingerprint, created_at, updated_at, promoted_at)
    SELECT gen_random_uuid(), s.id, k, (CASE k WHEN 3 THEN 'current' WHEN 2 THEN 'previous' ELSE 'revoked' END)::"VersionState",
           md5(s.id::text || k) || md5(k || s.id::text), now(), now(), now()
      FROM secrets s, generate_series(1, 3) k`;
  await db.$executeRaw`INSERT INTO deliveries (version_id, target, status, attempts, updated_at) SELECT v.id, 'edge', 'verified', 1, now() FROM versions v`;
  await db.$executeRaw`INSERT INTO runs (id, secret_id, kind, trigger, status, step, idempotency_key, version_id, attempts, started_at, updated_at, finished_at)
    SELECT gen_random_uuid(), v.secret_id, 'rotation', 'cron',
           (CASE WHEN v.number = 3 AND random() < 0.02 THEN 'rolled_back' ELSE 'succeeded' END)::"RunStatus",
           'done', 'bench:' || v.id, v.id, 1, now() - (4 - v.number) * interval '1 day', now(), now() - (4 - v.number) * interval '1 day'
      FROM versions v`;
  await db.$executeRaw`ANALYZE`;
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
