// Per-file isolation for integration tests: a database cloned from the migrated
// template and a Redis key prefix of its own, both removed by cleanup().
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { scanKeys, testRedis } from './redis.js';
import { DATABASE_URL, REDIS_URL, databaseUrl } from './services.js';

export interface Isolated {
  databaseUrl: string;
  redisUrl: string;
  /** A BullMQ prefix, hash-tagged like production's. */
  prefix: string;
  cleanup(): Promise<void>;
}

export async function isolate(label = 'test'): Promise<Isolated> {
  const template = process.env.REKEY_TEST_TEMPLATE_DB;
  if (!template) throw new Error('REKEY_TEST_TEMPLATE_DB is unset: run integration tests through vitest (global setup)');
  const id = randomUUID().replaceAll('-', '').slice(0, 12);
  const name = `rekey_t_${label.replace(/\W/g, '_').slice(0, 20)}_${id}`;
  await adminQuery(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(template)}`);
  const prefix = `{test-${id}}`;
  return {
    databaseUrl: databaseUrl(name),
    redisUrl: REDIS_URL,
    prefix,
    async cleanup() {
      await adminQuery(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await deleteKeys(`${prefix}*`);
    },
  };
}

/** Deletes every Redis key matching a pattern. */
export async function deleteKeys(pattern: string): Promise<void> {
  const redis = testRedis();
  try {
    // One key at a time: on a Cluster, keys of different slots cannot go in one DEL.
    await Promise.all((await scanKeys(redis, pattern)).map((key) => redis.del(key)));
  } finally {
    redis.disconnect();
  }
}

/** Runs `statements` in order on one connection to `url` (as whoever the URL names), then closes it. */
export async function runSql(url: string, statements: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const sql of statements) await client.query(sql);
  } finally {
    await client.end();
  }
}

async function adminQuery(sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(sql);
        return;
      } catch (error) {
        // Two files cloning the template at the same instant can collide; try again.
        if ((error as { code?: string }).code !== '55006' || attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
      }
    }
  } finally {
    await admin.end();
  }
}
