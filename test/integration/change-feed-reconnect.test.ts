/**
 * The change feed's subscriber losing its connection (a Redis failover, a proxy or Redis
 * cutting it): ioredis connects and subscribes again, but pub/sub keeps nothing for a
 * subscriber that is away. A change published meanwhile (a revocation that must end the
 * streams relying on it, a rotation the delivery cache must forget) is in the change log, so
 * the feed reads the log from the last change it handed out once it is subscribed again.
 * Publishing sends the script by its SHA-1, and with its text when Redis has forgotten it.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SecretChange } from '../../src/core/model.js';
import { parseRedisUrl } from '../../src/core/redis-endpoint.js';
import { ChangeFeed } from '../../src/delivery/change-feed.js';
import { openRedis } from '../../src/queue/connection.js';
import { startHarness, type Harness } from '../support/harness.js';
import { RedisServer } from '../support/own-services.js';
import { until } from '../support/poll.js';
import { testRedis } from '../support/redis.js';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'feed-reconnect', workers: false });
});
afterAll(() => h?.stop());

it('a change published while the subscriber reconnects reaches the listeners once it is back, in order, once', async () => {
  const got: SecretChange[] = [];
  const stop = await h.runtime.changes.subscribe((change) => got.push(change));
  await h.runtime.changes.publish({ secret: 'before', event: 'rotated', version: 1 });
  await until(() => Promise.resolve(got.length === 1), 10_000, 'the first change');

  const subscriber = (h.runtime.changes as unknown as { subscriber: Redis }).subscriber;
  const ready = once(subscriber, 'ready');
  // Published as soon as the subscriber's connection is gone: the command is written before ioredis
  // even schedules its reconnection (50 ms at the soonest), so Redis runs it while nobody listens.
  const gap = new Promise<void>((resolve, reject) => subscriber.once('close', () => void h.runtime.changes.publish({ secret: 'gap', event: 'revoked', version: 1 }).then(resolve, reject)));
  const admin = testRedis();
  try {
    await admin.client('KILL', 'ADDR', `${subscriber.stream.localAddress}:${subscriber.stream.localPort}`);
  } finally {
    admin.disconnect();
  }
  await gap;
  await ready;
  await h.runtime.changes.publish({ secret: 'after', event: 'rotated', version: 2 });
  await until(() => Promise.resolve(got.some((c) => c.secret === 'after')), 10_000, 'the change published after the reconnection');
  stop();
  expect(got.map((c) => c.secret)).toEqual(['before', 'gap', 'after']);
});

it('a change arriving live after it was handed out (its publication delayed past a catch-up that replayed it) is not handed out again', async () => {
  const got: SecretChange[] = [];
  const stop = await h.runtime.changes.subscribe((change) => got.push(change));
  await h.runtime.changes.publish({ secret: 'first', event: 'rotated', version: 1 });
  await until(() => Promise.resolve(got.some((c) => c.secret === 'first')), 10_000, 'the first change');
  const first = got.find((c) => c.secret === 'first')!;
  // Its message again, as a live copy that reaches the subscriber late (on a Redis Cluster, a
  // publication crosses the cluster bus to the subscriber's node, possibly after the catch-up
  // read it from the log), then a change published after it.
  const admin = testRedis();
  try {
    await admin.publish(`${h.env.prefix}:delivery:changes`, `${first.id} ${JSON.stringify({ secret: 'first', event: 'rotated', version: 1 })}`);
  } finally {
    admin.disconnect();
  }
  await h.runtime.changes.publish({ secret: 'next', event: 'rotated', version: 2 });
  await until(() => Promise.resolve(got.some((c) => c.secret === 'next')), 10_000, 'the change published after it');
  stop();
  expect(got.map((c) => c.secret)).toEqual(['first', 'next']);
});

it('a change is sent by its script SHA-1 once Redis has the script, and reaches the listeners once', async () => {
  const got: SecretChange[] = [];
  const stop = await h.runtime.changes.subscribe((change) => got.push(change));
  // The command names the publisher's connection sends (the first publication may load the script).
  const redis = h.runtime.redis as Redis;
  const send = redis.sendCommand.bind(redis);
  const sent: string[] = [];
  redis.sendCommand = (command, stream) => {
    sent.push(command.name);
    return send(command, stream);
  };
  try {
    await h.runtime.changes.publish({ secret: 'loaded', event: 'rotated', version: 1 });
    sent.length = 0;
    await h.runtime.changes.publish({ secret: 'by-sha-1', event: 'rotated', version: 2 });
    await h.runtime.changes.publish({ secret: 'by-sha-2', event: 'rotated', version: 3 });
  } finally {
    redis.sendCommand = send;
  }
  await until(() => Promise.resolve(got.some((c) => c.secret === 'by-sha-2')), 10_000, 'the changes sent by SHA-1');
  stop();
  expect(sent).toEqual(['evalsha', 'evalsha']);
  expect(got.map((c) => c.secret)).toEqual(['loaded', 'by-sha-1', 'by-sha-2']);
});

it('a Redis that does not have the script (new, restarted, failed over, SCRIPT FLUSH) answers NOSCRIPT: the change is sent with the script, published and received', async () => {
  // A Redis of its own: a SCRIPT FLUSH on the shared one would turn other files' EVALSHA into EVAL (the test above counts them).
  const server = await RedisServer.create();
  const endpoint = parseRedisUrl(server.url);
  const publisher = openRedis(endpoint, { longLived: true }) as Redis;
  const prefix = `test-${randomUUID()}`;
  const feed = new ChangeFeed(publisher, endpoint, prefix, pino({ level: 'silent' }));
  const send = publisher.sendCommand.bind(publisher);
  try {
    const got: SecretChange[] = [];
    const stop = await feed.subscribe((change) => got.push(change));
    const sent: string[] = [];
    publisher.sendCommand = (command, stream) => {
      sent.push(command.name);
      return send(command, stream);
    };
    await feed.publish({ secret: 'new-redis', event: 'rotated', version: 1 });
    await feed.publish({ secret: 'loaded', event: 'rotated', version: 2 });
    await server.command('SCRIPT', 'FLUSH');
    await feed.publish({ secret: 'flushed', event: 'revoked', version: 2 });
    publisher.sendCommand = send;
    await until(() => Promise.resolve(got.some((c) => c.secret === 'flushed')), 10_000, 'the change sent after SCRIPT FLUSH');
    stop();
    expect(sent).toEqual(['evalsha', 'eval', 'evalsha', 'evalsha', 'eval']);
    expect(got.map((c) => c.secret)).toEqual(['new-redis', 'loaded', 'flushed']);
    expect(await publisher.xlen(`${prefix}:delivery:log`)).toBe(3);
  } finally {
    publisher.sendCommand = send;
    await feed.close();
    publisher.disconnect();
    await server.kill();
  }
});
