import { describe, expect, it } from 'vitest';
import { hasValidChecksum } from '../../../src/core/key-format.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { issuerConformance } from '../../../test/conformance/issuer.js';
import { call, newVersion } from '../../../test/conformance/refs.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import random from '../index.js';

const open = (params: unknown = {}) =>
  random.open(random.config.parse({}), testProviderContext('random')).issuer!({
    secret: 'payments-api-key',
    params: random.bindings.issuer!.parse(params),
  });

// Nothing lives upstream: a random key dies where targets stop accepting it, so revoke is not observable here.
issuerConformance('random', () => Promise.resolve({ issuer: open({ prefix: 'rk_test_' }), secret: 'payments-api-key', unknownState: { prefix: 'rk_test_' } }), {
  revokeIsObservable: false,
});

describe('random issuer', () => {
  it('mints keys in the key format: prefix, 30 base62 characters, 6-character checksum', async () => {
    const { value, state } = await open({ prefix: 'rk_live_' }).issue(newVersion('s').ref, call());
    expect(value.reveal()).toMatch(/^rk_live_[0-9A-Za-z]{36}$/);
    expect(hasValidChecksum(value.reveal())).toBe(true);
    expect(state).toEqual({ prefix: 'rk_live_' });
  });

  it('verify refuses a value without the prefix or with a broken checksum', async () => {
    const issuer = open({ prefix: 'rk_live_' });
    const { value } = await issuer.issue(newVersion('s').ref, call());
    const ref = { ...newVersion('s').ref, issuerState: { prefix: 'rk_live_' } };
    const key = value.reveal();
    const broken = `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`;
    for (const bad of [`rk_test_${key.slice('rk_live_'.length)}`, broken]) {
      await expect(issuer.verify(ref, SecretValue.of(bad), call())).rejects.toMatchObject({ code: 'REKEY_ERR_VERIFY_FAILED' });
    }
  });
});
