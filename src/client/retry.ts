/**
 * Requests to `rekey server` with retries: exponential backoff with full jitter on what may
 * pass a moment later (network failures, 429 with its Retry-After, 5xx), none on a refusal.
 * Errors and log events carry codes and numbers only: never a credential, token or value.
 */

/** What the logger hook receives: a fixed code and, for some, numbers. Never a value or a token. */
export type ClientLogCode =
  | 'token_issued'
  | 'token_refresh_failed'
  | 'secret_fetched'
  | 'secret_unchanged'
  | 'secret_refresh_failed'
  | 'retrying'
  | 'stream_open'
  | 'stream_event'
  | 'stream_closed'
  /** A stream brought nothing, not even a keep-alive, for its idle limit: dropped, then opened again. */
  | 'stream_idle'
  | 'stream_retrying'
  /** A `subscribe()` listener threw: the change was handled (the cache), the stream goes on. */
  | 'listener_failed';

export interface ClientLogEvent {
  code: ClientLogCode;
  /** HTTP status, when an answer came. */
  status?: number;
  attempt?: number;
  delayMs?: number;
}

export type ClientLogger = (event: ClientLogEvent) => void;

/** Why a call failed, as a code. */
export type ClientErrorCode =
  /** The server refused the credential (400 invalid_request on /v1/token, 401 elsewhere). */
  | 'unauthenticated'
  /** Authenticated, but no grant gives this subject that token or secret. */
  | 'forbidden'
  /** The server has no delivery configured (404). */
  | 'not_configured'
  /** Still failing (5xx, 429, network) after the last retry. */
  | 'unavailable'
  /** An answer that is not what the protocol says. */
  | 'protocol'
  /** The caller aborted. */
  | 'aborted'
  /** A secret name with a `.` or `..` segment: its URL would name another path (nothing is sent). */
  | 'invalid_name';

export class RekeyClientError extends Error {
  constructor(
    readonly code: ClientErrorCode,
    /** HTTP status of the last answer, if one came. */
    readonly status?: number,
    /** The server's RFC 6749 error code (`invalid_target`, `slow_down`, ...), if one came. */
    readonly error?: string,
  ) {
    super(`rekey client: ${code}${status ? ` (HTTP ${status}${error ? ` ${error}` : ''})` : ''}`);
    this.name = 'RekeyClientError';
  }
}

export interface RetryPolicy {
  /** Attempts in all, the first included. @defaultValue 5 */
  attempts: number;
  /** Delay cap of the first retry; doubles each retry. @defaultValue 200 */
  baseMs: number;
  /**
   * No backoff above this (a server's Retry-After comes on top); a Retry-After longer than this
   * ends the call `unavailable` at once (a retry sooner would be refused again, and a proxy's
   * `Retry-After: 3600` would hold the caller for an hour). @defaultValue 10000
   */
  maxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseMs: 200, maxMs: 10_000 };

/** Full jitter (a random delay between 0 and the exponential cap), so clients refused together do not return together. */
export function backoff(policy: RetryPolicy, attempt: number, random = Math.random): number {
  return Math.floor(random() * Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1)));
}

/** Resolves after `ms`, or rejects with `aborted` when `signal` fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new RekeyClientError('aborted'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new RekeyClientError('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const retryable = (status: number) => status === 429 || status >= 500;

/** The error a final answer means. */
export function refusal(status: number, error: string | undefined, unauthenticated: number): RekeyClientError {
  if (status === unauthenticated && (status !== 400 || error === 'invalid_request')) return new RekeyClientError('unauthenticated', status, error);
  if (status === 403 || error === 'invalid_target' || error === 'insufficient_scope') return new RekeyClientError('forbidden', status, error);
  if (status === 404) return new RekeyClientError('not_configured', status, error);
  if (retryable(status)) return new RekeyClientError('unavailable', status, error);
  return new RekeyClientError('protocol', status, error);
}

/**
 * Sends `send()`'s request until an answer that is not worth retrying (returned as is: 2xx,
 * 3xx, and 4xx but 429), or throws `unavailable` after the last attempt, or at once when a
 * `Retry-After` asks for a longer wait than the policy's `maxMs`. `send` runs again for
 * each attempt, so a fresh credential is read each time.
 */
export async function withRetry(
  send: (signal: AbortSignal) => Promise<Response>,
  options: { policy: RetryPolicy; log: ClientLogger; signal?: AbortSignal; timeoutMs: number },
): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    let last: { status?: number; error?: string } = {};
    if (options.signal?.aborted) throw new RekeyClientError('aborted');
    const signal = options.signal ? AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs)]) : AbortSignal.timeout(options.timeoutMs);
    let retryAfterMs = 0;
    try {
      const response = await send(signal);
      if (!retryable(response.status)) return response;
      last = { status: response.status, error: await errorCode(response) };
      retryAfterMs = retryAfterOf(response);
    } catch (error) {
      if (error instanceof RekeyClientError || options.signal?.aborted) throw error instanceof RekeyClientError ? error : new RekeyClientError('aborted');
    }
    // A retry before Retry-After (a subject over a limit of few requests per window) is refused again, and one
    // after a wait longer than the policy allows holds the caller past what it agreed to wait: the call ends here.
    if (attempt >= options.policy.attempts || retryAfterMs > options.policy.maxMs) throw new RekeyClientError('unavailable', last.status, last.error);
    // The jitter is added to Retry-After, not compared with it: clients refused together (a busy server) come back spread out.
    const delayMs = retryAfterMs + backoff(options.policy, attempt);
    options.log({ code: 'retrying', attempt, delayMs, ...(last.status ? { status: last.status } : {}) });
    await sleep(delayMs, options.signal);
  }
}

/**
 * The wait a refusal's `Retry-After` (RFC 9110 §10.2.3) asks for, in ms; 0 when absent, past or
 * unreadable. Delay-seconds or an HTTP date, the date read against the answer's own `Date` (a client
 * whose clock is off waits what the server meant). The same rule as src/core/kit/retry-after.ts,
 * which the client library cannot import (it imports only node: built-ins and itself).
 */
export function retryAfterOf(response: Response): number {
  const header = response.headers.get('retry-after')?.trim();
  if (!header) return 0;
  const serverNow = Date.parse(response.headers.get('date') ?? '');
  const ms = /^\d+$/.test(header) ? Number(header) * 1000 : Date.parse(header) - (Number.isNaN(serverNow) ? Date.now() : serverNow);
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

/** The `error` field of an RFC 6749 error answer (a fixed code), or undefined. */
export async function errorCode(response: Response): Promise<string | undefined> {
  try {
    const body = (await response.json()) as { error?: unknown };
    return typeof body.error === 'string' && /^[a-z_]{1,40}$/.test(body.error) ? body.error : undefined;
  } catch {
    return undefined;
  }
}
