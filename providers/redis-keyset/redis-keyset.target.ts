/**
 * Accepted keys as fingerprints (never the keys) in a Redis hash, field = fingerprint,
 * value = consumer. Each change is announced on a Pub/Sub channel so API servers using
 * the keyset middleware (./middleware.ts) see it within milliseconds. A usage source too:
 * the middleware's counters (usage-reader.ts), and a throttled key's value is
 * `throttled:<consumer>`, which the middleware rate-limits.
 */
import { ProviderError } from '../../src/core/errors.js';
import type { Call, Inspection, Target, UsageReading, VersionRef } from '../../src/core/ports.js';
import { sharedRead } from '../../src/core/kit/serial.js';
import { probeKey } from '../../src/core/kit/probe.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import type { KeysetRedis } from './connect.js';
import type { RedisKeysetConfig } from './redis-keyset.schema.js';
import { THROTTLED } from './usage-keys.js';
import type { KeysetUsageReader } from './usage-reader.js';

/** Sets the key's value only when the key is held (a throttle must not bring back a retired key), and announces it. */
const SET_IF_HELD = `if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('PUBLISH', ARGV[3], KEYS[1])
end
return 0`;

/** EXEC resolves even when a command inside failed (WRONGTYPE): each reply is checked, and the first error thrown. */
async function executed(replies: Promise<Array<[Error | null, unknown]> | null>): Promise<void> {
  const results = await replies;
  if (!results) throw new Error('transaction aborted');
  for (const [error] of results) if (error) throw error;
}

export class RedisKeysetTarget implements Target {
  constructor(
    private readonly redis: KeysetRedis,
    private readonly config: RedisKeysetConfig,
    private readonly key: string,
    private readonly provider: string,
    private readonly usage: KeysetUsageReader,
  ) {}

  async deploy(version: VersionRef): Promise<void> {
    await this.run(() => executed(this.redis.multi().hset(this.key, version.fingerprint, version.consumer).publish(this.config.channel, this.key).exec()));
  }

  async verify(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    const present = await this.run(() => this.redis.hexists(this.key, version.fingerprint));
    if (!present) throw this.notAccepted(version, 'not in the keyset');
    // API servers reload the keyset when the change is announced: a refusal right after the deploy is asked again.
    if (this.config.probe) await probeKey(this.config.probe, value, call, this.provider, { untilAccepted: true });
  }

  async retire(version: VersionRef): Promise<void> {
    await this.run(() => executed(this.redis.multi().hdel(this.key, version.fingerprint).publish(this.config.channel, this.key).exec()));
  }

  /** The fingerprints in the set's hash, with their consumers (a throttle is not drift): one HGETALL. */
  async inspect(): Promise<Inspection> {
    const entries = await this.run(() => this.redis.hgetall(this.key));
    return {
      entries: Object.entries(entries).map(([fingerprint, value]) => ({ fingerprint, consumer: value.startsWith(THROTTLED) ? value.slice(THROTTLED.length) : value })),
      holds: 'all',
    };
  }

  /** The middleware's counters of every keyset of this provider (README.md "Usage"); one read per interval. */
  readUsage(windowMs: number): Promise<UsageReading> {
    return sharedRead(this.usage, () => this.run(() => this.usage.read(windowMs)));
  }

  /** Sets the key's value to `throttled:<consumer>` or back to `<consumer>`, when the keyset holds it. */
  async throttle(version: VersionRef, throttled: boolean): Promise<void> {
    const value = throttled ? `${THROTTLED}${version.consumer}` : version.consumer;
    await this.run(() => this.redis.eval(SET_IF_HELD, 1, this.key, version.fingerprint, value, this.config.channel));
  }

  private notAccepted(version: VersionRef, why: string): ProviderError {
    return new ProviderError('REKEY_ERR_VERIFY_FAILED', `${version.secret} v${version.number} is not accepted: ${why}`, { provider: this.provider });
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (cause) {
      throw new ProviderError('REKEY_ERR_UNAVAILABLE', 'redis-keyset: Redis command failed', { provider: this.provider, cause });
    }
  }
}
