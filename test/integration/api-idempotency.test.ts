/**
 * Idempotency-Key claims (review-admin finding 4): each claim has an id of its own, so a request
 * whose claim a retry took over neither releases nor settles the retry's; and a request still
 * acting refreshes its claim, so a retry after IN_PROGRESS_MS is told it is in progress instead
 * of acting again (a whole-log audit walk, a drift check with slow targets). No workers: the
 * rotation that gives the secret a current version is driven by hand, and the drift check is
 * held in its store call, so nothing but the test's requests touches the journal.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { claim, CLAIM_REFRESH_MS, IN_PROGRESS_MS, keepFresh, refresh, release, requestHash, settle } from '../../src/api/idempotency.js';
import { adminApiRoutes } from '../../src/api/routes.js';
import { ApiProblem } from '../../src/api/problems.js';
import { buildServer } from '../../src/http/server.js';
import { tokenFor } from '../support/api.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig, type Journal } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

const JOURNAL = `api-idempotency-${randomUUID().slice(0, 8)}`;
let h: Harness;
let j: Journal;
let app: FastifyInstance;
let url: string;

beforeAll(async () => {
  j = journal(JOURNAL);
  h = await startHarness({ label: 'api-idempotency', workers: false });
  await h.apply(memoryConfig(JOURNAL, { pay: 'grace: 1h' }));
  const requested = await h.runtime.engine.requestRotation({ secret: 'pay', trigger: 'manual' });
  if (requested.status === 'stale') throw new Error('stale');
  expect(await h.runtime.engine.driveRotation(requested.run.id, { final: false })).toBe('succeeded');
  app = await buildServer(h.runtime, [adminApiRoutes]);
  url = await app.listen({ host: '127.0.0.1', port: 0 });
}, 60_000);
afterAll(async () => {
  await app?.close();
  await h?.stop();
});
afterEach(() => {
  vi.useRealTimers();
});

const row = (tokenId: string, key: string) => h.runtime.db.apiIdempotency.findUnique({ where: { tokenId_key: { tokenId, key } } });
/** Makes the claim look as old as an abandoned one (its request acting past IN_PROGRESS_MS without a refresh). */
const age = async (tokenId: string, key: string): Promise<Date> => {
  const aged = new Date(Date.now() - IN_PROGRESS_MS - 1000);
  await h.runtime.db.apiIdempotency.update({ where: { tokenId_key: { tokenId, key } }, data: { createdAt: aged } });
  return aged;
};
const inProgress = (attempt: Promise<unknown>) => expect(attempt).rejects.toSatisfy((e) => e instanceof ApiProblem && e.code === 'REKEY_API_IDEMPOTENCY_IN_PROGRESS');

