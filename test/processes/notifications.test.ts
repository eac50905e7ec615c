/**
 * Notifications from real `rekey worker` processes: a rotation that fails at a webhook target
 * (real local store, random issuer) is rolled back by a worker process, whose notifications
 * worker delivers rotation.failed to a receiver checking Standard Webhooks signatures; the
 * receiver fails, the worker is SIGKILLed between tries, and a fresh worker delivers the same
 * id (at least once across a crash). Then a leak (`rekey revoke`, a CLI process) taken down by a
 * worker whose outbox relay is idle: its notices are committed with the state changes, the
 * worker is SIGKILLed before any is queued, and a fresh worker delivers each id once.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';
import { type NoticeReceiver, startNoticeReceiver } from '../support/notice-receiver.js';
import { type Child, kill, runRekey, spawnWorker, waitForOutput } from '../support/processes.js';
import { laterSchedule } from '../support/schedules.js';

const WHSEC = `whsec_${randomBytes(32).toString('base64')}`;
let h: Harness;
let r: NoticeReceiver;
const children: Child[] = [];

async function startWorker(extra: string[] = []): Promise<Child> {
  const worker = spawnWorker({ ...h.childEnv(), NOTIFY_PROC_WHSEC: WHSEC }, extra);
  children.push(worker);
  await waitForOutput(worker, /rekey started/);
  return worker;
}

beforeAll(async () => {
  r = await startNoticeReceiver(WHSEC);
  h = await startHarness({ label: 'notify-proc', workers: false });
  process.env.NOTIFY_PROC_WHSEC = WHSEC; // for this process's apply (validation resolves nothing; the workers read it)
  await h.apply(`
env: { allow: [NOTIFY_PROC_WHSEC] }
providers:
  vault: { type: local }
  receiver: { type: webhook, url: "${r.base}/hooks/target", secret: "\${env:NOTIFY_PROC_WHSEC}", insecure: true }
secrets:
  api-key:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_notify_ }
    targets: [receiver]
    retry: { attempts: 1, backoff: 10ms }
notifications:
  destinations:
    oncall:
      type: webhook
      url: "${r.base}/hooks/oncall"
      insecure: true
      secret: "\${env:NOTIFY_PROC_WHSEC}"
      events: [rotation.failed, leak.received, leak.blocked]
      retry: { attempts: 10, backoff: 1s }
`);
}, 60_000);

afterAll(async () => {
  for (const child of children) if (child.process.exitCode === null) await kill(child);
  await h?.stop();
  await r?.close();
});

it('a worker process rolls back a failed rotation and delivers rotation.failed; a fresh worker redelivers the same id after a SIGKILL', async () => {
  let worker = await startWorker();
  r.failNext('/hooks/target', 400, 1); // the target refuses the new key: not retryable, so the run rolls back
  r.failNext('/hooks/oncall', 503, 2);
  const result = await h.runtime.engine.requestRotation({ secret: 'api-key', trigger: 'manual' });
  if (result.status === 'stale') throw new Error('stale');
  const id = `rotation.failed.${result.run.id}`;
  expect((await h.waitForRun(result.run.id, 120_000)).status).toBe('rolled_back');

  // The first try was refused; kill the worker before its retry (backoff 1 s) and start another.
  await expect.poll(() => r.deliveries.filter((d) => d.id === id).length, { timeout: 60_000 }).toBeGreaterThanOrEqual(1);
  await kill(worker);
  worker = await startWorker();
  await expect.poll(() => r.accepted('/hooks/oncall').filter((d) => d.id === id).length, { timeout: 120_000 }).toBe(1);

  const tries = r.deliveries.filter((d) => d.path === '/hooks/oncall');
  expect(tries.every((d) => d.id === id && d.signatureValid)).toBe(true);
  expect(tries.map((d) => d.status)).toEqual([503, 503, 204]);
  expect(JSON.parse(tries.at(-1)!.body)).toMatchObject({ type: 'rekey.rotation.failed', data: { id, secret: 'api-key', status: 'rolled_back', step: 'deploy', code: 'REKEY_ERR_INVALID' } });
  // The receiver answers 204 before the worker logs the delivery: wait for the line, do not race it.
  await waitForOutput(worker, /notification delivered/, 60_000);
}, 300_000);

it('notices committed with a leak and its takedown survive a SIGKILL before the relay queued them: a fresh worker delivers each id once', async () => {
  for (const child of children) if (child.process.exitCode === null) await kill(child);
  // This worker's relay first runs 12 hours from now: whatever it commits stays in the outbox while
  // it lives. ('1d' ran at midnight, and so in any run that crossed it.)
  let worker = await startWorker(['--outbox-interval', laterSchedule({ clock: 'local' }).cron]);
  const rotated = await h.runtime.engine.requestRotation({ secret: 'api-key', trigger: 'manual' });
  if (rotated.status === 'stale') throw new Error('stale');
  expect((await h.waitForRun(rotated.run.id, 120_000)).status).toBe('succeeded');
  const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'api-key' }, state: 'current' } });

  // The CLI records the report (leak.received commits with it); the worker takes the key down (leak.blocked commits with the stamp).
  const revoked = await runRekey(['revoke', 'api-key', '--version', String(current.number), '--json'], { ...h.childEnv(), NOTIFY_PROC_WHSEC: WHSEC });
  expect(revoked.code, revoked.stderr).toBe(0);
  const blocked = `leak.blocked.${current.id}`;
  const outbox = async () => (await h.runtime.db.notificationOutbox.findMany()).map((row) => row.id);
  await expect.poll(outbox, { timeout: 120_000 }).toContain(blocked);
  const ids = (await outbox()).filter((id) => id.startsWith('leak.'));
  expect(ids).toHaveLength(2);
  // Committed, not queued: nothing in Redis for them yet. Names, numbers and times only, no value.
  for (const id of ids) expect(await h.runtime.notices.queue.getJob(`${id}@oncall`)).toBeUndefined();
  const rows = JSON.stringify(await h.runtime.db.notificationOutbox.findMany());
  expect(rows).toContain(`"fingerprint":"${current.fingerprint!.slice(0, 12)}"`);
  expect(rows).not.toContain('rk_notify_');
  expect(rows).not.toContain(current.fingerprint!);
  // The backlog shows on /metrics: rows waiting, and the age of the oldest (made 90 s old here).
  const gauge = async (name: string) => {
    await h.runtime.metrics.sampleGauges();
    return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await h.runtime.metrics.registry.metrics())?.[1]);
  };
  await h.runtime.db.$executeRaw`UPDATE notification_outbox SET created_at = now() - interval '90 seconds' WHERE id = ${blocked}`;
  expect(await gauge('rekey_notification_outbox_rows')).toBe(2);
  expect(await gauge('rekey_notification_outbox_oldest_seconds')).toBeGreaterThanOrEqual(90);

  await kill(worker);
  worker = await startWorker();
  for (const id of ids) await expect.poll(() => r.accepted('/hooks/oncall').filter((d) => d.id === id).length, { timeout: 120_000 }).toBe(1);
  await expect.poll(async () => (await outbox()).length, { timeout: 60_000 }).toBe(0);
  expect([await gauge('rekey_notification_outbox_rows'), await gauge('rekey_notification_outbox_oldest_seconds')]).toEqual([0, 0]);
  const leakTries = r.deliveries.filter((d) => d.path === '/hooks/oncall' && d.id.startsWith('leak.'));
  expect(leakTries.map((d) => d.id).sort()).toEqual([...ids].sort());
  expect(leakTries.every((d) => d.signatureValid && d.status === 204)).toBe(true);
  expect(JSON.parse(leakTries.find((d) => d.id === blocked)!.body)).toMatchObject({ type: 'rekey.leak.blocked', data: { id: blocked, secret: 'api-key', version: current.number } });
  await waitForOutput(worker, /notification delivered/, 60_000);
}, 300_000);
