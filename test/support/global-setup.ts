// Integration tests: check the services answer, build (once per migration set) a template
// database that every test file clones into a database of its own, build the dashboard into
// dist/ui (here, once: two files building it in their own setup removed it under each other,
// and the one that loaded it then served 503), and build the code the rekey processes they
// start run (children.ts). Returns the teardown that removes that build.
import { createHash } from 'node:crypto';
import pg from 'pg';
import { listMigrations, migrate } from '../../src/db/migrate.js';
import { buildUi } from '../../scripts/build-ui.mjs';
import { buildChildren } from './children.js';
import { testRedis } from './redis.js';
import { DATABASE_URL, REDIS_URL, TEST_AUDIT_KEY, databaseUrl } from './services.js';

export default async function setup(): Promise<() => void> {
  await checkRedis();
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect().catch((error: Error) => {
    throw new Error(`PostgreSQL is not reachable at ${DATABASE_URL} (${error.message}). Start it or set DATABASE_URL.`, { cause: error });
  });
  try {
    const migrations = listMigrations();
    const digest = createHash('sha256').update(migrations.map((m) => m.checksum).join()).digest('hex').slice(0, 12);
    const template = `rekey_tpl_${digest}`;
    await admin.query('SELECT pg_advisory_lock(7270001)');
    try {
      const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]);
      if (!rowCount) {
        await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(template)}`);
        await migrate(databaseUrl(template), migrations);
      }
    } finally {
      await admin.query('SELECT pg_advisory_unlock(7270001)');
    }
    process.env.REKEY_TEST_TEMPLATE_DB = template;
    // The CLI run in process (test/support/cli.ts) and child processes read it from the environment.
    process.env.REKEY_AUDIT_KEY ||= TEST_AUDIT_KEY;
  } finally {
    await admin.end();
  }
  buildUi();
  return buildChildren();
}

async function checkRedis(): Promise<void> {
  const redis = testRedis();
  try {
    await redis.ping();
  } catch (error) {
    throw new Error(`Redis is not reachable at ${REDIS_URL} (${(error as Error).message}). Start it or set REDIS_URL.`, { cause: error });
  } finally {
    redis.disconnect();
  }
}
