import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listMigrations, migrate } from '../../src/db/migrate.js';
import { isolate, type Isolated } from '../support/isolation.js';

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
        `INSERT INTO audit_events (at, actor, action, data, prev_hash, hash) VALUES (now(), 'test', 'x', '{}', '', 'h')`,
      );
      await expect(client.query(`UPDATE audit_events SET actor = 'evil'`)).rejects.toThrow(/append-only/);
      await expect(client.query(`DELETE FROM audit_events`)).rejects.toThrow(/append-only/);
    } finally {
      await client.end();
    }
  });
});
