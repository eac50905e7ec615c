/**
 * A destination that takes requests and never answers (each delivery waits out its `timeout`)
 * must not hold up the notices of the other destinations: a burst for the slow one (drift
 * alerts for many secrets) leaves room for on-call's leak.blocked. Workers in process; the slow
 * destination is a server that never answers, so the order is exact.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { notice } from '../../src/core/notify.js';
import { startHarness, type Harness } from '../support/harness.js';
import { type NoticeReceiver, startNoticeReceiver } from '../support/notice-receiver.js';

const WHSEC = `whsec_${randomBytes(32).toString('base64')}`;
const ENV = `NOTIFYSLOW_TEST_WHSEC_${process.pid}`;
let h: Harness;
let r: NoticeReceiver;
let silent: Server;
let waiting = 0;

beforeAll(async () => {
  process.env[ENV] = WHSEC;
  r = await startNoticeReceiver(WHSEC);
  silent = createServer(() => void (waiting += 1)); // takes each request, never answers
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const slow = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/hooks`;
  h = await startHarness({ label: 'notifications-slow' });
  await h.apply(`
env: { allow: ["NOTIFYSLOW_TEST_*"] }
providers:
  mem: { type: memory }
notifications:
  destinations:
    chatops: { type: webhook, url: "${slow}", insecure: true, secret: "\${env:${ENV}}", events: [drift.repeated], timeout: 50s }
    oncall: { type: webhook, url: "${r.base}/hooks/oncall", insecure: true, secret: "\${env:${ENV}}", events: [leak.blocked] }
secrets: {}
`);
}, 60_000);
afterAll(async () => {
  silent?.closeAllConnections();
  silent?.close();
  await h?.stop();
  await r?.close();
  delete process.env[ENV];
});

it("a burst of notices to a destination that never answers does not hold up another destination's", async () => {
  for (let i = 0; i < 8; i++) await h.runtime.notifier.notify(notice({}, 'drift.repeated', `s${i}.edge.1`, `secret-${i}`, { target: 'edge', streak: 3 }));
  // Every delivery slot the burst can take is waiting on the slow destination.
  await expect.poll(() => waiting, { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
  await h.runtime.notifier.notify(notice({}, 'leak.blocked', 'v-leaked', 'payments-api-key', { version: 3 }));
  await expect.poll(() => r.accepted('/hooks/oncall').length, { timeout: 20_000 }).toBe(1);
  expect(r.accepted('/hooks/oncall')[0]!.id).toBe('leak.blocked.v-leaked');
});
