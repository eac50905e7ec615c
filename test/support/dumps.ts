/**
 * Everything rekey left in PostgreSQL and Redis, as text, for searching secret values in
 * (invariant 1): the no-plaintext test and the chaos soak both use it.
 */
import pg from 'pg';
import { scanKeys, testRedis } from './redis.js';

/** Every row of every table in the public schema; bytea both as hex and as raw bytes. */
export async function dumpDatabase(databaseUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ tablename: string }>(`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`);
    const parts: string[] = [];
    for (const { tablename } of tables) {
      const { rows } = await client.query(`SELECT * FROM ${pg.escapeIdentifier(tablename)}`);
      for (const row of rows as Array<Record<string, unknown>>) {
        for (const value of Object.values(row)) parts.push(Buffer.isBuffer(value) ? `${value.toString('hex')} ${value.toString('latin1')}` : JSON.stringify(value));
      }
    }
    return parts.join('\n');
  } finally {
    await client.end();
  }
}

/** Every key matching the patterns, and its value whatever the type. */
export async function dumpRedis(redisUrl: string, patterns: readonly string[] = ['*']): Promise<string> {
  const redis = testRedis(redisUrl);
  const parts: string[] = [];
  try {
    for (const pattern of patterns) {
      for (const key of await scanKeys(redis, pattern)) {
        const type = await redis.type(key);
        const value =
          type === 'string' ? await redis.getBuffer(key).then((b) => b?.toString('latin1'))
          : type === 'hash' ? JSON.stringify(await redis.hgetall(key))
          : type === 'list' ? JSON.stringify(await redis.lrange(key, 0, -1))
          : type === 'set' ? JSON.stringify(await redis.smembers(key))
          : type === 'zset' ? JSON.stringify(await redis.zrange(key, '0', '-1', 'WITHSCORES'))
          : type === 'stream' ? JSON.stringify(await redis.xrange(key, '-', '+'))
          : '';
        parts.push(`${key} ${value}`);
      }
    }
    return parts.join('\n');
  } finally {
    redis.disconnect();
  }
}
