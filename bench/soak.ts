/**
 * The chaos soak: DESIGN.md's seven invariants checked continuously while faults are
 * injected at random, in one run, against real processes.
 *
 * Self-contained: its own PostgreSQL cluster, its own Redis Sentinel set (a primary, a replica
 * and three sentinels, nothing on disk; rekey reaches it through `redis+sentinel://`) and a
 * real HAProxy, all on free loopback ports under a temp directory; the machine's shared
 * servers are never touched. Three `rekey worker`s and one `rekey server` (real registry)
 * rotate 200 secrets (local store, random issuer, HAProxy target through a TCP proxy in
 * front of its Runtime API) on one-second schedules with a 2 s grace. Leak reports arrive
 * at random at the server's Standard Webhooks receiver. Faults, one at a time: SIGKILL of a
 * worker or of the server (restarted), a worker frozen (SIGSTOP) past its lease and lock while
 * the other two take its runs over, then woken (SIGCONT) mid-step, a Redis restart (the
 * primary back empty: every queue and scheduler lost), a Redis failover (the primary killed,
 * the sentinels promote the replica), a PostgreSQL restart (fast or crash), the Runtime API
 * refusing connections, and the Runtime API answering past the provider timeout.
 *
 * At the end: schedules are removed, the system settles, the history is checked
 * (bench/soak/final.ts), a table is printed, then one line of JSON. Exits 1 on any violation.
 *
 *   npm run bench -- soak [--short] [--minutes 10] [--secrets 200] [--verbose] [--keep]
 */
import { loadSettings } from '../src/settings.js';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import pino from 'pino';
import { parseConfig } from '../src/config/load.js';
import { computePlan } from '../src/config/plan.js';
import { latestDocument, saveConfig, storedSecrets } from '../src/db/config-store.js';
import { migrate } from '../src/db/migrate.js';
import { createLogger } from '../src/log.js';
import { providers } from '../src/registry.js';
import { Runtime } from '../src/runtime.js';
import { runtimeCommand } from '../providers/haproxy/runtime-api.js';
import { freePort, startBackend, startHaproxy } from '../test/support/gateways/index.js';
import { Checker } from './soak/checker.js';
import { FaultInjector } from './soak/faults.js';
import { finalChecks } from './soak/final.js';
import { Fleet } from './soak/fleet.js';
import { LeakSender } from './soak/leaks.js';
import { RuntimeApiProxy } from './soak/proxy.js';
import { printReport, summarize } from './soak/report.js';
import { OwnPostgres } from '../test/support/own-services.js';
import { RedisSentinelSet } from '../test/support/redis-ha.js';
import { FAULT_KINDS, type SoakConfig, SoakState, sleep } from './soak/state.js';


