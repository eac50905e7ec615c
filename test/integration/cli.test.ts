/** The `rekey` command line: offline commands, exit codes, and operating a running rekey. */
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey, hasValidChecksum } from '../../src/core/key-format.js';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';
import { laterSchedule } from '../support/schedules.js';

describe('offline commands', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rekey-cli-'));

  it('keygen prints one key in the documented format', async () => {
    const result = await rekey(['keygen', '--prefix', 'rk_live_']);
    expect(result.code).toBe(0);
    const key = result.stdout.trim();
    expect(key).toMatch(/^rk_live_[0-9A-Za-z]{36}$/);
    expect(hasValidChecksum(key)).toBe(true);
  });

  it('scan reports checksum-valid keys with file and line, exits 1; nothing found exits 0', async () => {
    const real = generateKey('rk_live_');
    const forged = `${real.slice(0, -1)}${real.endsWith('0') ? '1' : '0'}`;
    const leaky = join(dir, 'leaky.env');
    writeFileSync(leaky, `# config\nAPI_KEY=${real}\nOTHER=${forged}\n`);
    const clean = join(dir, 'clean.env');
    writeFileSync(clean, `API_KEY=${forged}\n`);
    const found = await rekey(['scan', leaky, clean]);
    expect(found.code).toBe(1);
    expect(found.stdout).toBe(`${leaky}:2: rk_live_... sha256:${createHash('sha256').update(real).digest('hex').slice(0, 12)}\n`);
    expect(found.stdout).not.toContain(real.slice(8));
    expect((await rekey(['scan', clean])).code).toBe(0);
  });

  it('config schema prints a JSON Schema that knows every provider type', async () => {
    const result = await rekey(['config', 'schema']);
    const schema = JSON.parse(result.stdout) as { properties: { providers: { additionalProperties: { anyOf: Array<{ properties: { type: { const: string } } }> } } } };
    const types = schema.properties.providers.additionalProperties.anyOf.map((p) => p.properties.type.const);
    expect(types).toEqual(expect.arrayContaining(['local', 'redis-keyset', 'random', 'haproxy', 'aws-secrets-manager']));
  });

  it('exit codes: help 0, unknown command 2, bad option 2', async () => {
    expect((await rekey(['--help'])).code).toBe(0);
    expect((await rekey(['frobnicate'])).code).toBe(2);
    expect((await rekey(['revoke', 'x', '--version', 'two'])).code).toBe(2);
    expect((await rekey(['worker', '--port', 'eighty'])).code).toBe(2);
  });
});

describe('operating rekey', () => {
  let h: Harness;
  let env: NodeJS.ProcessEnv;
  // A schedule that shows in status but never fires while these tests count versions.
  const daily = laterSchedule({ every: 'day' });
  beforeAll(async () => {
    h = await startHarness({ label: 'cli' });
    env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix, REKEY_FINGERPRINT_KEY: h.settings.fingerprintKey?.reveal() };
    await h.apply(`
providers:
  vault: { type: local }
secrets:
  cli-key:
    store: { provider: vault }
    issuer: { type: random }
    schedule: { cron: "${daily.cron}" }
    grace: 1h
`);
  });
  afterAll(() => h.stop());

  it('rotate --wait follows the run to the end', async () => {
    const result = await rekey(['rotate', 'cli-key', '--wait'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Queued rotation [0-9a-f-]{36} of cli-key\./);
    expect(result.stdout).toContain('Rotated cli-key.');
    const json = await rekey(['rotate', 'cli-key', '--wait', '--json'], env);
    expect(JSON.parse(json.stdout)).toMatchObject({ status: 'succeeded' });
  });

  it('status shows versions, grace and the next rotation', async () => {
    const result = await rekey(['status', 'cli-key'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^cli-key\n {2}next rotation: ${daily.next.toISOString().replaceAll('.', '\\.')}`));
    expect(result.stdout).toMatch(/v2 {2}current/);
    expect(result.stdout).toMatch(/v1 {2}previous .*accepted for (59m|1h)/);
    expect((await rekey(['status', 'nope'], env)).code).toBe(1);
  });

  it('revoke --version takes the leak path', async () => {
    const result = await rekey(['revoke', 'cli-key', '--version', '1'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Version 1 of cli-key: revoking.');
    await expect.poll(async () => (await h.runtime.db.version.findFirst({ where: { number: 1 } }))?.state, { timeout: 10_000 }).toBe('revoked');
  });
});
