/**
 * Redis and PostgreSQL outages, on servers of this file's own (test/support/own-services.ts)
 * so they can be stopped and restarted without touching the machine's shared ones. A rekey
 * worker runs in process (memory providers) with a one-second reconcile.
 *  - Redis restarted empty: every queue, job and scheduler is lost; reconcile() rebuilds
 *    them from PostgreSQL, and a trigger accepted while Redis was down is not lost.
 *  - PostgreSQL restarted in the middle of a rotation: the run resumes where its row
 *    says and completes; /readyz answers 503 while it is down.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { computePlan } from '../../src/config/plan.js';
import { latestDocument, saveConfig, storedSecrets } from '../../src/db/config-store.js';
import { migrate } from '../../src/db/migrate.js';
import { createLogger } from '../../src/log.js';
import { type Serving, serve } from '../../src/cli/serve.js';
import { Runtime } from '../../src/runtime.js';
import { loadSettings, type Settings } from '../../src/settings.js';
import { TEST_FINGERPRINT_KEY } from '../conformance/refs.js';
import { TEST_AUDIT_KEY } from '../support/services.js';
import { testModules } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';
import { OwnPostgres, RedisServer } from '../support/own-services.js';
import { laterSchedule } from '../support/schedules.js';

const JOURNAL = `outage-${randomUUID()}`;
const j = journal(JOURNAL);
let dir: string;
let postgres: OwnPostgres;
let redis: RedisServer;
let settings: Settings;
let runtime: Runtime;
/**
 * No log lines, nowhere: the anchor job writes its line at info whatever the level (it must leave
 * the process under LOG_LEVEL=warn: audit-trust.test.ts), so a silent logger still needs a
 * destination other than stdout.
 */
const quiet = () => createLogger('silent', { write: () => undefined });
let serving: Serving;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rekey-outages-'));
  postgres = await OwnPostgres.create(dir);
  await migrate(postgres.url);
  redis = await RedisServer.create();
  settings = loadSettings({ DATABASE_URL: postgres.url, REDIS_URL: redis.url, REKEY_FINGERPRINT_KEY: TEST_FINGERPRINT_KEY, REKEY_AUDIT_KEY: TEST_AUDIT_KEY, REKEY_QUEUE_PREFIX: '{outages}', REKEY_DRAIN_TIMEOUT: '2s', LOG_LEVEL: 'warn' });
  runtime = new Runtime({ actor: 'test', settings, modules: testModules, log: quiet(), longLived: true, leaseMs: 2000 });
  serving = await serve(runtime, {
    port: 0,
    host: '127.0.0.1',
    workers: true,
    routes: [],
    worker: { concurrency: { rotations: 3, emergencies: 3, revocations: 3, retirements: 3 }, lockDurationMs: 2000, maxStalledCount: 5 },
    housekeeping: { reconcile: '1s', gauges: '1s' },
  });
  const loaded = await parseConfig(
    `
providers:
  mem: { type: memory, journal: ${JOURNAL} }
secrets:
  scheduled:
    store: { provider: mem }
    issuer: { provider: mem }
    targets: [mem]
    schedule: { cron: "${laterSchedule().cron}" }
  graced:
    store: { provider: mem }
    issuer: { provider: mem }
    targets: [mem]
    grace: 4s
  blocked:
    store: { provider: mem }
    issuer: { provider: mem }
    targets: [mem]
    retry: { attempts: 20, backoff: 300ms }
`,
    'outages.yaml',
    testModules,
  );
  await saveConfig(runtime.db, runtime.audit, loaded, computePlan(loaded, await storedSecrets(runtime.db), await latestDocument(runtime.db)), 'test');
  await runtime.reconcile();
}, 120_000);

afterAll(async () => {
  // Bounded: after a failed test Redis may still be down, and the servers must go anyway.
  await Promise.race([serving?.stop(), new Promise((resolve) => setTimeout(resolve, 10_000))]);
  await redis?.kill();
  await postgres?.kill('SIGINT');
  await rm(dir, { recursive: true, force: true });
});

async function rotate(secret: string) {
  const result = await runtime.engine.requestRotation({ secret, trigger: 'manual' });
  if (result.status === 'stale') throw new Error('stale');
  return result.run.id;
}

