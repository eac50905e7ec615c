/**
 * The test-only memory store's cost: the rotation-throughput bench's workers use it for 1,000
 * secrets, so a store call must touch only its own secret's versions, never walk the journal's
 * `stored` (every secret's versions); entries tests set and delete by hand still count.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SecretValue } from '../../src/core/secret-value.js';
import { call, newVersion, stored } from '../conformance/refs.js';
import { journal, memoryProvider } from '../support/memory-provider.js';
import { testProviderContext } from '../support/provider-context.js';

const WALKS = ['entries', 'values', 'keys', 'forEach', Symbol.iterator] as const;

/** Counts every walk over `map` from now on. */
function countWalks(map: Map<string, unknown>): () => number {
  let walks = 0;
  for (const name of WALKS) {
    const walk = (map[name] as (...args: unknown[]) => unknown).bind(map);
    Object.defineProperty(map, name, { configurable: true, value: (...args: unknown[]) => ((walks += 1), walk(...args)) });
  }
  return () => walks;
}

describe('memory store cost', () => {
  const name = `cost-${randomUUID()}`;
  const open = (secret: string) => memoryProvider.open(memoryProvider.config.parse({ journal: name }), testProviderContext('mem')).store!({ secret, params: {} });

  it('serves a secret from its own versions, without walking every secret', async () => {
    for (let i = 0; i < 20; i += 1) {
      const other = open(`other-${i}`);
      const v = newVersion(`other-${i}`);
      await other.promote(stored(v.ref, (await other.writePending(v.ref, v.value, call())).storeVersionId), undefined, null, call());
    }
    const j = journal(name);
    const walks = countWalks(j.stored);
    const store = open('mine');
    const a = newVersion('mine');
    const sa = stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId);
    expect((await store.writePending(a.ref, a.value, call())).storeVersionId).toBe(sa.storeVersionId);
    await store.promote(sa, undefined, null, call());
    const b = newVersion('mine');
    const sb = stored(b.ref, (await store.writePending(b.ref, b.value, call())).storeVersionId);
    await store.promote(sb, sa, { storeVersionId: sa.storeVersionId }, call());
    expect((await store.read({ stage: 'previous' }, call())).equals(a.value)).toBe(true);
    await store.destroy(sa, call());
    expect((await store.list(call())).map((v) => [v.versionId, v.stages])).toEqual([[b.ref.versionId, ['current']]]);
    expect(walks()).toBe(0);
  });

  it('sees the entries a test sets and deletes by hand', async () => {
    const j = journal(name);
    const store = open('by-hand');
    const versionId = randomUUID();
    j.stored.set('set-by-hand', { secret: 'by-hand', versionId, value: SecretValue.of('set-by-hand'), stages: ['current'] });
    expect((await store.read({ stage: 'current' }, call())).reveal()).toBe('set-by-hand');
    expect(await store.list(call())).toEqual([{ storeVersionId: 'set-by-hand', versionId, stages: ['current'] }]);
    j.stored.delete('set-by-hand');
    expect(await store.list(call())).toEqual([]);
  });
});
