/**
 * Removing a secret from rekey.yaml never leaves a key nobody can revoke (issue 12, item 2).
 * A removed (or renamed) secret keeps the provider bindings of the revision it was last
 * applied in: its keys stay live at the targets (the plan says so and names them), a leak
 * report or `rekey revoke` of one is blocked at a real HAProxy, and `rekey decommission`
 * retires and revokes all of them while keeping the history.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { VersionRecord } from '../../src/core/model.js';
import { rekey } from '../support/cli.js';
import { haproxyProviderYaml, send, startBackend, startHaproxy, type Backend, type HaproxyGateway } from '../support/gateways/index.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

const JOURNAL = `removed-${randomUUID()}`;
const dir = mkdtempSync(join(tmpdir(), 'rekey-removed-'));
let h: Harness;
let backend: Backend;
let gateway: HaproxyGateway;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  backend = await startBackend();
  gateway = await startHaproxy(backend.port);
  h = await startHarness({ label: 'removed-secrets' });
  env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix };
});
afterAll(async () => {
  await h?.stop();
  await gateway?.stop();
  await backend?.close();
});

/** A config with these gateway secrets, and `keep` (no target) so that something stays declared. */
function config(secrets: string[], { edge = true } = {}): string {
  const block = (name: string) => `  ${name}:\n    store: { provider: mem }\n    issuer: { provider: mem }\n    targets: [edge]\n    grace: 1h\n    retry: { attempts: 3, backoff: 50ms }\n`;
  return `providers:\n  mem: { type: memory, journal: ${JOURNAL} }\n${edge ? `${haproxyProviderYaml(gateway)}\n` : ''}secrets:\n  keep:\n    store: { provider: mem }\n    issuer: { provider: mem }\n${secrets.map(block).join('')}`;
}

async function applyFile(yaml: string): Promise<string> {
  const file = join(dir, `${randomUUID()}.yaml`);
  writeFileSync(file, yaml);
  const result = await rekey(['apply', '-f', file, '--no-rotation-metadata'], env);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

/** A version of the secret in `state`, with its value read from the memory store. */
async function key(secret: string, state: 'current' | 'previous'): Promise<{ version: VersionRecord; value: string }> {
  const { id } = (await h.runtime.engine.deps.repo.getSecret(secret))!;
  const [version] = await h.runtime.engine.deps.repo.versions(id, [state]);
  return { version: version!, value: journal(JOURNAL).stored.get(version!.storeVersionId!)!.value.reveal() };
}

const accepted = async (value: string) => (await send(gateway.url, gateway.header, value)).status === 200;
const refusedSoon = (value: string) => until(async () => !(await accepted(value)), 15_000, 'HAProxy refusing the key');
const leak = (fingerprint: string) =>
  h.runtime.engine.reportLeak({ source: 'test', deliveryId: randomUUID(), fingerprint, receivedAt: new Date() });

it('a removed secret keeps its bindings: the plan names its live keys, a leak of its current key is refused at HAProxy, and `rekey revoke` reaches the previous one', async () => {
  await h.apply(config(['gone']));
  await h.rotate('gone');
  await h.rotate('gone');
  const current = await key('gone', 'current');
  const previous = await key('gone', 'previous');
  expect(await accepted(current.value)).toBe(true);
  expect(await accepted(previous.value)).toBe(true);

  // The secret and the only provider it used both leave the config.
  const plan = await applyFile(config([], { edge: false }));
  expect(plan).toContain('  - secret gone (no longer rotated; its history is kept)');
  expect(plan).toContain(`    ! its keys stay live: v${current.version.number} current, v${previous.version.number} previous, at edge`);
  expect(plan).toContain('`rekey decommission gone` retires and revokes them everywhere');
  expect(await accepted(current.value)).toBe(true); // removal alone changes nothing at the gateway

  expect((await leak(current.version.fingerprint!)).outcome).toBe('blocking');
  await refusedSoon(current.value);
  expect(await accepted(previous.value)).toBe(true);

  const revoked = await rekey(['revoke', 'gone', '--version', String(previous.version.number)], env);
  expect(revoked.code, revoked.stderr).toBe(0);
  await refusedSoon(previous.value);
  await until(async () => (await h.runtime.engine.deps.repo.getVersion(previous.version.id))?.state === 'revoked', 15_000, 'the previous version revoked');
  const serials = [current, previous].map((k) => k.version.issuerState!.serial as string);
  expect(serials.every((serial) => journal(JOURNAL).revoked.has(serial))).toBe(true);
});

it('a rename leaves the old name\'s keys live and reachable: the plan names them, and a leak of one is refused at HAProxy', async () => {
  await h.apply(config(['old-name']));
  await h.rotate('old-name');
  const old = await key('old-name', 'current');
  const plan = await applyFile(config(['new-name']));
  expect(plan).toContain('  + secret new-name');
  expect(plan).toContain(`  - secret old-name (no longer rotated; its history is kept)\n    ! its keys stay live: v${old.version.number} current, at edge`);
  expect((await h.rotate('new-name')).status).toBe('succeeded');
  const renamed = await key('new-name', 'current');
  expect(await accepted(old.value)).toBe(true);

  expect((await leak(old.version.fingerprint!)).outcome).toBe('blocking');
  await refusedSoon(old.value);
  expect(await accepted(renamed.value)).toBe(true);
});

it('decommission: nothing left at any target, the issuer revoked, the history kept', async () => {
  await h.apply(config(['retiring']));
  await h.rotate('retiring');
  await h.rotate('retiring');
  const keys = [await key('retiring', 'previous'), await key('retiring', 'current')];
  for (const k of keys) expect(await accepted(k.value)).toBe(true);

  const early = await rekey(['decommission', 'retiring'], env);
  expect(early.code).toBe(1);
  expect(early.stderr).toContain('retiring is still in the applied config');

  await applyFile(config([]));
  const status = await rekey(['status', 'retiring'], env);
  expect(status.stdout).toContain('its keys stay live until `rekey decommission retiring`');

  const result = await rekey(['decommission', 'retiring', '--wait', '--timeout', '30s'], env);
  expect(result.code, result.stdout + result.stderr).toBe(0);
  expect(result.stdout).toContain('Decommissioned retiring: no key of it is live anywhere.');
  for (const k of keys) {
    expect(await accepted(k.value)).toBe(false);
    expect(journal(JOURNAL).revoked.has(k.version.issuerState!.serial as string)).toBe(true);
  }
  await until(() => Promise.resolve(keys.every((k) => !readFileSync(gateway.map, 'utf8').includes(k.value))), 10_000, 'the map file without the keys');
  // History kept: the versions, their runs and the audit trail are all still there.
  const { id } = (await h.runtime.engine.deps.repo.getSecret('retiring'))!;
  const versions = await h.runtime.db.version.findMany({ where: { secretId: id }, orderBy: { number: 'asc' } });
  expect(versions.map((v) => v.state)).toEqual(['revoked', 'revoked']);
  expect(await h.runtime.db.auditEvent.count({ where: { chain: 'retiring', action: 'secret.decommissioned' } })).toBe(1);
  // --wait ends when both versions are revoked; each retirement run records its success just after.
  await expect.poll(() => h.runtime.db.run.count({ where: { secretId: id, kind: 'retirement', status: 'succeeded' } }), { timeout: 30_000 }).toBe(2);
});
