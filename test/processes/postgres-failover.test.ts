/**
 * PostgreSQL failover on real engines of this file's own (test/support/own-services.ts): a
 * primary and a streaming standby (`pg_basebackup -R`) with synchronous replication
 * (`synchronous_standby_names = '*'`: a commit returns once the standby has it, which is what
 * makes "nothing lost" hold). rekey reaches them through one front that the test repoints
 * (test/support/tcp-front.ts: a managed endpoint, CloudNativePG's -rw Service, HAProxy on
 * Patroni's check). Redis is the shared one, under a prefix of this file's own.
 *  - The primary is stopped mid-rotation (immediate shutdown), the standby promoted and the
 *    front repointed: runs resume from their rows, no version lost or doubled, exactly one
 *    current version per secret, the audit chain verifies.
 *  - The front routes for a while to a read-only server (a standby: what a demoted primary
 *    is) and then back, leaving the open sessions where they were: the connections that met
 *    a read-only refusal are dropped, and rotations go on through the new ones.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { computePlan } from '../../src/config/plan.js';
import { verifyAudit } from '../../src/db/audit-verify.js';
import { latestDocument, saveConfig, storedSecrets } from '../../src/db/config-store.js';
import { migrate } from '../../src/db/migrate.js';
import { createLogger } from '../../src/log.js';
import { type Serving, serve } from '../../src/cli/serve.js';
import { Runtime } from '../../src/runtime.js';
import { loadSettings } from '../../src/settings.js';
import { TEST_FINGERPRINT_KEY } from '../conformance/refs.js';
import { testModules } from '../support/harness.js';
import { deleteKeys } from '../support/isolation.js';
import { journal } from '../support/memory-provider.js';
import { OwnPostgres } from '../support/own-services.js';
import { until } from '../support/poll.js';
import { RotationLoad } from '../support/rotation-load.js';
import { REDIS_URL, TEST_AUDIT_KEY } from '../support/services.js';
import { TcpFront } from '../support/tcp-front.js';

const JOURNAL = `pg-failover-${randomUUID()}`;
const j = journal(JOURNAL);
const PREFIX = `{pgfail-${randomUUID().slice(0, 8)}}`;
const SECRETS = ['p0', 'p1', 'p2'];
const DETOUR = ['q0', 'q1', 'q2'];
let dir: string;
let primary: OwnPostgres;
let standby: OwnPostgres;
let spare: OwnPostgres | undefined;
let front: TcpFront;
let runtime: Runtime;
let serving: Serving;
const logs: string[] = [];

async function sql(url: string, text: string): Promise<pg.QueryResult<Record<string, unknown>>> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await client.query<Record<string, unknown>>(text);
  } finally {
    await client.end().catch(() => undefined);
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rekey-pg-failover-'));
  await chmod(dir, 0o755); // the postgres user reaches its data directories below
  for (const sub of ['primary', 'standby', 'spare']) await mkdir(join(dir, sub));
  primary = await OwnPostgres.create(join(dir, 'primary'));
  await migrate(primary.url);
  standby = await OwnPostgres.standbyOf(primary, join(dir, 'standby'));
  await sql(primary.adminUrl, "ALTER SYSTEM SET synchronous_standby_names = '*'");
  await sql(primary.adminUrl, 'SELECT pg_reload_conf()');
  await until(async () => (await sql(primary.adminUrl, 'SELECT sync_state FROM pg_stat_replication')).rows[0]?.sync_state === 'sync', 60_000, 'the standby in sync');
  front = await TcpFront.listen(primary.port);

  const settings = loadSettings({
    DATABASE_URL: `postgresql://postgres@127.0.0.1:${front.port}/rekey`,
    REDIS_URL,
    REKEY_FINGERPRINT_KEY: TEST_FINGERPRINT_KEY,
    REKEY_AUDIT_KEY: TEST_AUDIT_KEY,
    REKEY_QUEUE_PREFIX: PREFIX,
    REKEY_DRAIN_TIMEOUT: '2s',
  });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  runtime = new Runtime({ actor: 'test', settings, modules: testModules, log: createLogger('info', sink), longLived: true, leaseMs: 5000 });
  serving = await serve(runtime, {
    port: 0,
    host: '127.0.0.1',
    workers: true,
    routes: [],
    worker: { concurrency: { rotations: 3, emergencies: 3, revocations: 3, retirements: 3 }, lockDurationMs: 5000, maxStalledCount: 5 },
    housekeeping: { reconcile: '1s', gauges: '15s' },
  });
  const block = (name: string) => `  ${name}:\n    store: { provider: mem }\n    issuer: { provider: mem }\n    targets: [mem]\n    grace: 1s\n    retry: { attempts: 30, backoff: 300ms }\n`;
  const loaded = await parseConfig(`providers:\n  mem: { type: memory, journal: ${JOURNAL} }\nsecrets:\n${[...SECRETS, ...DETOUR].map(block).join('')}`, 'pg-failover.yaml', testModules);
  await saveConfig(runtime.db, runtime.audit, loaded, computePlan(loaded, await storedSecrets(runtime.db), await latestDocument(runtime.db)), 'test');
  await runtime.reconcile();
}, 180_000);

afterAll(async () => {
  await Promise.race([serving?.stop(), new Promise((resolve) => setTimeout(resolve, 15_000))]);
  await front?.close();
  for (const server of [primary, standby, spare]) await server?.kill('SIGQUIT');
  await deleteKeys(`${PREFIX}*`);
  await rm(dir, { recursive: true, force: true });
});

const report = (load: RotationLoad) => `load: ${load.describe()}\nlast warnings:\n${logs.filter((l) => /"level":(40|50)/.test(l)).slice(-10).join('\n')}`;

it('the primary stops mid-rotation; the standby is promoted and the front repointed: runs resume from their rows, nothing lost or doubled, one current version each, the audit chain verifies', async () => {
  j.delayMs = 200; // each provider call: a run spends seconds in its steps, so the stop lands mid-rotation
  const load = new RotationLoad({ runtime }, SECRETS);
  try {
    await until(() => Promise.resolve(load.completedAfter(0, 1)), 90_000, 'a rotation of each secret before the failover');
    let midway: Array<{ id: string; step: string }> = [];
    await until(async () => (midway = await runtime.db.run.findMany({ where: { status: 'running', kind: 'rotation' }, select: { id: true, step: true } })).length > 0, 60_000, 'a rotation under way');
    const stoppedAt = performance.now();
    await primary.kill('SIGQUIT'); // immediate shutdown: no checkpoint, sessions cut
    standby.promote();
    front.repoint(standby.port, { cut: true });
    const repointedAt = performance.now();
    await until(() => Promise.resolve(load.completedAfter(repointedAt, 2)), 120_000, 'two rotations of each secret after the failover');
    await load.stop();
    const firstAfter = Math.min(...load.completions.filter((c) => c.at > stoppedAt).map((c) => c.at));
    console.log(`postgres failover: ${JSON.stringify({ midway: midway.map((r) => r.step), stopToRepointedMs: Math.round(repointedAt - stoppedAt), processingGapMs: Math.round(load.gapMs()), repointedToFirstRunMs: Math.round(firstAfter - repointedAt), refusedRequests: load.errors.length, rotations: load.completions.length })}`);

    expect(midway.length).toBeGreaterThan(0);
    expect(await load.problems()).toEqual([]);
    const resumed = await runtime.db.run.findMany({ where: { id: { in: midway.map((r) => r.id) } }, select: { status: true } });
    expect(resumed.map((r) => r.status)).toEqual(midway.map(() => 'succeeded'));
    const audit = await verifyAudit(runtime.db, runtime.audit);
    expect(audit.ok).toBe(true);
  } catch (error) {
    console.log(report(load));
    throw error;
  } finally {
    j.delayMs = 0;
    await load.stop();
  }
}, 300_000);

it('the front routes to a read-only server and back, leaving the open sessions there: connections refused a write are dropped and rotations go on', async () => {
  spare = await OwnPostgres.standbyOf(standby, join(dir, 'spare')); // a standby of the new primary: read-only
  const load = new RotationLoad({ runtime }, DETOUR);
  try {
    await until(() => Promise.resolve(load.completedAfter(0, 1)), 90_000, 'a rotation of each secret first');
    const before = logs.length;
    front.repoint(spare.port, { cut: true });
    await until(() => Promise.resolve(logs.slice(before).some((l) => l.includes('read-only'))), 60_000, 'a write refused by the read-only server');
    front.repoint(standby.port, { cut: false }); // the sessions to the read-only server stay open
    const backAt = performance.now();
    await until(() => Promise.resolve(load.completedAfter(backAt, 2)), 120_000, 'two rotations of each secret after the front came back');
    await load.stop();
    const firstAfter = Math.min(...load.completions.filter((c) => c.at > backAt).map((c) => c.at));
    console.log(`read-only detour: ${JSON.stringify({ processingGapMs: Math.round(load.gapMs()), backToFirstRunMs: Math.round(firstAfter - backAt), refusedRequests: load.errors.length, rotations: load.completions.length })}`);
    expect(await load.problems()).toEqual([]);
    expect((await verifyAudit(runtime.db, runtime.audit)).ok).toBe(true);
  } catch (error) {
    console.log(report(load));
    throw error;
  } finally {
    await load.stop();
  }
}, 300_000);
