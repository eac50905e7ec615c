/**
 * `Idempotency-Key` for admin API actions: the first request with a key acts and its answer
 * is kept (PostgreSQL, per token and key, for IDEMPOTENCY_TTL_MS); a retry with the same key
 * and the same request gets that answer again without acting, one still in progress is told
 * so (409), and the same key with another request is refused (422). A request that failed
 * keeps nothing, so its retry acts; so does the retry of one that never answered
 * (IN_PROGRESS_MS). Each claim has an id of its own: only the request holding it settles,
 * releases or refreshes the row, and a request still acting refreshes it (CLAIM_REFRESH_MS),
 * so only a dead request's claim is taken over, and one taken over writes nothing.
 * Expired answers are deleted hourly by every server's housekeeping (`idempotency-purge`), and a key's own expired answer when it is used again. Answers of actions carry ids and states, never a value.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Db } from '../db/client.js';
import type { JsonValue } from '../core/ports.js';
import { ApiProblem } from './problems.js';

/** How long an answer is replayed for its key. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,200}$/;

/**
 * A claim still without an answer this long after it was made or last refreshed belongs to a request
 * that will never answer (its server died mid-request, or the answer or the release could not be
 * written): a retry takes it over and acts, instead of being told "in progress" until the claim
 * expires a day later. A request still acting refreshes its claim every CLAIM_REFRESH_MS (keepFresh),
 * however long it acts (a whole-log audit walk).
 */
export const IN_PROGRESS_MS = 5 * 60_000;

/** How often a request still acting refreshes its claim: five times within IN_PROGRESS_MS. */
export const CLAIM_REFRESH_MS = 60_000;

/** What to answer instead (a replay), or the claim this request acts under: its id, for settle, release and keepFresh. */
export type Claimed = { replay: { status: number; response: JsonValue }; claim?: undefined } | { replay?: undefined; claim: string };

export function requestHash(method: string, path: string, body: unknown): string {
  return createHash('sha256').update(JSON.stringify([method, path, body ?? null])).digest('hex');
}

/**
 * Claims `key` for this request, or says what to answer instead.
 * @throws ApiProblem REKEY_API_IDEMPOTENCY_IN_PROGRESS, REKEY_API_IDEMPOTENCY_MISMATCH
 */
export async function claim(db: Db, tokenId: string, key: string, request: string): Promise<Claimed> {
  await db.apiIdempotency.deleteMany({ where: { tokenId, key, createdAt: { lt: new Date(Date.now() - IDEMPOTENCY_TTL_MS) } } });
  const id = randomUUID();
  const { count } = await db.apiIdempotency.createMany({ data: [{ tokenId, key, request, claim: id }], skipDuplicates: true });
  if (count === 1) return { claim: id };
  const row = await db.apiIdempotency.findUnique({ where: { tokenId_key: { tokenId, key } } });
  if (!row) return claim(db, tokenId, key, request); // expired and removed in between
  if (row.request !== request) throw new ApiProblem('REKEY_API_IDEMPOTENCY_MISMATCH');
  if (row.status === null) {
    if (row.createdAt.getTime() > Date.now() - IN_PROGRESS_MS) throw new ApiProblem('REKEY_API_IDEMPOTENCY_IN_PROGRESS');
    // Abandoned: taken over by one retry only (the claim's id is the lock), which acts as a first request. The request
    // that made it, should it still be alive after all, can no longer settle, release or refresh it.
    const { count: taken } = await db.apiIdempotency.updateMany({ where: { tokenId, key, status: null, claim: row.claim }, data: { claim: id, createdAt: new Date() } });
    return taken === 1 ? { claim: id } : claim(db, tokenId, key, request);
  }
  return { replay: { status: row.status, response: row.response as JsonValue } };
}

/** Keeps the answer of the request holding `claimId`; false (nothing written) when its claim was taken over. */
export async function settle(db: Db, tokenId: string, key: string, claimId: string, status: number, response: JsonValue): Promise<boolean> {
  const { count } = await db.apiIdempotency.updateMany({ where: { tokenId, key, claim: claimId, status: null }, data: { status, response: response as object } });
  return count === 1;
}

/** Marks the claim `claimId` as still acting, now; false when it is no longer this request's (taken over, or answered). */
export async function refresh(db: Db, tokenId: string, key: string, claimId: string): Promise<boolean> {
  const { count } = await db.apiIdempotency.updateMany({ where: { tokenId, key, claim: claimId, status: null }, data: { createdAt: new Date() } });
  return count === 1;
}

/**
 * Refreshes the claim every `everyMs` while its request acts, so a retry is told "in progress" however
 * long the action takes; stop() (in a finally) ends it. A refresh that fails is tried again at the next
 * tick; one that finds the claim gone or another's stops the refreshing.
 */
export function keepFresh(db: Db, tokenId: string, key: string, claimId: string, everyMs = CLAIM_REFRESH_MS): { stop(): void } {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    refresh(db, tokenId, key, claimId)
      .then((held) => {
        if (!held) clearInterval(timer);
      })
      .catch(() => undefined)
      .finally(() => (busy = false));
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** Deletes every kept answer older than IDEMPOTENCY_TTL_MS (per-process housekeeping; idempotent). Answers how many. */
export async function purgeIdempotency(db: Db, now = Date.now()): Promise<number> {
  return (await db.apiIdempotency.deleteMany({ where: { createdAt: { lt: new Date(now - IDEMPOTENCY_TTL_MS) } } })).count;
}

/** The action failed: forget the key, so a retry acts; unless the claim `claimId` was taken over, which stays its taker's. */
export async function release(db: Db, tokenId: string, key: string, claimId: string): Promise<void> {
  await db.apiIdempotency.deleteMany({ where: { tokenId, key, claim: claimId, status: null } });
}