describe('claims', () => {
  const request = requestHash('POST', '/api/v1/audit/verify', {});

  it("A taken over by B: A's release and settle leave B's claim alone, and C is told B is in progress", async () => {
    const tokenId = randomUUID();
    const a = await claim(h.runtime.db, tokenId, 'walk', request);
    expect(a.claim).toEqual(expect.any(String));
    await age(tokenId, 'walk'); // A is still walking, without refreshing: it looks dead
    const b = await claim(h.runtime.db, tokenId, 'walk', request);
    expect(b.claim).toEqual(expect.any(String));
    expect(b.claim).not.toBe(a.claim);

    await release(h.runtime.db, tokenId, 'walk', a.claim!); // A fails at last
    expect(await row(tokenId, 'walk')).toMatchObject({ claim: b.claim, status: null });
    await inProgress(claim(h.runtime.db, tokenId, 'walk', request));
    expect(await refresh(h.runtime.db, tokenId, 'walk', a.claim!)).toBe(false);

    // Had A answered instead: nothing written, B's answer is the one kept and replayed.
    expect(await settle(h.runtime.db, tokenId, 'walk', a.claim!, 200, { who: 'A' })).toBe(false);
    expect(await row(tokenId, 'walk')).toMatchObject({ claim: b.claim, status: null, response: null });
    expect(await settle(h.runtime.db, tokenId, 'walk', b.claim!, 200, { who: 'B' })).toBe(true);
    expect(await claim(h.runtime.db, tokenId, 'walk', request)).toEqual({ replay: { status: 200, response: { who: 'B' } } });
  });

  it('a refreshed claim is not taken over; once its keeper stops, or it is taken over, nothing refreshes it', async () => {
    const tokenId = randomUUID();
    const a = await claim(h.runtime.db, tokenId, 'long', request);
    await age(tokenId, 'long');
    expect(await refresh(h.runtime.db, tokenId, 'long', a.claim!)).toBe(true);
    await inProgress(claim(h.runtime.db, tokenId, 'long', request));

    // The keeper's ticks, stepped by hand (the rest of the process keeps its real timers).
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const kept = keepFresh(h.runtime.db, tokenId, 'long', a.claim!);
    const aged = await age(tokenId, 'long');
    vi.advanceTimersByTime(CLAIM_REFRESH_MS);
    await until(async () => (await row(tokenId, 'long'))!.createdAt > aged, 15_000, 'the keeper refreshed the claim');
    await inProgress(claim(h.runtime.db, tokenId, 'long', request));
    kept.stop();
    expect(vi.getTimerCount()).toBe(0);
    await age(tokenId, 'long');
    const b = await claim(h.runtime.db, tokenId, 'long', request);
    expect(b.claim).toEqual(expect.any(String));

    // A's keeper, still running when B took over, finds the claim another's at its next tick and stops.
    const stale = keepFresh(h.runtime.db, tokenId, 'long', a.claim!);
    const before = (await row(tokenId, 'long'))!.createdAt;
    vi.advanceTimersByTime(CLAIM_REFRESH_MS);
    await until(() => Promise.resolve(vi.getTimerCount() === 0), 15_000, "A's keeper stopped");
    expect(await row(tokenId, 'long')).toMatchObject({ claim: b.claim, createdAt: before });
    stale.stop();
  });
});

describe('an action that outlasts IN_PROGRESS_MS', () => {
  it('keeps its claim fresh while it acts: a retry is told it is in progress, then gets its answer', async () => {
    const token = await tokenFor(h, 'rotator', ['rotate:pay']);
    const { id: tokenId } = await h.runtime.db.apiToken.findUniqueOrThrow({ where: { name: 'rotator' } });
    const post = () =>
      fetch(`${url}/api/v1/secrets/pay/drift-check`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': 'slow-check' }, body: '{}' });

    const lists = () => j.calls.filter((c) => c === 'store.list').length;
    const before = lists();
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const listing = j.hold('store.list');
    const first = post();
    await listing.reached; // A acts: its claim is made and its keeper runs
    const aged = await age(tokenId, 'slow-check'); // ... for longer than IN_PROGRESS_MS
    vi.advanceTimersByTime(CLAIM_REFRESH_MS);
    await until(async () => (await row(tokenId, 'slow-check'))!.createdAt > aged, 15_000, "the request's keeper refreshed its claim");

    const retry = await post();
    expect({ status: retry.status, code: ((await retry.json()) as { code?: string }).code }).toEqual({ status: 409, code: 'REKEY_API_IDEMPOTENCY_IN_PROGRESS' });
    expect(lists()).toBe(before + 1);

    listing.release();
    const answered = await first;
    expect(answered.status).toBe(200);
    const answer: unknown = await answered.json();
    expect(vi.getTimerCount()).toBe(0); // its keeper stopped with it
    const replayed = await post();
    expect({ status: replayed.status, replayed: replayed.headers.get('idempotent-replayed'), answer: await replayed.json() }).toEqual({ status: 200, replayed: 'true', answer });
    expect(lists()).toBe(before + 1);
  });
});
