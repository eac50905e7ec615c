/**
 * `rekey/client`: what an app or workload links to get what `rekey server` delivers
 * (docs/delivery.md) with no key baked in. It proves what it is with a credential it reads
 * when needed (an attestation token, a projected service account token, its client key) and:
 *
 * - `token(audience)`: a short-lived JWT from `POST /v1/token`, cached and renewed before it
 *   expires (at a random point between 3/4 of `refreshAt` and `refreshAt` of its lifetime; the
 *   cached one is used while still valid if the renewal fails, and renewed again only after the
 *   retry policy's `maxMs`);
 * - `secret(name)`: the current value from `GET /v1/secrets/{name}`, cached until its expiry
 *   (never later than the secret's next rotation; read on this clock through the answer's `Date`
 *   when the server's clock is off by more than 2 s), revalidated with `If-None-Match`;
 * - `subscribe(listener)`: the change stream (`GET /v1/events`), reconnected with backoff;
 *   a rotation or revocation drops the cached value at once, so the next `secret()` is fresh,
 *   and a revocation every cached token (it may be their signing key's).
 *
 * Requests go to `url` and nowhere else: a key service never redirects, so a 3xx answer (from the
 * server or a proxy in between) is not followed (the credential would go with it) but is a
 * `protocol` error with its status.
 *
 * Requests are retried with exponential backoff and full jitter. The logger hook receives
 * codes and numbers only; errors are `RekeyClientError` codes. This folder imports nothing but
 * itself and Node's globals (the `rekey/boundaries` lint rule holds it), so an app pays for
 * no database, queue or provider SDK.
 */
import { createHash } from 'node:crypto';
import { follow, type SecretChange } from './events.js';
import { DEFAULT_RETRY, errorCode, refusal, RekeyClientError, withRetry, type ClientLogger, type RetryPolicy } from './retry.js';
import { renewalDelay } from './renew.js';

export { RekeyClientError, type ClientErrorCode, type ClientLogCode, type ClientLogEvent, type ClientLogger, type RetryPolicy } from './retry.js';
export type { SecretChange } from './events.js';

const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
/** How many times a read that a change made stale while it was out is sent again before its answer is handed out uncached. */
const MAX_REREADS = 3;

export interface ClientOptions {
  /** Base URL of `rekey server` (`https://rekey.example.com`): the one it answers at, since a redirect is not followed but fails as `protocol` with its 3xx status. */
  url: string;
  /** The credential this workload proves itself with, read for every request (so a rotated token file is picked up); surrounding whitespace (a file's last newline) is dropped. */
  credential: () => string | Promise<string>;
  /** `subject_token_type` of the credential. @defaultValue JWT; use `urn:ietf:params:oauth:token-type:access_token` for a client key */
  credentialType?: string;
  /**
   * Renew a token or value once a random fraction of its remaining lifetime between 3/4 of this and
   * this has passed (clients do not come back together), but not within 1 s of the last renewal
   * unless it expires sooner: then at its expiry. Above 0, at most 1. @defaultValue 0.8
   */
  refreshAt?: number;
  retry?: Partial<RetryPolicy>;
  /** Per attempt. @defaultValue 10000 */
  timeoutMs?: number;
  /** Receives codes only. @defaultValue nothing logged */
  logger?: ClientLogger;
  fetch?: typeof fetch;
}

export interface IssuedToken {
  token: string;
  /** Date.now() when it expires. */
  expiresAt: number;
}

export interface DeliveredValue {
  secret: string;
  version: number;
  value: string;
  /** Date.now() when it expires: the server's expiry read on this clock. */
  expiresAt: number;
}

/** The endpoints a credential is sent to with retries: the token exchange, the value reads. */
type Endpoint = 'token' | 'secrets';

interface Cached<T> {
  item: T;
  /** Date.now() after which it is renewed before being handed out. */
  renewAt: number;
  expiresAt: number;
  etag?: string;
}

export class RekeyClient {
  private readonly tokens = new Map<string, Cached<IssuedToken>>();
  private readonly values = new Map<string, Cached<DeliveredValue>>();
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly streams = new Set<AbortController>();
  /**
   * By endpoint, the last credential the server refused (its SHA-256, not the credential), until
   * when it is not sent there again, and the refusal: an app asking in a loop with a revoked
   * credential does not make every call a request to the server.
   */
  private readonly refused = new Map<Endpoint, { digest: Buffer; until: number; error: RekeyClientError }>();
  /** Counts close() calls: what a request brings after one is not kept. */
  private closes = 0;
  private readonly policy: RetryPolicy;
  private readonly log: ClientLogger;
  private readonly fetch: typeof fetch;
  private readonly url: string;

