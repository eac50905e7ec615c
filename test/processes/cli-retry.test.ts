/**
 * `rekey rotate` when the connection is cut after PostgreSQL committed the run and before the
 * CLI heard so (a failover, a network fault): the CLI retries with the same idempotency key, finds
 * the run its first try made, and says so. One run, one `run.started`, exit 0. Before, the CLI
 * failed with `Connection terminated unexpectedly` while the run it made went on, and rotating
 * again (what a person does after an error) made a second. A real `rekey` process, reaching
 * PostgreSQL through a front (test/support/tcp-front.ts) that drops the COMMIT's answer.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runRekey } from '../support/processes.js';
import { ONE_LOCAL_SECRET, startHarness, type Harness } from '../support/harness.js';
import { TcpFront } from '../support/tcp-front.js';

let h: Harness;
let front: TcpFront;

beforeAll(async () => {
  h = await startHarness({ label: 'cli-retry', workers: false });
  await h.apply(ONE_LOCAL_SECRET);
  front = await TcpFront.listen(Number(new URL(h.settings.databaseUrl).port || 5432));
}, 60_000);

afterAll(async () => {
  await front?.close();
  await h?.stop();
});

it('a rotate request whose commit was not answered is retried with its key: one run, named in the answer', async () => {
  const env = h.childEnv();
  const url = new URL(env.DATABASE_URL!);
  url.port = String(front.port);
  // The run's insert goes out with BEGIN, its audit row with COMMIT: node-postgres names both
  // statements in each message (src/db/runs.ts CREATE_ROTATION, src/db/sql.ts COMMIT; src/db/sql.ts statement() prefixes them).
  const cut = front.cutAnswerTo('rekey_create_rotation', '\0rekey_commit\0');
  const result = await runRekey(['rotate', 'k', '--json'], { ...env, DATABASE_URL: url.toString() });
  expect(cut.fired).toBe(true); // the first try's COMMIT went unanswered

  expect(result.stderr).toMatch(/request failed; retrying with the same idempotency key/);
  expect(result.code, result.stderr).toBe(0);
  const answer = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { runId: string; status: string };
  expect(answer.status).toBe('queued');

  const runs = await h.runtime.db.run.findMany({ where: { secret: { name: 'k' } }, select: { id: true, idempotencyKey: true } });
  expect(runs).toHaveLength(1);
  expect(runs[0]!.id).toBe(answer.runId);
  expect(runs[0]!.idempotencyKey).toMatch(/^manual:/);
  const started = await h.runtime.db.auditEvent.count({ where: { runId: answer.runId, action: 'run.started' } });
  expect(started).toBe(1);
}, 60_000);
