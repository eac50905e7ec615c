import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SecretValue } from '../../src/core/secret-value.js';

describe('SecretValue', () => {
  const value = SecretValue.of('rk_live_supersecret');

  it('never prints itself', () => {
    expect(String(value)).toBe('[redacted]');
    // eslint-disable-next-line @typescript-eslint/restrict-template-expressions -- the accident under test
    expect(`${value}`).toBe('[redacted]');
    expect(JSON.stringify({ value })).toBe('{"value":"[redacted]"}');
    expect(inspect({ nested: { value } })).not.toContain('supersecret');
    expect(value.toString()).toBe('[redacted]');
  });

  it('reveals on request and compares in constant time', () => {
    expect(value.reveal()).toBe('rk_live_supersecret');
    expect(value.equals(SecretValue.of('rk_live_supersecret'))).toBe(true);
    expect(value.equals(SecretValue.of('rk_live_other'))).toBe(false);
  });

  it('refuses an empty value', () => {
    expect(() => SecretValue.of('')).toThrow(TypeError);
  });
});
