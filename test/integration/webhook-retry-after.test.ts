/**
 * A webhook target that answers 429 with Retry-After during a rotation's deploy: the run's
 * next attempt waits the time the receiver named, not the secret's (shorter) backoff, so a
 * throttled receiver does not use up the run's attempts and roll it back.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Receiver } from '../../providers/webhook/test/receiver.js';
import { startHarness, type Harness } from '../support/harness.js';
import { startSignedReceiver, type SignedReceiver } from '../support/signed-receiver.js';

const secret = `wra-${randomUUID().slice(0, 8)}`;
let h: Harness;
let signed: SignedReceiver;
let receiver: Receiver;

beforeAll(async () => {
  signed = await startSignedReceiver('RETRYAFTER');
  ({ receiver } = signed);
  h = await startHarness({ label: 'webhook-retry-after' });
  await h.apply(`
${signed.envAllow}
providers:
  vault: { type: local }
  hook: { type: webhook, url: "${receiver.url}", insecure: true, secret: "${signed.secretRef}", timeoutMs: 1000, drift: { interval: 1h } }
secrets:
  ${secret}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_wra_ }
    targets: [hook]
    retry: { attempts: 5, backoff: 100ms }
`);
}, 60_000);
afterAll(async () => {
  await h?.stop();
  await signed?.close();
});

it('a deploy answered 429 with Retry-After: 2 is tried again 2 s later, not at the secret\'s 100 ms backoff', async () => {
  receiver.failNext(429, 1, 2);
  const run = await h.rotate(secret);
  expect(run.status).toBe('succeeded');
  const deploys = receiver.deliveries.filter((d) => (JSON.parse(d.body) as { type: string }).type === 'rekey.version.deployed');
  expect(deploys).toHaveLength(2);
  const waited = deploys[1]!.at - deploys[0]!.at;
  expect({ waited: waited >= 1.9 ? 'as asked' : `${waited.toFixed(2)} s` }).toEqual({ waited: 'as asked' });
});
