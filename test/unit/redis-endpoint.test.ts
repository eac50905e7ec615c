import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { describeRedis, parseRedisUrl, redisClientPlan } from '../../src/core/redis-endpoint.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { loadSettings } from '../../src/settings.js';

describe('REDIS_URL forms', () => {
  it('a single node, with user, password, database and TLS', () => {
    const e = parseRedisUrl('rediss://rekey:p%40ss@cache.internal:6380/2');
    expect(e).toMatchObject({ mode: 'standalone', nodes: [{ host: 'cache.internal', port: 6380 }], db: 2, username: 'rekey', tls: true });
    expect(e.password?.reveal()).toBe('p@ss');
    expect(redisClientPlan(e)).toEqual({ cluster: false, options: { host: 'cache.internal', port: 6380, db: 2, username: 'rekey', password: 'p@ss', tls: {} } });
    expect(parseRedisUrl('redis://127.0.0.1')).toMatchObject({ nodes: [{ host: '127.0.0.1', port: 6379 }], db: 0, tls: false, password: undefined });
    expect(parseRedisUrl('redis://[::1]:7000').nodes).toEqual([{ host: '::1', port: 7000 }]);
  });

  it('a Sentinel set: sentinels (default port 26379), master name, database; the sentinels\' own credentials', () => {
    const e = parseRedisUrl('rediss+sentinel://:data-pass@s1:26380,s2,s3:26381/mymaster/1?sentinelUsername=watcher', { sentinelPassword: SecretValue.of('sentinel-pass') });
    expect(e).toMatchObject({
      mode: 'sentinel',
      nodes: [{ host: 's1', port: 26380 }, { host: 's2', port: 26379 }, { host: 's3', port: 26381 }],
      masterName: 'mymaster',
      db: 1,
      sentinelUsername: 'watcher',
    });
    expect(redisClientPlan(e)).toEqual({
      cluster: false,
      options: {
        password: 'data-pass',
        tls: {},
        db: 1,
        sentinels: e.nodes,
        name: 'mymaster',
        sentinelUsername: 'watcher',
        sentinelPassword: 'sentinel-pass',
        enableTLSForSentinelMode: true,
        sentinelTLS: {},
      },
    });
    expect(describeRedis(e)).toBe('Redis Sentinel master mymaster via s1:26380,s2:26379,s3:26381 (TLS)');
  });

  it('a Cluster seed list; REDIS_PASSWORD wins over the URL\'s', () => {
    const e = parseRedisUrl('redis+cluster://:old@n1:7000,n2:7001', { password: SecretValue.of('new') });
    expect(redisClientPlan(e)).toEqual({ cluster: true, nodes: [{ host: 'n1', port: 7000 }, { host: 'n2', port: 7001 }], options: { password: 'new' } });
  });

  it('refuses what it cannot honour, naming REDIS_URL and never echoing the password', () => {
    const cases = [
      'http://host:6379',
      'redis://a:6379,b:6379',
      'redis+sentinel://s1:26379',
      'redis+cluster://n1:7000/3',
      'redis://host:6379/x',
      'redis://host:99999',
      'redis://:hunter2@host/0?family=6',
    ];
    for (const url of cases) {
      expect(() => parseRedisUrl(url), url).toThrow(/REDIS_URL/);
      try {
        parseRedisUrl(url);
      } catch (error) {
        expect((error as Error).message).not.toContain('hunter2');
      }
    }
  });

  it('settings: the passwords from their own variables, held as SecretValues; a Cluster needs a hash-tagged prefix', () => {
    const s = loadSettings({ REDIS_URL: 'redis+sentinel://s1,s2/mymaster', REDIS_PASSWORD: 'data-secret', REDIS_SENTINEL_PASSWORD: 'sentinel-secret' });
    expect(s.redis.password?.reveal()).toBe('data-secret');
    expect(s.redis.sentinelPassword?.reveal()).toBe('sentinel-secret');
    expect(JSON.stringify(s)).not.toMatch(/data-secret|sentinel-secret/);
    expect(inspect(s)).not.toMatch(/data-secret|sentinel-secret/);
    expect(() => loadSettings({ REDIS_URL: 'redis+cluster://n1,n2', REKEY_QUEUE_PREFIX: 'rekey' })).toThrow(/REKEY_QUEUE_PREFIX.*hash tag/);
    expect(() => loadSettings({ REDIS_URL: 'redis+cluster://n1,n2', REKEY_QUEUE_PREFIX: 'a{}{b}' })).toThrow(/hash tag/);
    expect(loadSettings({ REDIS_URL: 'redis+cluster://n1,n2', REKEY_QUEUE_PREFIX: 'prod{rekey}' }).queuePrefix).toBe('prod{rekey}');
  });
});
