/**
 * The notification outbox across a Redis Cluster failover: test/processes/outbox-failover.test.ts
 * on a Cluster of this file's own (test/support/redis-ha.ts: three primaries, each with a replica)
 * and a database of its own. The queue's keys live on the primary serving its prefix's hash tag
 * (`{test-...}`, like the `{rekey}` default), not on any one connection of the client; a relay
 * may delete outbox rows only once that primary's replica has their jobs too. The replica is held
 * back (CLIENT PAUSE WRITE), the primary killed, and the Cluster promotes the replica without the
 * jobs: a relay must have kept its rows, and the next one after the failover queues the notice on
 * the promoted replica.
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
import { holdBack, RedisClusterSet, releaseOnceLinkDown } from '../support/redis-ha.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
let cluster: RedisClusterSet;
let env: Isolated;
let db: Db;
let connection: RedisConnection;
let notices: NoticeQueue;

// What the relay reads of a destination: the events it takes and its retry policy.
const section = { destinations: { oncall: { events: ['leak.received'], retry: { attempts: 3, backoff: 100 } } } } as unknown as NotificationsConfig;

beforeAll(async () => {
  dir = await tempDir('outbox-cluster-failover');
  cluster = await RedisClusterSet.create(dir.path, { replicas: 1 });
  env = await isolate('outbox-cluster-failover');
  db = createDb(env.databaseUrl, 2);
  connection = openRedis(parseRedisUrl(cluster.url), { longLived: true });
  connection.on('error', () => undefined); // refused connects while the primary is down
  notices = new NoticeQueue(connection, env.prefix, () => Promise.resolve(section));
  notices.queue.on('error', () => undefined);
}, 120_000);

afterAll(async () => {
  await notices?.close().catch(() => undefined);
  connection?.disconnect();
  await db?.$disconnect();
  await env?.cleanup();
  await cluster?.stop();
  await dir?.remove();
});

const leakReceived = () => notice({}, 'leak.received', randomUUID(), 'pay-key', { source: 'test' });
const rows = () => db.notificationOutbox.count();
const queued = async (id: string) => !!(await notices.queue.getJob(jobId.notice(id, 'oncall')));
const replication = async (node: { command(...args: string[]): Promise<unknown> }) => String(await node.command('INFO', 'replication'));

it('a notice whose jobs the queue’s primary’s replica did not acknowledge keeps its outbox row, and is queued on the promoted replica after the failover', async () => {
  // Replication healthy: a relay pass queues the notice and deletes its row, without delay.
  const healthy = leakReceived();
  await writeNotices(db, [healthy]);
  expect(await notices.relay(db)).toBe(1);
  expect(await rows()).toBe(0);

  const owner = await cluster.ownerOf(env.prefix);
  const [replica] = await cluster.replicasOf(env.prefix);
  expect(replica, 'the primary serving the queue has a replica').toBeDefined();
  // The replica stops applying what the primary streams to it (it stays connected and answers the Cluster bus).
  await holdBack(replica!);
  const held = leakReceived();
  await writeNotices(db, [held]);
  const pass = await notices.relay(db).then(
    (sent) => `sent ${sent}`,
    (error: Error) => `refused: ${error.message}`,
  );
  console.log(`relay pass while the replica is held back: ${pass}; outbox rows after it: ${await rows()}`);

  await owner.kill('SIGKILL');
  // Unpaused only once it has seen its primary go (and dropped what it had not applied), not before.
  await releaseOnceLinkDown(replica!);
  await until(async () => /role:master/.test(await replication(replica!).catch(() => '')), 60_000, 'the replica promoted');
  await cluster.healthy(60_000);

  // The relay's next passes (every second in a worker) reach the new primary.
  await until(
    async () => {
      await notices.relay(db).catch(() => 0);
      return (await rows()) === 0;
    },
    60_000,
    'the outbox relayed on the new primary',
  );
  expect(await cluster.ownerOf(env.prefix), 'the promoted replica serves the queue').toBe(replica);
  expect(await queued(healthy.id), 'the notice relayed while replication was healthy, on the new primary').toBe(true);
  expect(await queued(held.id), 'the notice relayed while the replica was held back, on the new primary').toBe(true);
}, 180_000);