  /** @throws RangeError when `refreshAt` is not above 0 and at most 1 (past 1 a cached item would be handed out after its expiry). */
  constructor(private readonly options: ClientOptions) {
    const { refreshAt } = options;
    if (refreshAt !== undefined && !(refreshAt > 0 && refreshAt <= 1)) throw new RangeError('rekey client: refreshAt must be above 0 and at most 1');
    this.url = options.url.replace(/\/+$/, '');
    this.policy = { ...DEFAULT_RETRY, ...options.retry };
    this.log = options.logger ?? (() => {});
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  /** A token for `audience`, from the cache while fresh. */
  async token(audience: string, signal?: AbortSignal): Promise<IssuedToken> {
    return this.cached(this.tokens, `token:${audience}`, audience, 'token_refresh_failed', () => this.exchange(audience), signal);
  }

  /**
   * The current value of `name`, from the cache while fresh.
   * @throws RekeyClientError `invalid_name`, before anything is sent, for a name with a `.` or `..` segment
   */
  async secret(name: string, signal?: AbortSignal): Promise<DeliveredValue> {
    // URLs resolve `.` and `..` segments, so such a name would send the credential to another path.
    if (name.split('/').some((segment) => segment === '.' || segment === '..')) throw new RekeyClientError('invalid_name');
    return this.cached(this.values, `secret:${name}`, name, 'secret_refresh_failed', () => this.read(name), signal);
  }

  /** Forgets every cached token, and the exchanges already out (the next `token()` asks the server). */
  private forgetTokens(): void {
    this.tokens.clear();
    for (const key of this.pending.keys()) if (key.startsWith('token:')) this.pending.delete(key);
  }

  /** Forgets a cached value (the next `secret()` asks the server). */
  invalidate(name: string): void {
    this.values.delete(name);
    // A read already out may carry what made it stale: later callers do not join it, and it fills no cache.
    this.pending.delete(`secret:${name}`);
  }

  /**
   * Follows the change stream until the returned function is called. Before `listener` sees a
   * change, the cached value it makes stale is dropped (a `ready` drops those whose version is
   * no longer current, and every cached token when a version moved on since the last stream
   * reported it: a signing key's revocation may have been missed while it was down; the first
   * `ready` drops every cached token too: they were obtained before anything was followed).
   * A listener that throws is logged `listener_failed`; the stream goes on.
   */
  subscribe(listener: (change: SecretChange) => void): () => void {
    const controller = new AbortController();
    this.streams.add(controller);
    const credential = () => this.credential();
    /** The version of each followed secret the stream last reported (a signing key's too: no value of it is cached). */
    const reported = new Map<string, number | null>();
    let followed = false;
    void follow(
      { url: this.url, credential, policy: this.policy, log: this.log, fetch: this.fetch },
      (change) => {
        let revoked = change.type === 'revoked';
        // The first ready: a token obtained before the stream was followed may be of a key revoked before it opened (no event told of it).
        if (change.type === 'ready' && !followed) revoked = true;
        if (change.type === 'ready') {
          followed = true;
          // The stream was just opened, so its credential was accepted: a refusal remembered is out of date.
          this.refused.clear();
          for (const { secret, version } of change.secrets) {
            if (this.values.get(secret)?.item.version !== version) this.invalidate(secret);
            // A version that moved on while the stream was down may be a revoked signing key's, its `revoked` missed.
            if (reported.has(secret) && reported.get(secret) !== version) revoked = true;
            reported.set(secret, version);
          }
        } else {
          if (change.type === 'revoked' || this.values.get(change.secret)?.item.version !== change.version) this.invalidate(change.secret);
          if (change.type === 'rotated') reported.set(change.secret, change.version);
        }
        // A revoked signing key's tokens are refused everywhere: the events name no audience, so every cached token goes.
        if (revoked) this.forgetTokens();
        try {
          listener(change);
        } catch {
          // The app's failure, not the stream's: taken for a broken connection, it closed the stream and lost what it still carried.
          this.log({ code: 'listener_failed' });
        }
      },
      controller.signal,
    ).finally(() => this.streams.delete(controller));
    return () => controller.abort();
  }

  /** Ends every stream and forgets every token and value, those still on their way too (they are handed to their callers, not kept). */
  close(): void {
    for (const stream of this.streams) stream.abort();
    this.tokens.clear();
    this.values.clear();
    this.refused.clear();
    // Requests still out fill no cache, and are not sent again.
    this.closes++;
    this.pending.clear();
  }

  /**
   * `signal` stops this caller's wait only: the request it may share with others goes on for them (and fills the cache).
   * `rereads`: how many times this caller's read was sent again because a change superseded it.
   */
  private async cached<T>(cache: Map<string, Cached<T>>, key: string, name: string, failed: 'token_refresh_failed' | 'secret_refresh_failed', load: () => Promise<Cached<T> | 'unchanged'>, signal?: AbortSignal, rereads = 0): Promise<T> {
    const now = Date.now();
    const hit = cache.get(name);
    if (hit && now < hit.renewAt) return hit.item;
    // Callers asking at once share one request.
    let running = this.pending.get(key) as Promise<T> | undefined;
    if (!running) {
      // Dropped from `pending` by invalidate(): a change made what this request reads stale while it was out.
      const superseded = () => this.pending.get(key) !== running;
      const closes = this.closes;
      const again = () => closes === this.closes && rereads < MAX_REREADS;
      running = (async () => {
        try {
          const loaded = await load();
          const fresh = loaded === 'unchanged' ? hit! : loaded;
          if (superseded()) {
            // Sent again a few times at most, so a storm of changes cannot keep the caller waiting;
            // then the newest answer is handed out, not cached (the next call asks again).
            if (again()) return this.cached(cache, key, name, failed, load, undefined, rereads + 1);
            return fresh.item;
          }
          cache.set(name, fresh);
          return fresh.item;
        } catch (error) {
          if (superseded()) {
            if (again()) return this.cached(cache, key, name, failed, load, undefined, rereads + 1);
            throw error;
          }
          // A renewal that fails leaves the cached item in use while it is valid.
          const failedAt = Date.now();
          if (hit && failedAt < hit.expiresAt && !(error instanceof RekeyClientError && (error.code === 'unauthenticated' || error.code === 'forbidden'))) {
            this.log({ code: failed });
            // Tried again after the retry policy's longest wait (half of what is left, at most): the calls meanwhile are
            // answered from the cache, not each kept waiting through a new round of failing retries.
            hit.renewAt = failedAt + Math.min(this.policy.maxMs, (hit.expiresAt - failedAt) / 2);
            return hit.item;
          }
          throw error;
        } finally {
          if (!superseded()) this.pending.delete(key);
        }
      })();
      this.pending.set(key, running);
    }
    return signal ? untilAborted(running, signal) : running;
  }

  /** The credential without surrounding whitespace (a file's last newline): no credential rekey takes holds any, and a header value loses it anyway. */
  private async credential(): Promise<string> {
    return String(await this.options.credential()).trim();
  }

  /** At a random point of what is left of the lifetime, never after the expiry (renewalDelay()). */
  private renewAt(expiresAt: number, now = Date.now()): number {
    return now + renewalDelay(expiresAt - now, this.options.refreshAt);
  }

  private async exchange(audience: string): Promise<Cached<IssuedToken>> {
    const response = await this.request(
      (attempt, credential) =>
        this.fetch(`${this.url}/v1/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: new URLSearchParams({ grant_type: GRANT_TYPE, subject_token: credential, subject_token_type: this.options.credentialType ?? JWT_TOKEN_TYPE, audience, requested_token_type: JWT_TOKEN_TYPE }),
          redirect: 'manual',
          signal: attempt,
        }),
      'token',
    );
    const body = (await response.json().catch(() => ({}))) as { access_token?: unknown; expires_in?: unknown };
    if (typeof body.access_token !== 'string' || typeof body.expires_in !== 'number') throw new RekeyClientError('protocol', response.status);
    const now = Date.now();
    const expiresAt = now + body.expires_in * 1000;
    this.log({ code: 'token_issued', status: 200 });
    return { item: { token: body.access_token, expiresAt }, expiresAt, renewAt: this.renewAt(expiresAt, now) };
  }

  private async read(name: string): Promise<Cached<DeliveredValue> | 'unchanged'> {
    const hit = this.values.get(name);
    const etag = hit && Date.now() < hit.expiresAt ? hit.etag : undefined;
    const response = await this.request(
      (attempt, credential) =>
        this.fetch(`${this.url}/v1/secrets/${name.split('/').map(encodeURIComponent).join('/')}`, {
          headers: { authorization: `Bearer ${credential}`, accept: 'application/json', ...(etag ? { 'if-none-match': etag } : {}) },
          redirect: 'manual',
          signal: attempt,
        }),
      'secrets',
      hit ? 304 : undefined,
    );
    if (response.status === 304 && hit) {
      // Still the current version; its expiry is unchanged (a 304 carries none), so look again at a random point of what is left of it.
      this.log({ code: 'secret_unchanged', status: 304 });
      hit.renewAt = this.renewAt(hit.expiresAt);
      return 'unchanged';
    }
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    const expiresAt = typeof body.expiresAt === 'string' ? Date.parse(body.expiresAt) - clockSkew(response) : NaN;
    if (typeof body.value !== 'string' || typeof body.version !== 'number' || !Number.isFinite(expiresAt)) throw new RekeyClientError('protocol', response.status);
    this.log({ code: 'secret_fetched', status: 200 });
    const item = { secret: name, version: body.version, value: body.value, expiresAt };
    return { item, expiresAt, renewAt: this.renewAt(expiresAt), etag: response.headers.get('etag') ?? undefined };
  }

  /**
   * Sends with retries, the credential read for each attempt; an answer other than 200 (and
   * `notModified`) is thrown as its refusal. A credential refused is not sent to that endpoint again
   * for the retry policy's `maxMs`: until then the refusal is thrown again from memory. Another
   * credential is sent at once.
   */
  private async request(send: (signal: AbortSignal, credential: string) => Promise<Response>, endpoint: Endpoint, notModified?: number): Promise<Response> {
    const refused = this.refused.get(endpoint);
    // Read once to compare with the refused one and, when another, sent as it is by the first attempt.
    let read = refused && Date.now() < refused.until ? await this.credential() : undefined;
    if (read !== undefined && refused!.digest.equals(digestOf(read))) {
      throw new RekeyClientError(refused!.error.code, refused!.error.status, refused!.error.error);
    }
    let credential = '';
    const response = await withRetry(
      async (attempt) => {
        credential = read ?? (await this.credential());
        read = undefined;
        return send(attempt, credential);
      },
      { policy: this.policy, log: this.log, timeoutMs: this.options.timeoutMs ?? 10_000 },
    );
    if (response.status === 200 || response.status === notModified) return response;
    // A refused credential: 400 invalid_request from the token endpoint (RFC 8693), 401 elsewhere.
    const error = refusal(response.status, await errorCode(response), endpoint === 'token' ? 400 : 401);
    if (error.code === 'unauthenticated') this.refused.set(endpoint, { digest: digestOf(credential), until: Date.now() + this.policy.maxMs, error });
    throw error;
  }
}

/** A credential's SHA-256: what the client keeps of one the server refused. */
function digestOf(credential: string): Buffer {
  return createHash('sha256').update(credential).digest();
}

/** A skew below this is the Date header's whole seconds and the round trip, not the clocks. */
const SKEW_TOLERANCE_MS = 2_000;

/**
 * How far the server's clock is ahead of this one (negative: behind), by the answer's `Date`
 * header, so a value's `expiresAt` (the server's time) can be read on this clock; 0 when the
 * two agree within the header's precision. Taken at its largest (the header drops the
 * milliseconds): a value is never kept past its expiry for a misread.
 */
function clockSkew(response: Response): number {
  const serverNow = Date.parse(response.headers.get('date') ?? '');
  if (!Number.isFinite(serverNow)) return 0;
  const skew = serverNow - Date.now();
  return Math.abs(skew) > SKEW_TOLERANCE_MS ? skew + 1_000 : 0;
}

/** `promise`, or `aborted` as soon as `signal` fires (the work behind `promise` goes on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new RekeyClientError('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new RekeyClientError('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A client for `options.url`; see {@link RekeyClient}. */
export function createClient(options: ClientOptions): RekeyClient {
  return new RekeyClient(options);
}