export async function main(args: string[]): Promise<unknown> {
  const { values } = parseArgs({
    args,
    options: {
      short: { type: 'boolean', default: false },
      minutes: { type: 'string' },
      secrets: { type: 'string', default: '200' },
      verbose: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
    },
  });
  const chaosMs = Number(values.minutes ?? (values.short ? 1.1 : 10)) * 60_000;
  const n = Number(values.secrets);
  const config: SoakConfig = {
    secrets: Array.from({ length: n }, (_, i) => `soak-${String(i).padStart(3, '0')}`),
    graceMs: 2000,
    timeoutMs: 2000,
    attempts: 3,
    backoffMs: 200,
    leakDeadlineMs: 10_000,
    lockDurationMs: 5000,
    reconcileMs: 5000,
  };
  const started = Date.now();
  // Ctrl-C: exit through 'exit', whose hooks SIGKILL every server and process the soak started.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const dir = await mkdtemp(join(tmpdir(), 'rekey-soak-'));
  const cleanups: Array<() => Promise<unknown>> = [];
  const phase = (text: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${text}`);
  try {
    phase(`soak: ${n} secrets on 1 s schedules, 3 workers + 1 server, ${(chaosMs / 60_000).toFixed(2)} min of faults; files in ${dir}`);
    const postgres = await OwnPostgres.create(dir);
    cleanups.push(() => postgres.kill('SIGINT'));
    await migrate(postgres.url);
    // Sentinel's detection: long enough that a restart (back within half of it) is not a failover.
    const redis = await RedisSentinelSet.create(await mkdtemp(join(dir, 'redis-')), 5000);
    cleanups.push(() => redis.stop());
    const backend = await startBackend();
    cleanups.push(() => backend.close());
    // Every secret's keys in one map, as a gateway keeps them; 4 rekey processes of 4 connections each.
    const gateway = await startHaproxy(backend.port, { statsMaxconn: 32 });
    cleanups.push(() => gateway.stop());
    const upstream = { kind: 'tcp' as const, host: '127.0.0.1', port: Number(new URL(gateway.runtimeApi.tcp).port) };
    const proxy = await RuntimeApiProxy.start(await freePort(), upstream.port);
    cleanups.push(() => proxy.stop());
    phase(`PostgreSQL :${postgres.port}, Redis Sentinel ${redis.url}, HAProxy ${gateway.url} (one map; Runtime API :${upstream.port} behind proxy :${proxy.port})`);

    const keys = { fingerprint: randomBytes(32).toString('hex'), localStore: randomBytes(32).toString('hex'), audit: randomBytes(32).toString('hex'), webhook: `whsec_${randomBytes(32).toString('base64')}` };
    process.env.REKEY_LOCAL_STORE_KEY = keys.localStore;
    const serverPort = await freePort();
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: postgres.url,
      REDIS_URL: redis.url,
      REKEY_FINGERPRINT_KEY: keys.fingerprint,
      REKEY_LOCAL_STORE_KEY: keys.localStore,
      REKEY_AUDIT_KEY: keys.audit,
      SOAK_LEAK_WEBHOOK_SECRET: keys.webhook,
      REKEY_DRAIN_TIMEOUT: '5s',
      LOG_LEVEL: 'debug',
    };
    const checkerLog = join(dir, 'checker.log');
    const runtime = new Runtime({
      actor: 'soak',
      settings: loadSettings({ DATABASE_URL: postgres.url, REDIS_URL: redis.url, REKEY_FINGERPRINT_KEY: keys.fingerprint, REKEY_LOCAL_STORE_KEY: keys.localStore, REKEY_AUDIT_KEY: keys.audit, REKEY_DRAIN_TIMEOUT: '5s', LOG_LEVEL: 'debug' }),
      modules: providers,
      log: createLogger('debug', pino.destination({ dest: checkerLog, sync: false })),
      longLived: true,
    });
    cleanups.push(() => runtime.close());
    // Its queues are only used at the end; Redis restarts must not print connection errors.
    for (const queue of Object.values(runtime.queues.queues)) queue.on('error', () => undefined);
    const pool = new pg.Pool({ connectionString: postgres.url, max: 6 });
    pool.on('error', () => undefined);
    cleanups.push(() => pool.end());
    const s = new SoakState(config, pool, runtime, values.verbose);

    const yaml = (scheduled: boolean) => configYaml(config, { proxy: proxy.url, map: gateway.map, probe: gateway.url, header: gateway.header }, scheduled);
    await apply(runtime, yaml(true));
    const fleet = new Fleet({ dir, env, workers: 3, serverPort });
    cleanups.push(() => fleet.stop());
    await fleet.start();
    for (const p of fleet.all) {
      // A crash is a finding; restart the process as a supervisor (Kubernetes) would.
      p.onCrash = (code) => {
        s.violate('crash', `${p.name} exited with code ${code} without being killed (see ${p.logFile})`, `${p.name}:${p.starts}`);
        void p.start().catch((error: unknown) => console.log(`  restarting ${p.name} failed: ${(error as Error).message}`));
      };
    }
    phase('workers and server up; waiting for every secret to have a current version');
    await waitForProgress(pool, () => count(pool, `SELECT count(*)::int AS n FROM secrets WHERE last_promoted_at IS NOT NULL`), (promoted) => promoted >= n, 'first rotations');

    phase('chaos: faults, leaks and probes');
    const checker = new Checker(s, { url: gateway.url, header: gateway.header });
    const leaks = new LeakSender(s, checker, {
      serverUrl: () => `http://127.0.0.1:${serverPort}`,
      webhookSecret: keys.webhook,
      gateway: { url: gateway.url, header: gateway.header },
      meanIntervalMs: values.short ? 1500 : 2000,
      blockTimeoutMs: 60_000,
    });
    const faults = new FaultInjector(s, { fleet, redis, postgres, proxy }, values.short ? [2000, 5000] : [3000, 10_000]);
    checker.start();
    leaks.start();
    faults.start();
    const chaosStarted = Date.now();
    await sleep(chaosMs);
    // Every kind of fault at least once, however slowly processes restart on a busy machine.
    await waitFor(() => Promise.resolve(FAULT_KINDS.every((kind) => s.faults.some((f) => f.kind === kind && f.end))), 120_000, 'one fault of each kind').catch(
      (error: unknown) => console.log(`  ${(error as Error).message}`),
    );
    // Faults and new leaks stop; probes go on through the settling.
    await faults.stop();
    await leaks.stop();
    const chaosSeconds = (Date.now() - chaosStarted) / 1000;

    phase('settling: schedules removed, waiting for every run to finish and every old version to retire');
    await apply(runtime, yaml(false));
    await retry(() => runtime.reconcile(), 30_000);
    const settled = await waitForProgress(
      pool,
      async () =>
        (await count(pool, `SELECT count(*)::int AS n FROM runs WHERE status = 'running'`)) +
        (await count(pool, `SELECT count(*)::int AS n FROM versions WHERE state IN ('issuing', 'pending', 'previous', 'retired', 'compromised') OR (state = 'current' AND compromised_at IS NOT NULL)`)),
      (open) => open === 0,
      'settle',
    ).then(
      () => true,
      (error: unknown) => (console.log(`  ${(error as Error).message}`), false),
    );
    s.stopping = true;
    await checker.stop();

    phase('final checks: plaintext search, gateway against database, audit log, duplicates');
    const mapKeys = async () => {
      const answer = await runtimeCommand(upstream, `show map ${gateway.map}`, AbortSignal.timeout(5000), 5000);
      return answer.split('\n').filter(Boolean).map((line) => line.split(' ')[1]!);
    };
    await finalChecks(s, { fleet, databaseUrl: postgres.url, redisUrl: `redis://127.0.0.1:${(await redis.primary()).port}`, mapKeys, env: { ...env } });
    for (const leak of s.leaks) if (leak.blockedMs === undefined) s.violate('R', `leaked ${leak.secret} v${leak.version} (${leak.was}, ${leak.outcome}) was still accepted by HAProxy 60 s after the report`);

    const summary = await summarize(s, { chaosSeconds, settled, totalSeconds: 0, leaks, secrets: n });
    summary.totalSeconds = Math.round((Date.now() - started) / 1000);
    printReport(s, summary);
    console.log(JSON.stringify({ bench: 'soak', ...summary }));
    if (s.violations.length) process.exitCode = 1;
    if (values.keep) cleanups.length = 0;
    return summary;
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.log(`  cleanup: ${(error as Error).message}`));
    if (!values.keep) await rm(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

function configYaml(c: SoakConfig, g: { proxy: string; map: string; probe: string; header: string }, scheduled: boolean): string {
  const lines = [
    'providers:',
    '  vault: { type: local }',
    `  edge: { type: haproxy, runtimeApi: "${g.proxy}", map: ${g.map}, timeoutMs: ${c.timeoutMs}, probe: { url: "${g.probe}", header: ${g.header}, timeoutMs: ${c.timeoutMs} } }`,
    'leaks:',
    '  webhook: { secret: "${env:SOAK_LEAK_WEBHOOK_SECRET}" }',
    '  rateLimit: { max: 100000, window: 1m }',
    'env: { allow: [SOAK_LEAK_WEBHOOK_SECRET] }',
    'secrets:',
  ];
  c.secrets.forEach((name, i) => {
    lines.push(
      `  ${name}: { store: { provider: vault }, issuer: { type: random, prefix: rk_soak_ }, targets: [edge], ` +
        `${scheduled ? 'schedule: { cron: "* * * * * *" }, ' : ''}grace: ${c.graceMs}ms, onLeak: ${i % 2 ? 'block-first' : 'rotate-then-revoke'}, ` +
        `leakDeadline: ${c.leakDeadlineMs}ms, timeout: ${c.timeoutMs}ms, retry: { attempts: ${c.attempts}, backoff: ${c.backoffMs}ms } }`,
    );
  });
  return lines.join('\n');
}

async function apply(runtime: Runtime, yaml: string): Promise<void> {
  const loaded = await parseConfig(yaml, 'soak.yaml', runtime.modules);
  await retry(async () => {
    const plan = computePlan(loaded, await storedSecrets(runtime.db), await latestDocument(runtime.db));
    await saveConfig(runtime.db, runtime.audit, loaded, plan, 'soak');
  }, 30_000);
}

async function count(pool: pg.Pool, sql: string): Promise<number> {
  return (await pool.query<{ n: number }>(sql)).rows[0]!.n;
}

async function waitFor(done: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await done().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not done after ${timeoutMs / 1000} s`);
    await sleep(250);
  }
}

/**
 * Waits until `done(measure())`, for as long as the system keeps working: a bound derived from
 * the machine's own pace, not a fixed time. Work is the measured number moving, or any run
 * making an attempt (a loaded machine's last few rotations can take minutes of timeouts,
 * retries and rollbacks before they succeed, while the number stands still). Fails when
 * neither has moved for ten times the mean time per change so far (at least 30 s): stuck,
 * not slow.
 */
async function waitForProgress(pool: pg.Pool, measure: () => Promise<number>, done: (n: number) => boolean, what: string): Promise<void> {
  const started = Date.now();
  let last: number | undefined;
  let lastActivity: number | undefined;
  let changes = 0;
  let changedAt = started;
  for (;;) {
    const n = await measure().catch(() => last);
    if (n !== undefined && done(n)) return;
    const activity = await count(pool, `SELECT (coalesce(sum(attempts), 0) + count(*))::int AS n FROM runs`).catch(() => lastActivity);
    if (n !== last || activity !== lastActivity) {
      if (last !== undefined) changes += Math.abs(n! - last) + (activity === lastActivity ? 0 : 1);
      last = n;
      lastActivity = activity;
      changedAt = Date.now();
    }
    const stall = Math.max(30_000, (10 * (changedAt - started)) / Math.max(1, changes));
    if (Date.now() - changedAt > stall) throw new Error(`${what}: stuck at ${last} for ${Math.round(stall / 1000)} s, no run attempted anything meanwhile (${changes} changes in ${Math.round((changedAt - started) / 1000)} s before)`);
    await sleep(250);
  }
}

async function retry<T>(task: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await task();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(500);
    }
  }
}
