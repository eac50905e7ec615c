/**
 * The delivery cache's read-ahead (src/delivery/cache.ts): an entry in use is read again before
 * it expires while requests keep getting the held answer; the new answer replaces it unless the
 * change feed dropped the entry meanwhile; an entry left unread still expires and is waited for.
 * And its recheck of live values for a credential that matched none: read at once, but one read
 * at a time and at most once a second per secret, the held answer otherwise.
 */
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import type { LiveValue } from '../../src/core/provider.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { DeliveryCache } from '../../src/delivery/cache.js';

const call = { signal: new AbortController().signal };
const live = (versionId: string): LiveValue[] => [{ versionId, value: SecretValue.of(`value of ${versionId}`) }];

/** Each read of the source waits until the test answers it (an Error: the read fails). */
function source() {
  const reads: Array<(answer: LiveValue[] | Error) => void> = [];
  const cache = new DeliveryCache(
    {
      current: () => Promise.resolve(undefined),
      signing: () => Promise.resolve(undefined),
      live: () => new Promise<LiveValue[]>((resolve, reject) => reads.push((answer) => (answer instanceof Error ? reject(answer) : resolve(answer)))),
    },
    5000,
  );
  const idsOf = (values: LiveValue[]) => values.map((v) => v.versionId);
  return { cache, reads, ids: async () => idsOf(await cache.live('s', call)), rechecked: async () => idsOf(await cache.live('s', call, true)) };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(0);
});
afterEach(() => vi.useRealTimers());

it('reads an entry in use again before it expires, answering the held one meanwhile', async () => {
  const { reads, ids } = source();
  const first = ids();
  reads[0]!(live('v1'));
  expect(await first).toEqual(['v1']);
  vi.setSystemTime(2000); // 60% of its age left: no read yet
  expect(await ids()).toEqual(['v1']);
  expect(reads).toHaveLength(1);
  vi.setSystemTime(3500); // 30% left: read again in the background, held answer meanwhile
  expect(await ids()).toEqual(['v1']);
  expect(await ids()).toEqual(['v1']);
  expect(reads).toHaveLength(2); // one read ahead, however many requests
  reads[1]!(live('v2'));
  await settle();
  expect(await ids()).toEqual(['v2']);
  // The new entry is dated from when its read started (3.5 s): it expires at 8.5 s.
  vi.setSystemTime(8499);
  expect(await ids()).toEqual(['v2']); // and v2's own read-ahead starts, left unanswered
  expect(reads).toHaveLength(3);
  vi.setSystemTime(8500);
  const expired = ids(); // expired whatever read-ahead is under way: waits for a read of its own
  expect(reads).toHaveLength(4);
  reads[3]!(live('v3'));
  expect(await expired).toEqual(['v3']);
});

it('keeps no read-ahead answer for an entry the change feed dropped meanwhile', async () => {
  const { cache, reads, ids } = source();
  const first = ids();
  reads[0]!(live('v1'));
  await first;
  vi.setSystemTime(3500);
  await ids(); // read-ahead under way
  cache.forget('s'); // the secret rotated
  const fresh = ids(); // waits for a read of its own
  reads[1]!(live('v1')); // the read-ahead answers what it saw before the rotation
  await settle();
  reads[2]!(live('v2'));
  expect(await fresh).toEqual(['v2']);
  expect(await ids()).toEqual(['v2']);
});

it('lets an entry nobody reads expire: the next request waits for a read', async () => {
  const { reads, ids } = source();
  const first = ids();
  reads[0]!(live('v1'));
  await first;
  vi.setSystemTime(5000);
  const next = ids();
  expect(reads).toHaveLength(2);
  reads[1]!(live('v2'));
  expect(await next).toEqual(['v2']);
});

it('rechecks live values at once, one read at a time and at most once a second, the held answer otherwise', async () => {
  const { reads, ids, rechecked } = source();
  const first = ids();
  reads[0]!(live('v1'));
  await first;
  vi.setSystemTime(100); // a credential matched none of v1: read again at once, whatever the entry's age
  const a = rechecked();
  const b = rechecked(); // the same read
  const meanwhile = ids(); // a request whose credential matched keeps the held answer
  expect(reads).toHaveLength(2);
  reads[1]!(live('v2'));
  expect([await a, await b, await meanwhile]).toEqual([['v2'], ['v2'], ['v1']]);
  await settle();
  expect(await ids()).toEqual(['v2']); // the recheck's answer replaced the entry
  vi.setSystemTime(1099); // within a second of the recheck: the held answer, no read
  expect(await rechecked()).toEqual(['v2']);
  expect(reads).toHaveLength(2);
  vi.setSystemTime(1100);
  const c = rechecked();
  expect(reads).toHaveLength(3);
  reads[2]!(live('v3'));
  expect(await c).toEqual(['v3']);
});

it('answers a recheck whose read fails with the held values, and rechecks a secret the change feed dropped with the read it makes anyway', async () => {
  const { cache, reads, ids, rechecked } = source();
  const first = ids();
  reads[0]!(live('v1'));
  await first;
  const failed = rechecked();
  reads[1]!(new Error('store down'));
  expect(await failed).toEqual(['v1']);
  expect(await rechecked()).toEqual(['v1']); // one failed recheck is enough until the entry expires or is dropped
  expect(reads).toHaveLength(2);
  cache.forget('s');
  const fresh = rechecked(); // no entry: one read, as for any request
  expect(reads).toHaveLength(3);
  reads[2]!(live('v3'));
  expect(await fresh).toEqual(['v3']);
});