async function finished(runId: string, timeoutMs = 20_000) {
  let run = await runtime.engine.deps.repo.getRun(runId);
  const deadline = Date.now() + timeoutMs;
  while (run?.status === 'running') {
    if (Date.now() > deadline) throw new Error(`run ${runId} still running at ${run.step}: ${run.error}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    run = await runtime.engine.deps.repo.getRun(runId).catch(() => run);
  }
  return run!;
}

const state = async (secret: string, number: number) => (await runtime.engine.deps.repo.findVersionByNumber(secret, number))?.state;

it('Redis restarted empty: the scheduler, the pending retirement and a stuck run are rebuilt from PostgreSQL; a trigger made during the outage is not lost', async () => {
  expect((await finished(await rotate('graced'))).status).toBe('succeeded');
  expect((await finished(await rotate('graced'))).status).toBe('succeeded');
  expect(await state('graced', 1)).toBe('previous'); // retirement due in 4 s, a delayed job in Redis
  j.fail('deploy:mem', Infinity, true);
  const stuck = await rotate('blocked'); // retrying in Redis
  const schedulers = async () => (await runtime.queues.queues.rotations.getJobSchedulers(0, -1)).map((s) => s.key);
  expect(await schedulers()).toContain('rotate.scheduled');
  await runtime.housekeeping.runNow('gauges'); // a sample that has seen the rotations above

  await redis.kill('SIGKILL');
  // /readyz and /metrics answer while Redis is away (they used to wait for it to come back).
  const ready = await fetch(new URL('/readyz', serving.url), { signal: AbortSignal.timeout(5000) });
  expect(ready.status).toBe(503);
  expect(await ready.json()).toEqual({ postgres: true, redis: false });
  const metrics = await fetch(new URL('/metrics', serving.url), { signal: AbortSignal.timeout(5000) });
  expect(metrics.status).toBe(200);
  expect(await metrics.text()).toContain('rekey_versions{state="current"}');
  // A CLI-like, short-lived process asks for a rotation while Redis is down: the run is
  // recorded in PostgreSQL, the enqueue fails, and the caller sees an error.
  const cli = new Runtime({ actor: 'cli', settings, modules: testModules, log: quiet() });
  const during = await cli.engine.requestRotation({ secret: 'scheduled', trigger: 'manual' }).then(
    () => 'queued',
    (error: unknown) => (error as Error).message,
  );
  await cli.close();
  expect(during).not.toBe('queued');
  const orphan = await runtime.db.run.findFirstOrThrow({ where: { secret: { name: 'scheduled' }, status: 'running' } });

  await redis.start(); // nothing on disk: empty
  await expect.poll(schedulers, { timeout: 15_000 }).toContain('rotate.scheduled');
  j.reset(); // the target accepts deployments again
  expect((await finished(orphan.id)).status).toBe('succeeded');
  // The retirement job was lost with Redis; reconcile() scheduled it again for graceEndsAt.
  await expect.poll(() => state('graced', 1), { timeout: 15_000 }).toBe('revoked');
  expect((await finished(stuck)).status).toBe('succeeded');
  expect(await runtime.ready()).toEqual({ postgres: true, redis: true });
}, 90_000);

it('PostgreSQL restarted in the middle of a rotation: the run resumes from its row and completes; /readyz says so meanwhile', async () => {
  j.delayMs = 1500; // every provider call: the run spends seconds at each step
  try {
    const runId = await rotate('graced');
    await expect.poll(async () => (await runtime.engine.deps.repo.getRun(runId))?.step, { timeout: 15_000, interval: 20 }).toBe('deploy');
    const attempts = async () => (await runtime.queues.queues.rotations.getJob(`run.${runId}`))?.attemptsMade ?? 0;
    await postgres.kill('SIGINT');
    const ready = await fetch(new URL('/readyz', serving.url));
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ postgres: false, redis: true });
    const metrics = await fetch(new URL('/metrics', serving.url), { signal: AbortSignal.timeout(5000) });
    expect(metrics.status).toBe(200);
    // Read to the end: left unread (this process is also the server's), afterAll's serving.stop() ran
    // into its 10 s bound on every run, at fastify's close (a separate process leaving the answer unread
    // did not hold up a worker's SIGTERM: 91 ms).
    await metrics.arrayBuffer();
    // The attempt under way cannot renew its lease, so it stops at its next lease check once the lease
    // has run out (RunLease.check), or at its next write: keep PostgreSQL down until that attempt has
    // ended (its job waits for a retry), and a while after.
    await expect.poll(attempts, { timeout: 30_000, interval: 20 }).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await postgres.start();
    const run = await finished(runId, 40_000);
    expect(run.status).toBe('succeeded');
    expect(run.attempts).toBeGreaterThan(1); // a step failed while PostgreSQL was down and was retried
    const currents = await runtime.db.version.count({ where: { secret: { name: 'graced' }, state: 'current' } });
    expect(currents).toBe(1);
    expect((await fetch(new URL('/readyz', serving.url))).status).toBe(200);
  } finally {
    j.delayMs = 0;
  }
}, 90_000);
