/**
 * Which version of a signing key signs a token (token-exchange.ts signerAt): verifiers cache
 * the JWKS document for its max-age, so a key that became current less than that ago may be
 * unknown to them; the previous key signs until then, for no longer than its grace.
 */
import { describe, expect, it } from 'vitest';
import type { Handable } from '../../src/core/delivery.js';
import { signerAt } from '../../src/core/token-exchange.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { versionRecord } from '../support/versions.js';

const LEAD = 60_000;
const NOW = Date.parse('2026-12-05T12:00:00Z');
const at = (offsetMs: number) => new Date(NOW + offsetMs);

function key(number: number, state: 'current' | 'previous', promotedAgoMs: number | null, graceLeftMs?: number): Handable {
  return {
    version: versionRecord(number, state, at(-3_600_000), {
      promotedAt: promotedAgoMs === null ? null : at(-promotedAgoMs),
      ...(graceLeftMs !== undefined ? { graceEndsAt: at(graceLeftMs) } : {}),
    }),
    value: SecretValue.of(`key ${number}`),
  };
}

const signer = (...keys: Handable[]) => signerAt(keys, NOW, LEAD)?.version.number;

describe('signerAt', () => {
  it('signs with the current key once it has been current for the JWKS max-age', () => {
    expect(signer(key(3, 'current', LEAD), key(2, 'previous', 2 * LEAD, 3_600_000))).toBe(3);
  });

  it('signs with the previous key while the current one is younger than the max-age', () => {
    expect(signer(key(3, 'current', LEAD - 1), key(2, 'previous', 2 * LEAD, 3_600_000))).toBe(2);
  });

  it('after two rotations within the max-age, signs with the newest key that is old enough', () => {
    expect(signer(key(4, 'current', 1000), key(3, 'previous', 2000, 3_600_000), key(2, 'previous', 2 * LEAD, 3_600_000))).toBe(2);
  });

  it('signs with the current key when no previous one is old enough or its grace has (almost) ended', () => {
    expect(signer(key(3, 'current', 1000))).toBe(3);
    expect(signer(key(3, 'current', 1000), key(2, 'previous', 2000, 3_600_000))).toBe(3);
    expect(signer(key(3, 'current', 1000), key(2, 'previous', 2 * LEAD, 500))).toBe(3);
  });

  it('treats a current key with no promotion time (adopted before rekey) as published', () => {
    expect(signer(key(1, 'current', null))).toBe(1);
  });

  it('signs with nothing when the first key is not current (a leaked current one is never offered)', () => {
    expect(signer(key(2, 'previous', 2 * LEAD, 3_600_000))).toBeUndefined();
    expect(signerAt([], NOW, LEAD)).toBeUndefined();
  });
});
