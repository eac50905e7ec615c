/**
 * Accepted keys as fingerprints (never the keys) in a Redis hash, field = fingerprint,
 * value = consumer. Each change is announced on a Pub/Sub channel so API servers using
 * the keyset middleware (./middleware.ts) see it within milliseconds.
 */
import { ProviderError } from '../../src/core/errors.js';
import type { Call, Inspection, Target, VersionRef } from '../../src/core/ports.js';
import { probeKey } from '../../src/core/kit/probe.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import type { KeysetRedis } from './connect.js';
import type { RedisKeysetConfig } from './redis-keyset.schema.js';

export class RedisKeysetTarget implements Target {
  constructor(
    private readonly redis: KeysetRedis,
    private readonly config: RedisKeysetConfig,
    private readonly key: string,
    private readonly provider: string,
  ) {}

  async deploy(version: VersionRef): Promise<void> {
    await this.run(() => this.redis.multi().hset(this.key, version.fingerprint, version.consumer).publish(this.config.channel, this.key).exec());
  }

  async verify(version: VersionRef, value: SecretValue, call: Call): Promise<void> {
    const present = await this.run(() => this.redis.hexists(this.key, version.fingerprint));
    if (!present) throw this.notAccepted(version, 'not in the keyset');
    if (this.config.probe) await probeKey(this.config.probe, value, call, this.provider);
  }

  async retire(version: VersionRef): Promise<void> {
    await this.run(() => this.redis.multi().hdel(this.key, version.fingerprint).publish(this.config.channel, this.key).exec());
  }

  /** The fingerprints in the set's hash, with their consumers: one HGETALL. */
  async inspect(): Promise<Inspection> {
    const entries = await this.run(() => this.redis.hgetall(this.key));
    return { entries: Object.entries(entries).map(([fingerprint, consumer]) => ({ fingerprint, consumer })), holds: 'all' };
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
