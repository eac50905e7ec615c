/**
 * Notifications from real `rekey worker` processes: a rotation that fails at a webhook target
 * (real local store, random issuer) is rolled back by a worker process, whose notifications
 * worker delivers rotation.failed to a receiver checking Standard Webhooks signatures; the
 * receiver fails, the worker is SIGKILLed between tries, and a fresh worker delivers the same
 * id (at least once across a crash).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';
import { type NoticeReceiver, startNoticeReceiver } from '../support/notice-receiver.js';
import { type Child, kill, spawnWorker, waitForOutput } from '../support/processes.js';

const WHSEC = `whsec_${randomBytes(32).toString('base64')}`;
let h: Harness;
let r: NoticeReceiver;
const children: Child[] = [];

async function startWorker(): Promise<Child> {
  const worker = spawnWorker({ ...h.childEnv(), NOTIFY_PROC_WHSEC: WHSEC });
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
      events: [rotation.failed]
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
