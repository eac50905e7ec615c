/**
 * SIGTERM while a drift check waits for a target that does not answer: the job workers must
 * start draining at once (stop taking jobs, finish theirs within REKEY_DRAIN_TIMEOUT), not after
 * the check's provider call has timed out. The chart gives a pod REKEY_DRAIN_TIMEOUT + 10 s.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';
import { testRedis } from '../support/redis.js';

const SECRET_ENV = `DRIFTSTOP_TEST_WHSEC_${process.pid}`;
const secret = `ds-${randomUUID().slice(0, 8)}`;
let h: Harness;
let silent: Server;
let asked!: () => void;
const stateAsked = new Promise<void>((resolve) => (asked = resolve));

beforeAll(async () => {
  process.env[SECRET_ENV] = `whsec_${randomBytes(32).toString('base64')}`;
  // A receiver whose state endpoint takes the request and never answers.
  silent = createServer((req) => {
    if (req.method === 'GET') asked();
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  h = await startHarness({ label: 'drift-shutdown' });
  await h.apply(`
env: { allow: ["DRIFTSTOP_TEST_*"] }
providers:
  vault: { type: local }
  hook: { type: webhook, url: "${base}/hooks", state: "${base}/state", insecure: true, secret: "\${env:${SECRET_ENV}}", timeoutMs: 60000, drift: { interval: 1s } }
secrets:
  ${secret}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_ds_ }
    targets: [hook]
    timeout: 60s
`);
}, 60_000);
afterAll(async () => {
  silent?.closeAllConnections();
  silent?.close();
  await h?.stop();
  delete process.env[SECRET_ENV];
});

it('the job workers stop taking jobs at once, while a drift check still waits for its target', async () => {
  await stateAsked; // the drift check is waiting for the receiver's state
  const connection = testRedis();
  const queue = new Queue('rotations', { connection, prefix: h.env.prefix });
  try {
    expect((await queue.getWorkers()).length).toBeGreaterThan(0);
    const stopping = h.serving!.stop();
    await expect.poll(async () => (await queue.getWorkers()).length, { timeout: 20_000 }).toBe(0);
    silent.closeAllConnections(); // the check fails now and the stop completes
    await stopping;
  } finally {
    await queue.close();
    connection.disconnect();
  }
});
