/**
 * `Idempotency-Key` for admin API actions: the first request with a key acts and its answer
 * is kept (PostgreSQL, per token and key, for IDEMPOTENCY_TTL_MS); a retry with the same key
 * and the same request gets that answer again without acting, one still in progress is told
 * so (409), and the same key with another request is refused (422). A request that failed
 * keeps nothing, so its retry acts; so does the retry of one that never answered
 * (IN_PROGRESS_MS). Expired answers are deleted hourly by every server's
 * housekeeping (`idempotency-purge`), and a key's own expired answer when it is used again. Answers of actions carry ids and states, never a value.
 */
import { createHash } from 'node:crypto';
import type { Db } from '../db/client.js';
import type { JsonValue } from '../core/ports.js';
import { ApiProblem } from './problems.js';

/** How long an answer is replayed for its key. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,200}$/;

/**
 * A claim still without an answer this long after it was made belongs to a request that will never
 * answer (its server died mid-request, or the answer or the release could not be written): a retry
 * takes it over and acts, instead of being told "in progress" until the claim expires a day later.
 * Far longer than any action takes (their provider calls have timeouts of their own).
 */
export const IN_PROGRESS_MS = 5 * 60_000;

export type Claimed = { replay: { status: number; response: JsonValue } } | { replay?: undefined };

export function requestHash(method: string, path: string, body: unknown): string {
  return createHash('sha256').update(JSON.stringify([method, path, body ?? null])).digest('hex');
}

/**
 * Claims `key` for this request, or says what to answer instead.
 * @throws ApiProblem REKEY_API_IDEMPOTENCY_IN_PROGRESS, REKEY_API_IDEMPOTENCY_MISMATCH
 */
export async function claim(db: Db, tokenId: string, key: string, request: string): Promise<Claimed> {
  await db.apiIdempotency.deleteMany({ where: { tokenId, key, createdAt: { lt: new Date(Date.now() - IDEMPOTENCY_TTL_MS) } } });
  const { count } = await db.apiIdempotency.createMany({ data: [{ tokenId, key, request }], skipDuplicates: true });
  if (count === 1) return {};
  const row = await db.apiIdempotency.findUnique({ where: { tokenId_key: { tokenId, key } } });
  if (!row) return claim(db, tokenId, key, request); // expired and removed in between
  if (row.request !== request) throw new ApiProblem('REKEY_API_IDEMPOTENCY_MISMATCH');
  if (row.status === null) {
    if (row.createdAt.getTime() > Date.now() - IN_PROGRESS_MS) throw new ApiProblem('REKEY_API_IDEMPOTENCY_IN_PROGRESS');
    // Abandoned: taken over by one retry only (the claim's time is the lock), which acts as a first request.
    const { count: taken } = await db.apiIdempotency.updateMany({ where: { tokenId, key, status: null, createdAt: row.createdAt }, data: { createdAt: new Date() } });
    return taken === 1 ? {} : claim(db, tokenId, key, request);
  }
  return { replay: { status: row.status, response: row.response as JsonValue } };
}

export async function settle(db: Db, tokenId: string, key: string, status: number, response: JsonValue): Promise<void> {
  await db.apiIdempotency.update({ where: { tokenId_key: { tokenId, key } }, data: { status, response: response as object } });
}

/** Deletes every kept answer older than IDEMPOTENCY_TTL_MS (per-process housekeeping; idempotent). Answers how many. */
export async function purgeIdempotency(db: Db, now = Date.now()): Promise<number> {
  return (await db.apiIdempotency.deleteMany({ where: { createdAt: { lt: new Date(now - IDEMPOTENCY_TTL_MS) } } })).count;
}

/** The action failed: forget the key, so a retry acts. */
export async function release(db: Db, tokenId: string, key: string): Promise<void> {
  await db.apiIdempotency.deleteMany({ where: { tokenId, key, status: null } });
}
