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
import { expect, it } from 'vitest';
import { outboxFailover } from '../support/outbox-failover.js';
import { until } from '../support/poll.js';
import { holdBack, RedisSentinelSet, releaseOnceLinkDown } from '../support/redis-ha.js';

const f = outboxFailover('outbox-failover', (dir) => RedisSentinelSet.create(dir, 1000));

it('a notice whose jobs no replica acknowledged keeps its outbox row, and is queued on the promoted replica after the failover', async () => {
  const healthy = await f.relayHealthy();

  const old = await f.redis.primary();
  const replica = f.redis.data.find((n) => n !== old)!;
  // The replica stops applying what the primary streams to it (it stays connected and answers the sentinels).
  await holdBack(replica);
  const held = await f.relayHeld();

  await old.kill('SIGKILL');
  // Unpaused only once it has seen its primary go (and dropped what it had not applied), not before.
  await releaseOnceLinkDown(replica);
  await until(async () => ((await replica.command('ROLE').catch(() => [])) as string[])[0] === 'master', 60_000, 'the replica promoted');
  await f.redis.announced(replica);

  // The relay's next passes (every second in a worker) reach the new primary.
  const [healthyQueued, heldQueued] = await f.drained(healthy, held);
  expect(healthyQueued, 'the notice relayed while replication was healthy, on the new primary').toBe(true);
  expect(heldQueued, 'the notice relayed while the replica was held back, on the new primary').toBe(true);
}, 180_000);
