import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { type ConfigError, ProviderError } from '../../../src/core/errors.js';
import type { SecretStore } from '../../../src/core/ports.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { call, newVersion } from '../../../test/conformance/refs.js';
import { storeConformance } from '../../../test/conformance/store.js';
import { isolate, runSql, type Isolated } from '../../../test/support/isolation.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { providers } from '../../../src/registry.js';
import local from '../index.js';

const KEY = 'b'.repeat(64);
let env: Isolated;
let counter = 0;
const instances: Array<{ close?: () => Promise<void> }> = [];

beforeAll(async () => {
  env = await isolate('local');
  process.env.PROVIDERTEST_LOCAL_KEY = KEY;
});
afterAll(async () => {
  for (const i of instances) await i.close?.();
  await env.cleanup();
});

function openStore(key = '${env:PROVIDERTEST_LOCAL_KEY}', name = `secret-${++counter}`): SecretStore {
  const instance = local.open(local.config.parse({ key }), testProviderContext('vault', { databaseUrl: env.databaseUrl }));
  instances.push(instance);
  return instance.store!({ secret: name, params: {} });
}

storeConformance('local', () => {
  const secret = `secret-${++counter}`;
  return Promise.resolve({ store: openStore(undefined, secret), secret, module: local });
});

it('keeps only ciphertext in PostgreSQL', async () => {
  const store = openStore();
  const v = newVersion('sealed');
  await store.writePending(v.ref, v.value, call());
  const client = new pg.Client({ connectionString: env.databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ sealed: Buffer }>('SELECT sealed FROM local_store_versions');
  await client.end();
  const dump = Buffer.concat(rows.map((r) => r.sealed)).toString('latin1');
  expect(rows.length).toBeGreaterThan(0);
  expect(dump).not.toContain(v.value.reveal());
});

it('names both keys when read with the wrong one', async () => {
  const name = 'rekeyed';
  const v = newVersion(name);
  const { storeVersionId } = await openStore(undefined, name).writePending(v.ref, v.value, call());
  process.env.PROVIDERTEST_OTHER_KEY = 'c'.repeat(64);
  await expect(openStore('${env:PROVIDERTEST_OTHER_KEY}', name).read({ storeVersionId }, call())).rejects.toThrow(/sealed with key \w{8}, but REKEY_LOCAL_STORE_KEY is \w{8}/);
});

it("seals with rekey's own key when the config names none; a config can never name that key", async () => {
  const own = 'e'.repeat(64);
  const open = (config: Record<string, unknown>) => {
    const instance = local.open(local.config.parse(config), testProviderContext('vault', { databaseUrl: env.databaseUrl, storeKey: () => SecretValue.of(own) }));
    instances.push(instance);
    return instance;
  };
  const v = newVersion('default-key');
  const { storeVersionId } = await open({}).store!({ secret: 'default-key', params: {} }).writePending(v.ref, v.value, call());
  process.env.PROVIDERTEST_SAME_KEY = own;
  const read = await open({ key: '${env:PROVIDERTEST_SAME_KEY}' }).store!({ secret: 'default-key', params: {} }).read({ storeVersionId }, call());
  expect(read.reveal()).toBe(v.value.reveal());
  process.env.REKEY_LOCAL_STORE_KEY ??= own;
  expect(() => open({ key: '${env:REKEY_LOCAL_STORE_KEY}' })).toThrow(/REKEY_LOCAL_STORE_KEY\} is rekey's own setting/);
});

it('a writePending abandoned by its caller (timeout) never commits later, so the retry writes the re-issued value', async () => {
  const name = `abandoned-${++counter}`;
  const store = openStore(undefined, name);
  const v = newVersion(name);
  // Another session holds the secret's write lock, so the write waits inside its transaction.
  const blocker = new pg.Client({ connectionString: env.databaseUrl });
  await blocker.connect();
  try {
    await blocker.query('SELECT pg_advisory_lock(hashtext($1))', [`local-store:${name}`]);
    const controller = new AbortController();
    const first = store.writePending(v.ref, v.value, { signal: controller.signal }).then(
      () => 'committed',
      (error: unknown) => (error instanceof ProviderError ? error.code : 'other'),
    );
    await expect
      .poll(async () => (await blocker.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)).rows[0]!.n, { timeout: 10_000, interval: 20 })
      .toBeGreaterThan(0);
    // rekey's per-call timeout fires: core gives the call up, revokes that value and issues a fresh one.
    controller.abort();
    await blocker.query('SELECT pg_advisory_unlock(hashtext($1))', [`local-store:${name}`]);
    expect(await first).toBe('REKEY_ERR_TIMEOUT');
    expect(await store.list(call())).toEqual([]);
    const again = SecretValue.of(`reissued_${randomUUID()}`);
    const { storeVersionId } = await store.writePending(v.ref, again, call());
    expect((await store.read({ storeVersionId }, call())).equals(again)).toBe(true);
  } finally {
    await blocker.end();
  }
});

it('a connection whose server refused a write as read-only (a standby, a primary demoted by a failover) is not kept: once the server takes writes again, so does the store', async () => {
  const store = openStore();
  const v = newVersion('read-only');
  const database = pg.escapeIdentifier(new URL(env.databaseUrl).pathname.slice(1));
  // Every session opened now is read-only, as on a standby: the store's first connection is one.
  await runSql(env.databaseUrl, [`ALTER DATABASE ${database} SET default_transaction_read_only = on`]);
  try {
    await expect(store.writePending(v.ref, v.value, call())).rejects.toMatchObject({ code: 'REKEY_ERR_UNAVAILABLE' });
  } finally {
    await runSql(env.databaseUrl, ['SET default_transaction_read_only = off', `ALTER DATABASE ${database} RESET default_transaction_read_only`]);
  }
  // The front leads to a writable server again: the retry of the step goes there, not to the read-only session.
  const { storeVersionId } = await store.writePending(v.ref, v.value, call());
  expect((await store.read({ storeVersionId }, call())).equals(v.value)).toBe(true);
});

it('refuses at apply two managed secrets on one entry of the store (each would move the other\'s current)', async () => {
  const problems = (secrets: string) =>
    parseConfig(`providers:\n  vault: { type: local }\nsecrets:\n${secrets}`, 'rekey.yaml', providers).then(
      () => '',
      (e: unknown) => (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
    );
  // b names a's entry (a's name by default).
  expect(await problems(`
  a: { store: { provider: vault }, issuer: { type: random } }
  b: { store: { provider: vault, name: a }, issuer: { type: random } }
`)).toMatch(/secrets\.b\.store: .* a on vault, as the store of a does/);
  // b names the entry of a's client web.
  expect(await problems(`
  a: { store: { provider: vault, name: api }, issuer: { type: random }, clients: [web] }
  b: { store: { provider: vault, name: api/web }, issuer: { type: random } }
`)).toMatch(/secrets\.b\.store: /);
  expect(await problems(`
  a: { store: { provider: vault }, issuer: { type: random }, clients: [web] }
  b: { store: { provider: vault, name: b }, issuer: { type: random } }
  c: { store: { provider: vault, name: a }, issuer: { type: random } }
`)).toBe('');
});
