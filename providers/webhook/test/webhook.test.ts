// The webhook target against a local receiver that checks signatures with the standardwebhooks library.
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RekeyError } from '../../../src/core/errors.js';
import type { Target } from '../../../src/core/ports.js';
import { call, newVersion, rejection } from '../../../test/conformance/refs.js';
import { targetConformance } from '../../../test/conformance/target.js';
import { retireAll } from '../../../test/support/gateways/index.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { webhook } from '../index.js';
import { startReceiver, type Receiver } from './receiver.js';

const SECRET_ENV = `REKEY_TEST_WEBHOOK_SECRET_${process.pid}`;
const secret = `whsec_${randomBytes(32).toString('base64')}`;
let receiver: Receiver;

beforeAll(async () => {
  process.env[SECRET_ENV] = secret;
  receiver = await startReceiver(secret);
});
afterAll(async () => {
  delete process.env[SECRET_ENV];
  await receiver?.close();
});
afterEach(() => {
  receiver.failNext(0, 0);
  receiver.deliveries.length = 0;
});

function openTarget(name: string, overrides: Record<string, unknown> = {}): Target {
  const config = webhook.config.parse({
    url: receiver.url,
    secret: `\${env:${SECRET_ENV}}`,
    state: receiver.stateUrl,
    retry: { attempts: 4, initialDelayMs: 20, maxDelayMs: 200 },
    ...overrides,
  });
  return webhook.open(config, testProviderContext('hooks')).target!({ secret: name, params: webhook.bindings.target!.parse({}) });
}

targetConformance('webhook (with a state endpoint)', () => {
  const target = openTarget('conformance-webhook');
  return Promise.resolve({ target, secret: 'conformance-webhook', cleanup: () => retireAll(target) });
}, { probes: false });

