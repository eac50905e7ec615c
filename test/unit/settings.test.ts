import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadSettings } from '../../src/settings.js';

describe('settings', () => {
  it('defaults: no proxy trusted, the hash-tagged queue prefix, 25 s drain', () => {
    const s = loadSettings({});
    expect(s).toMatchObject({ trustProxy: false, queuePrefix: '{rekey}', drainTimeoutMs: 25_000, port: 8080, fingerprintKey: undefined });
  });

  it('REKEY_TRUST_PROXY: true, a hop count, or addresses', () => {
    expect(loadSettings({ REKEY_TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(loadSettings({ REKEY_TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadSettings({ REKEY_TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).trustProxy).toEqual(['10.0.0.0/8', '127.0.0.1']);
  });

  it('holds the fingerprint key as a SecretValue: settings print without it', () => {
    const key = 'f'.repeat(64);
    const s = loadSettings({ REKEY_FINGERPRINT_KEY: key });
    expect(s.fingerprintKey?.reveal()).toBe(key);
    expect(JSON.stringify(s)).not.toContain(key);
    expect(inspect(s)).not.toContain(key);
  });

  it('names the variable when a value is malformed', () => {
    expect(() => loadSettings({ REKEY_DRAIN_TIMEOUT: 'soon' })).toThrow(/REKEY_DRAIN_TIMEOUT/);
    expect(() => loadSettings({ PORT: '99999' })).toThrow(/PORT/);
  });
});
