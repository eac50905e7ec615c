import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDatabase, listMigrations, migrate } from '../../src/db/migrate.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { DATABASE_URL, databaseUrl } from '../support/services.js';

describe('rekey migrate', () => {
  let env: Isolated;
  beforeAll(async () => (env = await isolate('migrate')));
  afterAll(async () => env.cleanup());

  it('is a no-op on a migrated database and refuses edited migrations', async () => {
    expect(await migrate(env.databaseUrl)).toEqual([]);
    const edited = listMigrations().map((m) => ({ ...m, checksum: m.checksum.replace(/^./, 'x') }));
    await expect(migrate(env.databaseUrl, edited)).rejects.toThrow(/was edited after it was applied/);
  });

  it('keeps the audit log append-only', async () => {
    const client = new pg.Client({ connectionString: env.databaseUrl });
    await client.connect();
    try {
      await client.query(
        `INSERT INTO audit_events (at, actor, action, data, prev_hash, hash, key_id) VALUES (now(), 'test', 'x', '{}', '', 'h', 'k')`,
      );
      await expect(client.query(`UPDATE audit_events SET actor = 'evil'`)).rejects.toThrow(/append-only/);
      await expect(client.query(`DELETE FROM audit_events`)).rejects.toThrow(/append-only/);
    } finally {
      await client.end();
    }
  });

  it('binds secrets removed before the upgrade to the newest revision that declared them', async () => {
    const name = `rekey_t_bound_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    const url = databaseUrl(name);
    await ensureDatabase(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const all = listMigrations();
      const at = all.findIndex((m) => m.name.endsWith('_removed_secret_bindings'));
      await migrate(url, all.slice(0, at));
      const doc = (secrets: Record<string, unknown>) => JSON.stringify({ secrets });
      await client.query(`INSERT INTO config_revisions (hash, document) VALUES ('1', $1), ('2', $2), ('3', $3)`, [
        doc({ gone: {}, fam: { clients: ['a', 'b'] } }),
        doc({ gone: {}, fam: { clients: ['a'] } }),
        doc({}),
      ]);
      for (const secret of ['gone', 'fam/a', 'fam/b']) {
        await client.query(`INSERT INTO secrets (id, name, spec, spec_hash, removed_at, updated_at) VALUES ($1, $2, '{}', '', now(), now())`, [randomUUID(), secret]);
      }
      await client.query(`INSERT INTO secrets (id, name, spec, spec_hash, updated_at) VALUES ($1, 'live', '{}', '', now())`, [randomUUID()]);
      await migrate(url, all);
      const { rows } = await client.query<{ name: string; bound_revision_id: number | null }>('SELECT name, bound_revision_id FROM secrets ORDER BY name');
      expect(Object.fromEntries(rows.map((r) => [r.name, r.bound_revision_id]))).toEqual({ 'fam/a': 2, 'fam/b': 1, gone: 2, live: null });
    } finally {
      await client.end();
      const admin = new pg.Client({ connectionString: DATABASE_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await admin.end();
    }
  });
});
