// The webhook target against a local receiver that checks signatures with the standardwebhooks library.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RekeyError } from '../../../src/core/errors.js';
import type { Target } from '../../../src/core/ports.js';
import { call, held, newVersion, rejection } from '../../../test/conformance/refs.js';
import { targetConformance } from '../../../test/conformance/target.js';
import { retireAll } from '../../../test/support/gateways/index.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { webhook } from '../index.js';
import { startReceiver, type Receiver } from './receiver.js';

const SECRET_ENV = `PROVIDERTEST_WEBHOOK_SECRET_${process.pid}`;
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
    insecure: true, // the test receiver speaks plain http on loopback
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
    const parsed = webhook.config.safeParse({ url: 'http://hooks.example.com/x', secret: `\${env:${SECRET_ENV}}`, includeValue: true, insecure: true });
    expect(parsed.success).toBe(false);
  });

  it('refuses plain http unless insecure, and link-local or metadata addresses always', () => {
    const issues = (fields: Record<string, unknown>) =>
      webhook.config.safeParse({ secret: `\${env:${SECRET_ENV}}`, ...fields }).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues({ url: 'http://hooks.example.com/x' })).toEqual(['url: must be https (http only with insecure: true)']);
    expect(issues({ url: 'https://hooks.example.com/x', state: 'http://hooks.example.com/state' })).toEqual(['state: must be https (http only with insecure: true)']);
    expect(issues({ url: 'http://169.254.169.254/latest/meta-data/', insecure: true })).toEqual(['url: must not point at a link-local or cloud metadata address']);
    expect(issues({ url: 'https://[::ffff:169.254.169.254]/x' })).toEqual(['url: must not point at a link-local or cloud metadata address']);
    expect(issues({ url: 'https://[fe80::1]/x' })).toEqual(['url: must not point at a link-local or cloud metadata address']);
    expect(issues({ url: 'https://hooks.example.com/x' })).toBeUndefined();
  });

  it('makes one attempt per call: 5xx is retryable UNAVAILABLE, 429 THROTTLED, and the engine\'s next attempt carries the same webhook-id, re-signed', async () => {
    const target = openTarget('retrying');
    const v = newVersion('retrying');
    receiver.failNext(503, 1);
    const unavailable = await rejection(target.deploy(v.ref, v.value, call()));
    expect([unavailable.code, unavailable.retryable]).toEqual(['REKEY_ERR_UNAVAILABLE', true]);
    receiver.failNext(429, 1, 2);
    const throttled = await rejection(target.deploy(v.ref, v.value, call()));
    expect([throttled.code, throttled.retryable]).toEqual(['REKEY_ERR_THROTTLED', true]);
    expect(receiver.deliveries).toHaveLength(2); // no retry inside the call
    await target.deploy(v.ref, v.value, call());
    expect(receiver.deliveries.map((d) => d.id)).toEqual(Array(3).fill(`msg_${v.ref.versionId}_deployed`));
    expect(receiver.deliveries.every((d) => d.signatureValid)).toBe(true);
    expect(receiver.held.has(v.ref.versionId)).toBe(true);
    await target.retire(v.ref, call());
  });

  it('a receiver that never answers is a retryable TIMEOUT, a closed port UNAVAILABLE, another 4xx INVALID', async () => {
    const v = newVersion('down');
    const silent = createServer(() => undefined); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/x`;
      const timedOut = await rejection(openTarget('down', { url, state: undefined, timeoutMs: 200 }).deploy(v.ref, v.value, call()));
      expect([timedOut.code, timedOut.retryable]).toEqual(['REKEY_ERR_TIMEOUT', true]);
      const outOfTime = await rejection(openTarget('down', { url, state: undefined }).deploy(v.ref, v.value, call(200)));
      expect(outOfTime.code).toBe('REKEY_ERR_TIMEOUT');
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
    const closed = await rejection(openTarget('down', { url: 'http://127.0.0.1:1/x' }).deploy(v.ref, v.value, call()));
    expect([closed.code, closed.retryable]).toEqual(['REKEY_ERR_UNAVAILABLE', true]);
    receiver.failNext(422, 1);
    const invalid = await rejection(openTarget('down').deploy(v.ref, v.value, call()));
    expect([invalid.code, invalid.retryable]).toEqual(['REKEY_ERR_INVALID', false]);
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
    expect((await held(target)).filter((e) => e.versionId === v.ref.versionId)).toHaveLength(1);
    await target.retire(v.ref, call());
  });

  it('a drift repair (Call.generation) gets its own webhook-id: processed after a late deployed, its retries still deduplicated', async () => {
    const target = openTarget('late-deploy', { timeoutMs: 200 });
    const v = newVersion('late-deploy');
    const stuck = receiver.holdNext('deployed');
    expect((await rejection(target.deploy(v.ref, v.value, call()))).code).toBe('REKEY_ERR_TIMEOUT');
    await stuck.arrived;
    await target.retire(v.ref, call()); // the rollback
    stuck.release(); // the stuck deployed is processed after it
    await expect.poll(() => receiver.held.has(v.ref.versionId)).toBe(true);
    const repair = { ...call(), generation: 'r1764000000000' };
    await target.retire(v.ref, repair);
    await target.retire(v.ref, repair); // the repair job's own retry
    const ids = receiver.deliveries.map((d) => d.id);
    expect(ids.slice(-2)).toEqual(Array(2).fill(`msg_${v.ref.versionId}_retired_r1764000000000`));
    expect(receiver.held.has(v.ref.versionId)).toBe(false);
  });

  it('without a state URL, verify trusts the delivery and the target cannot be inspected', async () => {
    const target = openTarget('stateless', { state: undefined });
    const v = newVersion('stateless');
    await target.deploy(v.ref, v.value, call());
    await target.verify(v.ref, v.value, call());
    expect(target.inspect?.bind(target)).toBeUndefined();
    await target.retire(v.ref, call());
  });

  it('a state answer that is JSON but not {"deployed": [objects]} is an INVALID provider error, not a TypeError', async () => {
    const bodies = ['null', '{"deployed":[null]}', '{"deployed":["v1"]}', '[]'];
    const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(bodies.shift()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const target = openTarget('odd-state', { state: `http://127.0.0.1:${(server.address() as AddressInfo).port}/state` });
      for (let i = 0; i < 4; i++) {
        const error = await rejection(target.inspect!(call()));
        expect(error).toBeInstanceOf(RekeyError);
        expect((error as RekeyError).code).toBe('REKEY_ERR_INVALID');
      }
    } finally {
      server.close();
    }
  });

  it('refuses a signing secret that is not whsec_ + base64 of 24-64 bytes', () => {
    process.env[`${SECRET_ENV}_BAD`] = 'whsec_c2hvcnQ=';
    try {
      const config = webhook.config.parse({ url: receiver.url, insecure: true, secret: `\${env:${SECRET_ENV}_BAD}` });
      expect(() => webhook.open(config, testProviderContext('hooks'))).toThrow(RekeyError);
    } finally {
      delete process.env[`${SECRET_ENV}_BAD`];
    }
  });
});
