/**
 * The two database roles. The owner (REKEY_MIGRATE_DATABASE_URL) runs `rekey migrate`
 * and owns every table; the runtime role (DATABASE_URL's user) runs workers, servers and
 * the CLI. The runtime role may read and write rekey's state but only INSERT and SELECT
 * the audit log: not UPDATE, DELETE or TRUNCATE it, and, not owning it, not ALTER it or
 * disable its trigger. Its holder still cannot forge an accepted row: the chain is keyed
 * by REKEY_AUDIT_KEY (src/db/audit.ts).
 *
 * `rekey migrate` applies {@link runtimeGrants} after every migration run, so tables added
 * later are granted too. The login role itself (and its password) is the operator's to
 * create: rekey never handles a database password in SQL.
 */
import pg from 'pg';
import { RekeyError } from '../core/errors.js';

/** The table the runtime role may only INSERT and SELECT, and the one it may only read. */
const APPEND_ONLY = 'audit_events';
const MIGRATIONS = '_prisma_migrations';

/**
 * The exact statements that grant `role` what the runtime needs in `schema` (also printed
 * by `rekey migrate --print-grants` and in docs/database-roles.md). Idempotent.
 */
export function runtimeGrants(role: string, schema = 'public'): string[] {
  const r = pg.escapeIdentifier(role);
  const s = pg.escapeIdentifier(schema);
  return [
    `GRANT USAGE ON SCHEMA ${s} TO ${r}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${s} TO ${r}`,
    `REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ${s}.${APPEND_ONLY} FROM ${r}`,
    // Read, for the schema check at start (pendingMigrations); written by the owner only.
    `REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ${s}.${pg.escapeIdentifier(MIGRATIONS)} FROM ${r}`,
    `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${s} TO ${r}`,
  ];
}

/**
 * Grants `role` the runtime's privileges, connected as the owner. Refuses, saying what to
 * run, when the role does not exist, is a superuser, can act as the owner, or owns one of
 * the tables (a database migrated as one role before: reassign it to the owner first).
 * @throws RekeyError REKEY_ERR_CONFIG
 */
export async function grantRuntimeRole(ownerUrl: string, role: string): Promise<void> {
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    const { rows: [me] } = await client.query<{ owner: string; schema: string }>('SELECT current_user AS owner, current_schema() AS schema');
    const { rows: [found] } = await client.query<{ rolsuper: boolean; actsAsOwner: boolean }>(
      `SELECT rolsuper, pg_has_role(rolname, current_user, 'MEMBER') AS "actsAsOwner" FROM pg_roles WHERE rolname = $1`,
      [role],
    );
    if (!found) throw new RekeyError('REKEY_ERR_CONFIG', `the runtime role ${role} (DATABASE_URL's user) does not exist: create it first, e.g. CREATE ROLE ${pg.escapeIdentifier(role)} LOGIN PASSWORD '...'`);
    if (found.rolsuper || found.actsAsOwner) {
      throw new RekeyError('REKEY_ERR_CONFIG', `the runtime role ${role} is a superuser or a member of ${me!.owner}: it could rewrite the audit log; give DATABASE_URL a plain login role`);
    }
    const { rows: owned } = await client.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND pg_get_userbyid(c.relowner) = $2 ORDER BY 1`,
      [me!.schema, role],
    );
    if (owned.length) {
      throw new RekeyError(
        'REKEY_ERR_CONFIG',
        `the runtime role ${role} owns ${owned.map((o) => o.name).join(', ')}: as a database administrator, run REASSIGN OWNED BY ${pg.escapeIdentifier(role)} TO ${pg.escapeIdentifier(me!.owner)}, then migrate again`,
      );
    }
    await client.query('SELECT pg_advisory_lock($1)', [GRANT_LOCK]);
    try {
      await client.query('BEGIN');
      for (const sql of runtimeGrants(role, me!.schema)) await client.query(sql);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [GRANT_LOCK]).catch(() => undefined);
    }
  } finally {
    await client.end();
  }
}

const GRANT_LOCK = 0x72656b67; // "rekg"

/** The user a PostgreSQL URL logs in as, or undefined when it names none (libpq's default). */
export function userOf(databaseUrl: string): string | undefined {
  const user = URL.canParse(databaseUrl) ? new URL(databaseUrl).username : '';
  return user ? decodeURIComponent(user) : undefined;
}
