import { describe, expect, it } from 'vitest';
import { SecretValue } from '../../../src/core/secret-value.js';
import { issuerConformance } from '../../../test/conformance/issuer.js';
import { call, newVersion } from '../../../test/conformance/refs.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import hmacKey, { createHmacVerifier, signPayload } from '../index.js';

const open = (params: unknown = {}) =>
  hmacKey.open(hmacKey.config.parse({}), testProviderContext('hmac-key')).issuer!({
    secret: 'webhook-signing',
    params: hmacKey.bindings.issuer!.parse(params),
  });

issuerConformance('hmac-key', () => Promise.resolve({ issuer: open(), secret: 'webhook-signing', unknownState: {} }), {
  revokeIsObservable: false,
});

describe('hmac-key issuer', () => {
  it('mints prefixed base64url secrets of the configured size', async () => {
    const { value, state } = await open({ bytes: 48, prefix: 'whsec_' }).issue(newVersion('s').ref, call());
    expect(value.reveal()).toMatch(/^whsec_[A-Za-z0-9_-]{64}$/);
    expect(state).toEqual({ algorithm: 'hmac-sha256', bytes: 48 });
  });

  it('rejects a value of another shape on verify', async () => {
    const { ref } = newVersion('s');
    const error = await open()
      .verify({ ...ref, issuerState: {} }, SecretValue.of('short'), call())
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'REKEY_ERR_VERIFY_FAILED' });
  });
});

describe('createHmacVerifier', () => {
  const body = '{"event":"payment.succeeded"}';
  const current = SecretValue.of('current-secret-0123456789');
  const previous = SecretValue.of('previous-secret-0123456789');

  it('accepts the previous secret during grace and rejects it after', async () => {
    let clock = 1_700_000_000_000;
    let valid = [current, previous];
    let reads = 0;
    const verifier = createHmacVerifier({
      read: () => {
        reads += 1;
        return Promise.resolve(valid);
      },
      ttlMs: 5000,
      now: () => clock,
    });
    const t = Math.floor(clock / 1000);
    expect(await verifier.verify(body, signPayload(current, body, t))).toEqual({ ok: true });
    expect(await verifier.verify(body, signPayload(previous, body, t))).toEqual({ ok: true });
    expect(reads).toBe(1);

    // Grace ends: the store now returns only the current version.
    valid = [current];
    clock += 5000;
    const later = Math.floor(clock / 1000);
    expect(await verifier.verify(body, signPayload(previous, body, later))).toEqual({ ok: false, reason: 'mismatch' });
    expect(await verifier.verify(body, signPayload(current, body, later))).toEqual({ ok: true });
    expect(reads).toBe(2);
  });

  it('re-reads once on a miss so a just-promoted secret verifies before the TTL expires', async () => {
    let clock = 1_700_000_000_000;
    let valid = [previous];
    let reads = 0;
    const verifier = createHmacVerifier({
      read: () => Promise.resolve((reads++, valid)),
      ttlMs: 60_000,
      refreshOnMissMs: 1000,
      now: () => clock,
    });
    const t = Math.floor(clock / 1000);
    expect(await verifier.verify(body, signPayload(previous, body, t))).toEqual({ ok: true });
    valid = [current, previous];
    // Within refreshOnMissMs a miss does not hit the store (a flood of bad signatures stays cheap).
    expect(await verifier.verify(body, signPayload(current, body, t))).toMatchObject({ ok: false });
    clock += 1000;
    expect(await verifier.verify(body, signPayload(current, body, t + 1))).toEqual({ ok: true });
    expect(reads).toBe(2);
  });

  it('rejects tampered bodies, stale timestamps and malformed headers', async () => {
    const clock = 1_700_000_000_000;
    const verifier = createHmacVerifier({ read: () => Promise.resolve([current]), now: () => clock });
    const t = Math.floor(clock / 1000);
    expect(await verifier.verify(`${body} `, signPayload(current, body, t))).toMatchObject({ reason: 'mismatch' });
    expect(await verifier.verify(body, signPayload(current, body, t - 301))).toMatchObject({ reason: 'expired' });
    expect(await verifier.verify(body, undefined)).toMatchObject({ reason: 'malformed' });
    expect(await verifier.verify(body, `t=${t},v1=zz`)).toMatchObject({ reason: 'malformed' });
    // Several v1 entries: one valid is enough (a signer holding two secrets during rotation).
    const both = `${signPayload(previous, body, t)},v1=${signPayload(current, body, t).split('v1=')[1]}`;
    expect(await verifier.verify(Buffer.from(body), both)).toEqual({ ok: true });
  });

  it('does not cache a failed read', async () => {
    let fail = true;
    const verifier = createHmacVerifier({
      read: () => (fail ? Promise.reject(new Error('store down')) : Promise.resolve([current])),
    });
    const header = signPayload(current, body);
    await expect(verifier.verify(body, header)).rejects.toThrow('store down');
    fail = false;
    expect(await verifier.verify(body, header)).toEqual({ ok: true });
  });
});
