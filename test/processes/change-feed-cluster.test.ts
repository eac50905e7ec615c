/**
 * The change feed's subscriber on a Redis Cluster of this file's own (test/support/redis-ha.ts)
 * losing its connection. ioredis's Cluster keeps its subscription on one connection of its own
 * to some node; when that connection ends it picks a node and subscribes again by itself, and
 * the Cluster emits no 'ready' (it never stopped being ready). A change published meanwhile (a
 * revocation that must end the streams relying on it) must still reach the listeners, once,
 * from the change log.
 */
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SecretChange } from '../../src/core/model.js';
import { startHarness, type Harness } from '../support/harness.js';
import { tempDir } from '../support/gateways/process.js';
import type { RedisServer } from '../support/own-services.js';
import { RedisClusterSet } from '../support/redis-ha.js';
import { until } from '../support/poll.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
let cluster: RedisClusterSet;
let h: Harness;

beforeAll(async () => {
  dir = await tempDir('feed-cluster');
  cluster = await RedisClusterSet.create(dir.path);
  h = await startHarness({ label: 'feed-cluster', redisUrl: cluster.url, workers: false });
}, 120_000);

afterAll(async () => {
  await Promise.race([h?.stop(), new Promise((resolve) => setTimeout(resolve, 15_000))]);
  await cluster?.stop();
  await dir?.remove();
});

/** The node holding the feed's subscriber connection (the one client in subscriber mode), and its client id. */
async function subscriberConnection(): Promise<{ node: RedisServer; id: string } | undefined> {
  for (const node of cluster.nodes) {
    const line = String(await node.command('CLIENT', 'LIST'))
      .split('\n')
      .find((l) => / sub=[1-9]/.test(l));
    if (line) return { node, id: /\bid=(\d+)/.exec(line)![1]! };
  }
  return undefined;
}

it('a change published while the Cluster subscriber connects again reaches the listeners once it is back, in order, once', async () => {
  const got: SecretChange[] = [];
  const stop = await h.runtime.changes.subscribe((change) => got.push(change));
  await h.runtime.changes.publish({ secret: 'before', event: 'rotated', version: 1 });
  await until(() => Promise.resolve(got.length === 1), 10_000, 'the first change');

  // The log lives on the node serving the prefix's slot. Cut the subscriber until it sits there
  // (ioredis picks a node at random), so that cutting it and publishing can go down one connection.
  const owner = await cluster.ownerOf(h.env.prefix);
  let sub = await subscriberConnection();
  for (let tries = 0; sub?.node !== owner; tries++) {
    expect(tries).toBeLessThan(40);
    if (sub) await sub.node.command('CLIENT', 'KILL', 'ID', sub.id);
    const before = sub;
    await until(async () => {
      const now = await subscriberConnection();
      return !!now && (now.node !== before?.node || now.id !== before?.id);
    }, 10_000, 'the subscriber connected again');
    sub = await subscriberConnection();
  }
  // Nothing published while it moved: the listeners have seen the first change only.
  expect(got.map((c) => c.secret)).toEqual(['before']);

  // On the publisher's own connection to that node, in this order: the subscriber is cut, then
  // the change is logged and published while nobody listens.
  const publisherToOwner = (h.runtime.redis as Cluster).nodes('master').find((n) => n.options.port === owner.port)!;
  const cut = publisherToOwner.client('KILL', 'ID', sub.id);
  const gap = h.runtime.changes.publish({ secret: 'gap', event: 'revoked', version: 1 });
  expect(await cut).toBe(1);
  await gap;

  await until(async () => !!(await subscriberConnection()), 10_000, 'the subscriber connected again');
  await h.runtime.changes.publish({ secret: 'after', event: 'rotated', version: 2 });
  await until(() => Promise.resolve(got.some((c) => c.secret === 'after')), 10_000, 'the change published after the reconnection');
  // Anything the catch-up would still hand out arrives within a moment.
  await new Promise((resolve) => setTimeout(resolve, 300));
  stop();
  expect(got.map((c) => c.secret)).toEqual(['before', 'gap', 'after']);
});
