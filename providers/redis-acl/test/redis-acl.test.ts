// Against the machine's real Redis: every ACL user is unique to this file and deleted after.
// The `default` user is never touched.
import { randomBytes, randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issuerConformance } from '../../../test/conformance/issuer.js';
import { call, issued, newVersion } from '../../../test/conformance/refs.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import { REDIS_URL } from '../../../test/support/services.js';
import redisAcl from '../index.js';

const ENV = `PROVIDERTEST_REDIS_ACL_URL_${process.pid}`;
const created = new Set<string>();
let redis: Redis;

beforeAll(() => {
  process.env[ENV] = REDIS_URL;
  redis = new Redis(REDIS_URL);
});
afterAll(async () => {
  if (created.size) await redis.call('ACL', 'DELUSER', ...created);
  redis.disconnect();
  delete process.env[ENV];
});

function open(params: Record<string, unknown> = {}) {
  const user = `rekey_t_${randomUUID().slice(0, 13)}`;
  created.add(user);
  const instance = redisAcl.open(redisAcl.config.parse({ url: `\${env:${ENV}}` }), testProviderContext('redis-acl'));
  const issuer = instance.issuer!({ secret: 'cache-password', params: redisAcl.bindings.issuer!.parse({ user, ...params }) });
  return { user, issuer, close: () => instance.close!() };
}

issuerConformance(
  'redis-acl',
  () => {
    const { issuer, close } = open();
    const ghost = `rekey_t_ghost_${randomUUID().slice(0, 8)}`;
    created.add(ghost);
    return Promise.resolve({
      issuer,
      secret: 'cache-password',
      unknownState: { user: ghost, sha256: randomBytes(32).toString('hex') },
      cleanup: close,
    });
  },
  { revokeIsObservable: true },
);

describe('redis-acl', () => {
  it('keeps only hashes: the user holds both passwords during the overlap, then one', async () => {
    const { user, issuer, close } = open();
    try {
      const a = await issuer.issue(newVersion('s').ref, call());
      const b = await issuer.issue(newVersion('s').ref, call());
      expect(a.state).toEqual({ user, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown });
      const passwords = async () => {
        const reply = (await redis.call('ACL', 'GETUSER', user)) as unknown[];
        return reply[reply.indexOf('passwords') + 1] as string[];
      };
      expect(await passwords()).toEqual(expect.arrayContaining([a.state.sha256, b.state.sha256]));
      await issuer.revoke(issued(newVersion('s').ref, a.state), call());
      expect(await passwords()).toEqual([b.state.sha256]);
    } finally {
      await close();
    }
  });

  it('applies rules only to a user it creates, and never creates one on revoke', async () => {
    const { user, issuer, close } = open({ rules: ['~cache:*', '+get'] });
    try {
      const ghost = `rekey_t_ghost_${randomUUID().slice(0, 8)}`;
      await issuer.revoke(issued(newVersion('s').ref, { user: ghost, sha256: 'a'.repeat(64) }), call());
      expect(await redis.call('ACL', 'GETUSER', ghost)).toBeNull();

      const { value } = await issuer.issue(newVersion('s').ref, call());
      const client = new Redis(REDIS_URL, { username: user, password: value.reveal(), enableReadyCheck: false, lazyConnect: true });
      try {
        await client.connect();
        expect(await client.get('cache:nothing')).toBeNull();
        await expect(client.set('cache:x', '1')).rejects.toThrow(/NOPERM/);
      } finally {
        client.disconnect();
      }
    } finally {
      await close();
    }
  });

  it('leaves an existing user that its operator turned off, off: a rotation adds a password and enables nothing', async () => {
    const { user, issuer, close } = open();
    try {
      await issuer.issue(newVersion('s').ref, call());
      await redis.call('ACL', 'SETUSER', user, 'off');
      const { value } = await issuer.issue(newVersion('s').ref, call());
      const reply = (await redis.call('ACL', 'GETUSER', user)) as unknown[];
      expect(reply[reply.indexOf('flags') + 1]).toContain('off');
      await expect(issuer.verify(issued(newVersion('s').ref, { user }), value, call())).rejects.toThrow(/AUTH as ACL user/);
    } finally {
      await close();
    }
  });

  it('a failed verify carries the password nowhere in the error, its cause included', async () => {
    const { user, issuer, close } = open();
    try {
      const { ref } = newVersion('s');
      const { value, state } = await issuer.issue(ref, call());
      await issuer.revoke(issued(ref, state), call());
      const error = await issuer.verify(issued(ref, { user }), value, call()).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'REKEY_ERR_VERIFY_FAILED' });
      expect(inspect(error, { depth: Infinity })).not.toContain(value.reveal());
    } finally {
      await close();
    }
  });

  it('refuses to manage the default user and password-changing rules', () => {
    expect(() => redisAcl.bindings.issuer!.parse({ user: 'default' })).toThrow(/never managed/);
    expect(() => redisAcl.bindings.issuer!.parse({ user: 'x', rules: ['nopass'] })).toThrow();
    expect(() => redisAcl.bindings.issuer!.parse({ user: 'x', rules: ['>pw'] })).toThrow();
  });

  it('reports an unreachable server as retryable UNAVAILABLE', async () => {
    const env = `${ENV}_DOWN`;
    process.env[env] = 'redis://127.0.0.1:1';
    try {
      const instance = redisAcl.open(redisAcl.config.parse({ url: `\${env:${env}}` }), testProviderContext('redis-acl'));
      const issuer = instance.issuer!({ secret: 's', params: redisAcl.bindings.issuer!.parse({ user: 'rekey_t_never' }) });
      const error = await issuer.issue(newVersion('s').ref, call(3000)).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: expect.stringMatching(/UNAVAILABLE|TIMEOUT/) as unknown, retryable: true });
      await instance.close!();
    } finally {
      delete process.env[env];
    }
  });
});