describe('webhook specifics', () => {
  it('POSTs a signed Standard Webhooks message without the value by default', async () => {
    const target = openTarget('payments-api-key');
    const v = newVersion('payments-api-key', 'payments-app');
    await target.deploy(v.ref, v.value, call());
    const [delivery] = receiver.deliveries;
    expect(delivery!.signatureValid).toBe(true);
    expect(delivery!.id).toBe(`msg_${v.ref.versionId}_deployed`);
    expect(Math.abs(delivery!.timestamp - Date.now() / 1000)).toBeLessThan(5);
    const event = JSON.parse(delivery!.body) as { type: string; timestamp: string; data: Record<string, unknown> };
    expect(event.type).toBe('rekey.version.deployed');
    expect(event.data).toEqual({
      event: 'deployed',
      secret: 'payments-api-key',
      versionId: v.ref.versionId,
      number: v.ref.number,
      consumer: 'payments-app',
      fingerprint: v.ref.fingerprint,
    });
    expect(delivery!.body).not.toContain(v.value.reveal());
    await target.retire(v.ref, call());
    expect(receiver.deliveries[1]!.id).toBe(`msg_${v.ref.versionId}_retired`);
    expect(receiver.deliveries[1]!.body).not.toContain(v.value.reveal());
  });

  it('carries the value only with includeValue: true, and refuses that over plain http off loopback', async () => {
    const target = openTarget('with-value', { includeValue: true });
    const v = newVersion('with-value');
    await target.deploy(v.ref, v.value, call());
    expect((JSON.parse(receiver.deliveries[0]!.body) as { data: { value: string } }).data.value).toBe(v.value.reveal());
    await target.retire(v.ref, call());
    expect(receiver.deliveries[1]!.body).not.toContain(v.value.reveal());
    const parsed = webhook.config.safeParse({ url: 'http://hooks.example.com/x', secret: `\${env:${SECRET_ENV}}`, includeValue: true });
    expect(parsed.success).toBe(false);
  });

  it('retries 5xx with exponential backoff and the same webhook-id, re-signed each attempt', async () => {
    const target = openTarget('retrying', { retry: { attempts: 5, initialDelayMs: 40, maxDelayMs: 1000 } });
    const v = newVersion('retrying');
    receiver.failNext(503, 3);
    await target.deploy(v.ref, v.value, call());
    const attempts = receiver.deliveries;
    expect(attempts).toHaveLength(4);
    expect(new Set(attempts.map((a) => a.id))).toEqual(new Set([`msg_${v.ref.versionId}_deployed`]));
    expect(attempts.every((a) => a.signatureValid)).toBe(true);
    const gaps = attempts.slice(1).map((a, i) => a.at - attempts[i]!.at);
    // Delays are 40, 80, 160 ms with jitter between half and all of each.
    expect(gaps[0]).toBeGreaterThanOrEqual(0.019);
    expect(gaps[2]).toBeGreaterThanOrEqual(0.079);
    expect(gaps[2]!).toBeGreaterThan(gaps[0]! * 1.2);
    expect(receiver.held.has(v.ref.versionId)).toBe(true);
    await target.retire(v.ref, call());
  });

  it('gives up with retryable UNAVAILABLE after the attempts, and stops early when the call times out', async () => {
    const v = newVersion('down');
    receiver.failNext(500, Infinity);
    const error = await rejection(openTarget('down').deploy(v.ref, v.value, call()));
    expect(error.code).toBe('REKEY_ERR_UNAVAILABLE');
    expect(error.retryable).toBe(true);
    expect(receiver.deliveries).toHaveLength(4);
    receiver.deliveries.length = 0;
    const slow = openTarget('down', { retry: { attempts: 10, initialDelayMs: 200, maxDelayMs: 5000 } });
    const started = Date.now();
    const timedOut = await rejection(slow.deploy(v.ref, v.value, call(300)));
    expect(timedOut.code).toBe('REKEY_ERR_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(1000);
    const closed = await rejection(openTarget('down', { url: 'http://127.0.0.1:1/x', retry: { attempts: 2, initialDelayMs: 5 } }).deploy(v.ref, v.value, call()));
    expect(closed.code).toBe('REKEY_ERR_UNAVAILABLE');
  });

  it('does not retry a receiver that refuses the signature', async () => {
    const other = `whsec_${randomBytes(32).toString('base64')}`;
    process.env[`${SECRET_ENV}_OTHER`] = other;
    try {
      const v = newVersion('wrong-secret');
      const error = await rejection(openTarget('wrong-secret', { secret: `\${env:${SECRET_ENV}_OTHER}` }).deploy(v.ref, v.value, call()));
      expect(error.code).toBe('REKEY_ERR_DENIED');
      expect(receiver.deliveries).toHaveLength(1);
      expect(receiver.deliveries[0]!.signatureValid).toBe(false);
    } finally {
      delete process.env[`${SECRET_ENV}_OTHER`];
    }
  });

  it('a redelivery after a lost answer is processed once by a deduplicating receiver', async () => {
    const target = openTarget('dedup');
    const v = newVersion('dedup');
    await target.deploy(v.ref, v.value, call());
    await target.deploy(v.ref, v.value, call());
    expect(receiver.deliveries.map((d) => d.id)).toEqual([`msg_${v.ref.versionId}_deployed`, `msg_${v.ref.versionId}_deployed`]);
    expect((await target.listDeployed(call())).filter((e) => e.versionId === v.ref.versionId)).toHaveLength(1);
    await target.retire(v.ref, call());
  });

  it('without a state URL, verify trusts the delivery and listDeployed reports nothing', async () => {
    const target = openTarget('stateless', { state: undefined });
    const v = newVersion('stateless');
    await target.deploy(v.ref, v.value, call());
    await target.verify(v.ref, v.value, call());
    expect(await target.listDeployed(call())).toEqual([]);
    await target.retire(v.ref, call());
  });

  it('refuses a signing secret that is not whsec_ + base64 of 24-64 bytes', () => {
    process.env[`${SECRET_ENV}_BAD`] = 'whsec_c2hvcnQ=';
    try {
      const config = webhook.config.parse({ url: receiver.url, secret: `\${env:${SECRET_ENV}_BAD}` });
      expect(() => webhook.open(config, testProviderContext('hooks'))).toThrow(RekeyError);
    } finally {
      delete process.env[`${SECRET_ENV}_BAD`];
    }
  });
});
