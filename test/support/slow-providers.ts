/**
 * Test-only providers that are real ones made slow, so a test can SIGKILL a worker in the
 * middle of a step: `slow-keyset` (the redis-keyset target, every call delayed) and
 * `slow-local` (the local store, promote delayed). State lives in Redis and PostgreSQL, so
 * they work across processes (unlike the memory provider).
 */
import { z } from 'zod';
import type { Call, ExpectedCurrent, Inspection, SecretStore, StoredRef, Target, VersionRef } from '../../src/core/ports.js';
import { defineProvider } from '../../src/core/provider.js';
import type { SecretValue } from '../../src/core/secret-value.js';
import local from '../../providers/local/index.js';
import { localConfig } from '../../providers/local/local.schema.js';
import redisKeyset from '../../providers/redis-keyset/index.js';
import { redisKeysetConfig } from '../../providers/redis-keyset/redis-keyset.schema.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class SlowTarget implements Target {
  constructor(
    private readonly inner: Target,
    private readonly delayMs: number,
  ) {}
  async deploy(version: VersionRef, value: SecretValue, call: Call) {
    await sleep(this.delayMs);
    return this.inner.deploy(version, value, call);
  }
  async verify(version: VersionRef, value: SecretValue, call: Call) {
    await sleep(this.delayMs);
    return this.inner.verify(version, value, call);
  }
  async retire(version: VersionRef, call: Call) {
    await sleep(this.delayMs);
    return this.inner.retire(version, call);
  }
  inspect(call: Call): Promise<Inspection> {
    return this.inner.inspect!(call);
  }
}

export const slowKeysetProvider = defineProvider({
  type: 'slow-keyset',
  summary: 'Test-only: redis-keyset with every call delayed',
  config: redisKeysetConfig.extend({ delayMs: z.number().int().min(0).default(300) }),
  bindings: { target: redisKeyset.bindings.target! },
  open(config, ctx) {
    const { delayMs, ...rest } = config;
    const inner = redisKeyset.open(rest, ctx);
    return { target: (binding) => new SlowTarget(inner.target!(binding), delayMs), close: () => inner.close?.() ?? Promise.resolve() };
  },
});

/** The local store with promote delayed: the one slow call of the promote step. */
function slowPromote(inner: SecretStore, delayMs: number): SecretStore {
  return {
    writePending: (version, value, call) => inner.writePending(version, value, call),
    read: (selector, call) => inner.read(selector, call),
    async promote(version: StoredRef, previous: StoredRef | undefined, expected: ExpectedCurrent, call: Call) {
      await sleep(delayMs);
      return inner.promote(version, previous, expected, call);
    },
    destroy: (version, call, options) => inner.destroy(version, call, options),
    list: (call) => inner.list(call),
  };
}

export const slowLocalProvider = defineProvider({
  type: 'slow-local',
  summary: 'Test-only: the local store with promote delayed',
  config: localConfig.extend({ delayMs: z.number().int().min(0).default(300) }),
  bindings: { store: local.bindings.store! },
  open(config, ctx) {
    const { delayMs, ...rest } = config;
    const inner = local.open(rest, ctx);
    return { store: (binding) => slowPromote(inner.store!(binding), delayMs), close: () => inner.close?.() ?? Promise.resolve() };
  },
});
