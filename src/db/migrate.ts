/**
 * Applies prisma/migrations/<name>/migration.sql in order, offline, with no Prisma
 * schema engine. Bookkeeping goes to Prisma's own `_prisma_migrations` table in
 * Prisma's format, so `prisma migrate status` agrees with it. An advisory lock makes
 * concurrent runs (a Helm hook and a developer) take turns.
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { RekeyError } from '../core/errors.js';
import { packageRoot } from '../paths.js';

const LOCK_ID = 0x72656b79; // "reky"

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

/** The migrations shipped with this build, oldest first. */
export function listMigrations(dir = join(packageRoot, 'prisma', 'migrations')): Migration[] {
  if (!existsSync(dir)) throw new RekeyError('REKEY_ERR_CONFIG', `no migrations directory at ${dir}`);
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(dir, entry.name, 'migration.sql')))
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

/** Applies pending migrations; returns the names applied. @throws when an applied one was edited. */
export async function migrate(databaseUrl: string, migrations = listMigrations()): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_ID]);
    await client.query(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,
      "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,
      "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0)`);
    const { rows } = await client.query<{ migration_name: string; checksum: string }>(
      `SELECT migration_name, checksum FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
    );
    const applied = new Map(rows.map((r) => [r.migration_name, r.checksum]));
    const done: string[] = [];
    for (const migration of migrations) {
      const checksum = applied.get(migration.name);
      if (checksum !== undefined) {
        if (checksum !== migration.checksum) {
          throw new RekeyError('REKEY_ERR_CONFIG', `migration ${migration.name} was edited after it was applied`);
        }
        continue;
      }
      await client.query('BEGIN');
      try {
        await client.query(migration.sql);
        await client.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, applied_steps_count)
           VALUES ($1, $2, now(), $3, 1)`,
          [randomUUID(), migration.checksum, migration.name],
        );
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
      done.push(migration.name);
    }
    return done;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_ID]).catch(() => undefined);
    await client.end();
  }
}

/**
 * The shipped migrations the database has not applied, oldest first: a process whose
 * schema is older than its code refuses to start. Reads only; a database without
 * `_prisma_migrations` has applied none.
 * @throws what connecting throws (the caller decides whether an unreachable database is fatal).
 */
export async function pendingMigrations(databaseUrl: string, migrations = listMigrations()): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string | null }>(`SELECT to_regclass('"_prisma_migrations"')::text AS name`);
    if (!rows[0]?.name) return migrations.map((m) => m.name);
    const applied = await client.query<{ migration_name: string }>(`SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`);
    const names = new Set(applied.rows.map((r) => r.migration_name));
    return migrations.map((m) => m.name).filter((name) => !names.has(name));
  } finally {
    await client.end();
  }
}

/** Creates the database named in the URL when it does not exist (for dev and tests). */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return false;
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`).catch((error: { code?: string }) => {
      if (error.code !== '42P04') throw error; // created meanwhile by someone else
    });
    return true;
  } finally {
    await admin.end();
  }
}
