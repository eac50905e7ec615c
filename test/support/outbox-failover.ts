/**
 * What the two outbox failover tests share (test/processes/outbox-failover.test.ts on Sentinel,
 * outbox-cluster-failover.test.ts on a Cluster): a Redis set and a database of the file's own, a
 * NoticeQueue on them, and the relay passes before and after the failover each file stages.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect } from 'vitest';
import type { NotificationsConfig } from '../../src/config/notifications.js';
import { notice, type Notice } from '../../src/core/notify.js';
import { parseRedisUrl } from '../../src/core/redis-endpoint.js';
import { createDb, type Db } from '../../src/db/client.js';
import { writeNotices } from '../../src/db/outbox.js';
import { NoticeQueue } from '../../src/notify/queue.js';
import { openRedis, type RedisConnection } from '../../src/queue/connection.js';
import { jobId } from '../../src/queue/names.js';
import { tempDir } from './gateways/process.js';
import { isolate, type Isolated } from './isolation.js';
import { until } from './poll.js';

// What the relay reads of a destination: the events it takes and its retry policy.
const section = { destinations: { oncall: { events: ['leak.received'], retry: { attempts: 3, backoff: 100 } } } } as unknown as NotificationsConfig;

export interface OutboxFailover<S> {
  /** The Redis set create() made. */
  readonly redis: S;
  /** The database and queue prefix of the file's own. */
  readonly env: Isolated;
  /** Replication healthy: a relay pass queues a notice and deletes its row, without delay. Returns it. */
  relayHealthy(): Promise<Notice>;
  /** A relay pass of a new notice (while the test holds the replica back); logs what it did and the rows left. Returns it. */
  relayHeld(): Promise<Notice>;
  /** The relay's next passes (every second in a worker) until the outbox is empty, then whether each notice is queued. */
  drained(...sent: Notice[]): Promise<boolean[]>;
}

/** Registers the file's beforeAll/afterAll: `create` starts its Redis set in a directory of its own. */
export function outboxFailover<S extends { url: string; stop(): Promise<void> }>(name: string, create: (dir: string) => Promise<S>): OutboxFailover<S> {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let redis: S;
  let env: Isolated;
  let db: Db;
  let connection: RedisConnection;
  let notices: NoticeQueue;
  beforeAll(async () => {
    dir = await tempDir(name);
    redis = await create(dir.path);
    env = await isolate(name);
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
  return {
    get redis() {
      return redis;
    },
    get env() {
      return env;
    },
    async relayHealthy() {
      const healthy = leakReceived();
      await writeNotices(db, [healthy]);
      expect(await notices.relay(db)).toBe(1);
      expect(await rows()).toBe(0);
      return healthy;
    },
    async relayHeld() {
      const held = leakReceived();
      await writeNotices(db, [held]);
      const pass = await notices.relay(db).then(
        (sent) => `sent ${sent}`,
        (error: Error) => `refused: ${error.message}`,
      );
      console.log(`relay pass while the replica is held back: ${pass}; outbox rows after it: ${await rows()}`);
      return held;
    },
    async drained(...sent) {
      await until(
        async () => {
          await notices.relay(db).catch(() => 0);
          return (await rows()) === 0;
        },
        60_000,
        'the outbox relayed on the new primary',
      );
      return Promise.all(sent.map(async (n) => !!(await notices.queue.getJob(jobId.notice(n.id, 'oncall')))));
    },
  };
}
