/**
 * Bugs the chaos soak (bench/soak.ts) found, each reproduced on its own, deterministically,
 * with in-memory providers whose calls fail on demand.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

let h: Harness;
const JOURNAL = `soakreg-${randomUUID()}`;
const j = journal(JOURNAL);

beforeAll(async () => {
  h = await startHarness({ label: 'soak-regressions' });
});
afterAll(() => h.stop());

it('a leak reported while a retirement keeps failing: the revocation closes the retirement run, none is left running', async () => {
  const secret = `retire-leak-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 200ms, retry: { attempts: 2, backoff: 20ms }' }));
  expect((await h.rotate(secret)).status).toBe('succeeded');
  // The retirement of v1 keeps failing (the gateway's API is down).
  j.fail('retire:edge', Infinity, true);
  expect((await h.rotate(secret)).status).toBe('succeeded');
  const v1 = await h.runtime.engine.deps.repo.findVersionByNumber(secret, 1);
  const retirement = async () => h.runtime.db.run.findUnique({ where: { idempotencyKey: `retirement:${v1!.id}` } });
  await until(async () => ((await retirement())?.attempts ?? 0) >= 2, 15_000, 'the retirement to fail twice');
  expect((await retirement())?.error).toMatch(/injected failure at retire:edge/);

  // Now the leak report; then the gateway comes back and v1 is revoked by its own run.
  await h.runtime.engine.revoke(secret, 1);
  await until(async () => (await h.runtime.engine.deps.repo.getVersion(v1!.id))?.state === 'compromised', 15_000, 'v1 compromised');
  j.reset();
  await until(async () => (await h.runtime.engine.deps.repo.getVersion(v1!.id))?.state === 'revoked', 15_000, 'v1 revoked');

  // Before the fix the retirement run stayed `running` for ever: its job was spent, and
  // reconcile() only requeues retirements of versions that are still previous.
  await until(async () => (await h.runtime.db.run.count({ where: { secret: { name: secret }, status: 'running' } })) === 0, 5000, 'no run left running');
  const closed = await h.runtime.db.run.findUniqueOrThrow({ where: { idempotencyKey: `retirement:${v1!.id}` } });
  expect(closed.status).toBe('skipped');
  const audited = await h.runtime.db.auditEvent.findMany({ where: { runId: closed.id, action: 'run.finished' } });
  expect(audited.map((e) => (e.data as { status: string }).status)).toEqual(['skipped']);
});

it('PostgreSQL ending a connection the local store has checked out does not crash the process', async () => {
  const secret = `local-${randomUUID().slice(0, 6)}`;
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  ${secret}:
    store: { provider: vault }
    issuer: { type: random }
`);
  const { store } = await h.runtime.resolver.resolve(secret);
  // The store's pool (private): check a connection out as a transaction does between two queries.
  const pool = (store as unknown as { pool: pg.Pool }).pool;
  const client = await pool.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.prependListener('uncaughtException', onUncaught);
  try {
    // What a PostgreSQL restart does to every connection: FATAL 57P01, while no query is active.
    await h.runtime.db.$queryRaw`SELECT pg_terminate_backend(${rows[0]!.pid}::int)`;
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Before the fix the client's unhandled 'error' event was thrown here and ended the worker.
    expect(uncaught).toEqual([]);
    await expect(client.query('SELECT 1')).rejects.toThrow();
  } finally {
    process.removeListener('uncaughtException', onUncaught);
    client.release(true);
  }
  // The pool recovers: the next transaction gets a fresh connection.
  expect((await store.list({ signal: AbortSignal.timeout(5000) })).length).toBe(0);
});

it('a worker that dies after a version is revoked but before its run is closed: reconcile() requeues the run and its handler closes it', async () => {
  const [a, b] = [`died-a-${randomUUID().slice(0, 6)}`, `died-b-${randomUUID().slice(0, 6)}`];
  await h.apply(memoryConfig(JOURNAL, { [a]: 'grace: 1h', [b]: 'grace: 1h' }));
  for (const secret of [a, b]) for (let i = 0; i < 2; i++) expect((await h.rotate(secret)).status).toBe('succeeded');
  const repo = h.runtime.engine.deps.repo;
  const ctx = { actor: 'test' };
  // What a worker SIGKILLed (or PostgreSQL restarted) between the version's last transition and
  // finishRun leaves behind; the job is gone too (lost with Redis, or retried and skipped).
  const retired = (await repo.findVersionByNumber(a, 1))!;
  // The harness's own worker takes no takedown job while the test arranges the rows: a reconcile
  // pass of its own may queue one for a version moved below. A retirement taken then cannot be
  // removed (fresh-ci saw it once); a revocation taken between 'compromised' and 'revoked' does
  // the work itself and finds the version revoked under it, closing the run as skipped (seen once).
  const { retirements, revocations } = h.runtime.queues.queues;
  await Promise.all([retirements.pause(), revocations.pause()]);
  const retirement = await repo.startVersionRun({ kind: 'retirement', version: retired, trigger: 'grace', audit: ctx });
  await repo.transition(retired.id, ['previous'], 'retired', ctx);
  await repo.transition(retired.id, ['retired'], 'revoked', ctx);
  await retirements.getJob(`retire.${retired.id}`).then((job) => job?.remove());
  const leaked = (await repo.findVersionByNumber(b, 1))!;
  await repo.transition(leaked.id, ['previous'], 'compromised', ctx);
  const revocation = await repo.startVersionRun({ kind: 'revocation', version: (await repo.getVersion(leaked.id))!, trigger: 'leak', audit: ctx });
  await repo.transition(leaked.id, ['compromised'], 'revoked', ctx);
  await Promise.all([retirements.resume(), revocations.resume()]);

  await h.runtime.reconcile();
  const status = (id: string) => h.runtime.db.run.findUniqueOrThrow({ where: { id } }).then((r) => r.status);
  await until(async () => (await status(retirement.id)) !== 'running' && (await status(revocation.id)) !== 'running', 15_000, 'both runs closed');
  expect([await status(retirement.id), await status(revocation.id)]).toEqual(['succeeded', 'succeeded']);
});
