/**
 * `Retry-After` (RFC 9110 §10.2.3) on a 429 or 503: when the server asks to be tried again. Read
 * by the outbound HTTP clients (webhook target, notification destinations) into
 * RekeyErrorOptions.retryAfterMs; the queue's backoff then waits at least that long.
 */

/** The longest `Retry-After` honoured: a server cannot park a job for longer than this per attempt. */
export const RETRY_AFTER_MAX_MS = 60 * 60_000;

/** `Retry-After` (delay-seconds or an HTTP date) in ms from `now`, at most RETRY_AFTER_MAX_MS; undefined when absent, past or unreadable. */
export function retryAfterMs(header: string | null | undefined, now = Date.now()): number | undefined {
  if (header === null || header === undefined) return undefined;
  const text = header.trim();
  const ms = /^\d+$/.test(text) ? Number(text) * 1000 : Date.parse(text) - now;
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, RETRY_AFTER_MAX_MS) : undefined;
}
