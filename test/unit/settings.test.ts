import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadSettings } from '../../src/settings.js';

describe('settings', () => {
  it('defaults: no proxy trusted, the hash-tagged queue prefix, 25 s drain', () => {
    const s = loadSettings({});
    expect(s).toMatchObject({ trustProxy: false, queuePrefix: '{rekey}', drainTimeoutMs: 25_000, port: 8080, fingerprintKey: undefined });
  });

  it('REKEY_TRUST_PROXY: a hop count or addresses; never true (any client could name its own address)', () => {
    expect(() => loadSettings({ REKEY_TRUST_PROXY: 'true' })).toThrow(/REKEY_TRUST_PROXY=true would believe any client/);
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

  it('audit anchors: at least hourly; the webhook https (http only to loopback), held like a key', () => {
    expect(loadSettings({}).anchorEveryMs).toBe(3_600_000);
    expect(() => loadSettings({ REKEY_AUDIT_ANCHOR_INTERVAL: '2h' })).toThrow(/REKEY_AUDIT_ANCHOR_INTERVAL must be between 1s and 1h/);
    expect(() => loadSettings({ REKEY_AUDIT_ANCHOR_WEBHOOK: 'http://collector.example/anchors?token=sekrit' })).toThrow(/REKEY_AUDIT_ANCHOR_WEBHOOK must be an https URL/);
    const hook = 'https://collector.example/anchors?token=sekrit';
    const s = loadSettings({ REKEY_AUDIT_ANCHOR_WEBHOOK: hook, REKEY_AUDIT_KEY: 'e'.repeat(64) });
    expect(s.anchorWebhook?.reveal()).toBe(hook);
    expect(loadSettings({ REKEY_AUDIT_ANCHOR_WEBHOOK: 'http://127.0.0.1:9000/a' }).anchorWebhook).toBeDefined();
    for (const metadata of ['https://169.254.169.254/latest', 'https://[fd00:ec2::254]/', 'https://metadata.google.internal/x', 'https://[::ffff:a9fe:a9fe]/']) {
      expect(() => loadSettings({ REKEY_AUDIT_ANCHOR_WEBHOOK: metadata })).toThrow(/REKEY_AUDIT_ANCHOR_WEBHOOK must not point at a link-local or cloud metadata address/);
    }
    expect(JSON.stringify(s)).not.toContain('sekrit');
    expect(JSON.stringify(s)).not.toContain('e'.repeat(64));
  });

  it('names the variable when a value is malformed', () => {
    expect(() => loadSettings({ REKEY_DRAIN_TIMEOUT: 'soon' })).toThrow(/REKEY_DRAIN_TIMEOUT/);
    expect(() => loadSettings({ PORT: '99999' })).toThrow(/PORT/);
  });
});
