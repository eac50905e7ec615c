/**
 * The admin API over loopback with N secrets, each with three versions (revoked, previous,
 * current), a delivery per version and a finished run per version (2% of the latest rolled
 * back): p50/p99 of the first page of GET /api/v1/secrets, of a status filter, and of one
 * secret's detail, each beside a bare fastify route answering a JSON body of about the same
 * size on the same server (the floor: HTTP, JSON, loopback). Requests are sequential.
 *   npm run bench -- admin-api [--secrets 10000] [--requests 200]
 */
import { parseArgs } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { adminApiRoutes } from '../src/api/routes.js';
import { createToken } from '../src/api/tokens.js';
import { buildServer } from '../src/http/server.js';
import { createLogger } from '../src/log.js';
import { Runtime } from '../src/runtime.js';
import { loadSettings } from '../src/settings.js';
import { benchEnvironment, percentile } from './support/environment.js';

export async function main(args: string[]): Promise<Record<string, number>> {
  const { values } = parseArgs({ args, options: { secrets: { type: 'string', default: '10000' }, requests: { type: 'string', default: '200' } } });
  const n = Number(values.secrets);
  const requests = Number(values.requests);
  const env = await benchEnvironment('admin_api');
  const settings = loadSettings({ DATABASE_URL: env.databaseUrl, REDIS_URL: env.redisUrl, REKEY_FINGERPRINT_KEY: 'e'.repeat(64), REKEY_AUDIT_KEY: 'f'.repeat(64), REKEY_QUEUE_PREFIX: env.prefix, LOG_LEVEL: 'warn' });
  const runtime = new Runtime({ actor: 'bench', settings, log: createLogger('warn'), longLived: true });
  let app: FastifyInstance | undefined;
  try {
    await runtime.connect();
    await seed(runtime, n);
    const { token } = await createToken(runtime.db, runtime.audit, { name: 'bench', scopes: ['read'], actor: 'bench' });
    let bareBody = '';
    const bare = (app_: FastifyInstance) => {
      app_.get('/bare', (_request, reply) => reply.header('content-type', 'application/json').send(bareBody));
    };
    app = await buildServer(runtime, [bare, adminApiRoutes], { metrics: false });
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
      const ms: number[] = [];
      for (let i = 0; i < requests; i++) {
        const started = performance.now();
        await get(path);
        ms.push(performance.now() - started);
      }
      ms.sort((a, b) => a - b);
      figures[`${name}P50Ms`] = round(percentile(ms, 50));
      figures[`${name}P99Ms`] = round(percentile(ms, 99));
      console.log(`  ${name.padEnd(8)} ${path.padEnd(42)} p50 ${figures[`${name}P50Ms`]} ms   p99 ${figures[`${name}P99Ms`]} ms`);
    }
    console.log(JSON.stringify({ bench: 'admin-api', ...figures }));
    return figures;
  } finally {
    await app?.close();
    await runtime.close();
    await env.cleanup();
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
