/**
 * The notification outbox across a Redis Sentinel failover, on real engines of this file's own
 * (test/support/redis-ha.ts: a primary, a replica, three sentinels) and a database of its own.
 * A relay deletes an outbox row once its jobs are queued; nothing raises a one-off notice
 * (leak.received, rotation.failed) again. Jobs the primary accepted but had not replicated die
 * with it when the sentinels promote the replica, so a relay may delete the rows only once a
 * replica has them too. The replica is held back (CLIENT PAUSE WRITE stops it applying the
 * replication stream, and what it had not applied is dropped when the primary dies): a relay
 * then keeps its rows, and the next one after the failover queues the notice on the new primary.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { NotificationsConfig } from '../../src/config/notifications.js';
import { notice } from '../../src/core/notify.js';
import { parseRedisUrl } from '../../src/core/redis-endpoint.js';
import { createDb, type Db } from '../../src/db/client.js';
import { writeNotices } from '../../src/db/outbox.js';
import { NoticeQueue } from '../../src/notify/queue.js';
import { openRedis, type RedisConnection } from '../../src/queue/connection.js';
import { jobId } from '../../src/queue/names.js';
import { tempDir } from '../support/gateways/process.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { until } from '../support/poll.js';
import { holdBack, RedisSentinelSet, releaseOnceLinkDown } from '../support/redis-ha.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
let redis: RedisSentinelSet;
let env: Isolated;
let db: Db;
let connection: RedisConnection;
let notices: NoticeQueue;

// What the relay reads of a destination: the events it takes and its retry policy.
const section = { destinations: { oncall: { events: ['leak.received'], retry: { attempts: 3, backoff: 100 } } } } as unknown as NotificationsConfig;

beforeAll(async () => {
  dir = await tempDir('outbox-failover');
  redis = await RedisSentinelSet.create(dir.path, 1000);
  env = await isolate('outbox-failover');
  db = createDb(env.databaseUrl, 2);
  connection = openRedis(parseRedisUrl(redis.url), { longLived: true });
  connection.on('error', () => undefined); // refused connects while the primary is down
  notices = new NoticeQueue(connection, env.prefix, () => Promise.resolve(section));
  notices.queue.on('error', () => undefined);
}, 120_000);

afterAll(async () => {
  await notices?.close().catch(() => undefined);
  connection?.disconnect();
  await db?.$disconnect();
  await env?.cleanup();
  await redis?.stop();
  await dir?.remove();
});

const leakReceived = () => notice({}, 'leak.received', randomUUID(), 'pay-key', { source: 'test' });
const rows = () => db.notificationOutbox.count();
const queued = async (id: string) => !!(await notices.queue.getJob(jobId.notice(id, 'oncall')));

it('a notice whose jobs no replica acknowledged keeps its outbox row, and is queued on the promoted replica after the failover', async () => {
  // Replication healthy: a relay pass queues the notice and deletes its row, without delay.
  const healthy = leakReceived();
  await writeNotices(db, [healthy]);
  expect(await notices.relay(db)).toBe(1);
  expect(await rows()).toBe(0);

  const old = await redis.primary();
  const replica = redis.data.find((n) => n !== old)!;
  // The replica stops applying what the primary streams to it (it stays connected and answers the sentinels).
  await holdBack(replica);
  const held = leakReceived();
  await writeNotices(db, [held]);
  const pass = await notices.relay(db).then(
    (sent) => `sent ${sent}`,
    (error: Error) => `refused: ${error.message}`,
  );
  console.log(`relay pass while the replica is held back: ${pass}; outbox rows after it: ${await rows()}`);

  await old.kill('SIGKILL');
  // Unpaused only once it has seen its primary go (and dropped what it had not applied), not before.
  await releaseOnceLinkDown(replica);
  await until(async () => ((await replica.command('ROLE').catch(() => [])) as string[])[0] === 'master', 60_000, 'the replica promoted');
  await redis.announced(replica);

  // The relay's next passes (every second in a worker) reach the new primary.
  await until(
    async () => {
      await notices.relay(db).catch(() => 0);
      return (await rows()) === 0;
    },
    60_000,
    'the outbox relayed on the new primary',
  );
  expect(await queued(healthy.id), 'the notice relayed while replication was healthy, on the new primary').toBe(true);
  expect(await queued(held.id), 'the notice relayed while the replica was held back, on the new primary').toBe(true);
}, 180_000);
