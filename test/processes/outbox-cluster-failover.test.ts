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
import { expect, it } from 'vitest';
import { outboxFailover } from '../support/outbox-failover.js';
import { until } from '../support/poll.js';
import { holdBack, RedisClusterSet, releaseOnceLinkDown } from '../support/redis-ha.js';

const f = outboxFailover('outbox-cluster-failover', (dir) => RedisClusterSet.create(dir, { replicas: 1 }));
const replication = async (node: { command(...args: string[]): Promise<unknown> }) => String(await node.command('INFO', 'replication'));

it('a notice whose jobs the queue’s primary’s replica did not acknowledge keeps its outbox row, and is queued on the promoted replica after the failover', async () => {
  const healthy = await f.relayHealthy();

  const owner = await f.redis.ownerOf(f.env.prefix);
  const [replica] = await f.redis.replicasOf(f.env.prefix);
  expect(replica, 'the primary serving the queue has a replica').toBeDefined();
  // The replica stops applying what the primary streams to it (it stays connected and answers the Cluster bus).
  await holdBack(replica!);
  const held = await f.relayHeld();

  await owner.kill('SIGKILL');
  // Unpaused only once it has seen its primary go (and dropped what it had not applied), not before.
  await releaseOnceLinkDown(replica!);
  await until(async () => /role:master/.test(await replication(replica!).catch(() => '')), 60_000, 'the replica promoted');
  await f.redis.healthy(60_000);

  // The relay's next passes (every second in a worker) reach the new primary.
  const [healthyQueued, heldQueued] = await f.drained(healthy, held);
  expect(await f.redis.ownerOf(f.env.prefix), 'the promoted replica serves the queue').toBe(replica);
  expect(healthyQueued, 'the notice relayed while replication was healthy, on the new primary').toBe(true);
  expect(heldQueued, 'the notice relayed while the replica was held back, on the new primary').toBe(true);
}, 180_000);
