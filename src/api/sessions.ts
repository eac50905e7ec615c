/**
 * Dashboard sessions: an admin API token exchanged for a session cookie (POST /ui/session),
 * so the browser never keeps the token. A session is 32 random bytes; Redis keeps only its
 * SHA-256 (with the token's id), so every server replica finds it and a dump of Redis holds
 * nothing that signs anyone in. A session ends SESSION_IDLE_MS after the last action of its
 * person (Redis forgets it) and SESSION_TTL_MS after sign-in however busy it is (its expiresAt).
 * An action is a state-changing request (with the CSRF token) or one that says so in
 * `X-Rekey-Activity: 1`, which the dashboard sends when the page is opened and when its person
 * types, clicks or scrolls; the page's own polling does not, so a tab left open times out like
 * a closed one. The session authenticates as its token,
 * looked up again on every request: revoking or expiring the token ends its sessions at once.
 * A session of a person signed in with OpenID Connect (src/dashboard/oidc.ts) keeps their
 * issuer, subject and groups instead, and their scopes are mapped from the groups by the applied
 * config on every request: removing a group from `dashboard.oidc.groups`, or naming another
 * provider in `dashboard.oidc.issuer`, takes effect at once.
 *
 * Every session's hash is also listed in one set (`dashboard-sessions`), so an operator can see
 * and end them (`rekey session list|end`): a person removed from their groups at the provider, or
 * whose laptop was lost, keeps a session until it is idle or 8 hours old otherwise, and only
 * they could end it.
 *
 * The cookie is HttpOnly and SameSite=Strict, and Secure unless REKEY_DASHBOARD_COOKIE_SECURE
 * is false (plain-HTTP local development); a Secure cookie is named with the `__Host-` prefix,
 * so no subdomain can plant one. Each session has a CSRF token, an HMAC of the session id, that
 * every state-changing request authenticated by the cookie must send in `X-CSRF-Token`.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { type OidcSignInConfig, scopesOfGroups } from '../config/dashboard.js';
import type { RedisConnection } from '../queue/connection.js';
import { personActor } from './actors.js';
import type { Runtime } from '../runtime.js';

/** A session lasts this long from sign-in, whatever it does. */
export const SESSION_TTL_MS = 8 * 3600_000;

/** A session with no request for this long is over. */
export const SESSION_IDLE_MS = 30 * 60_000;

/** The header by which the dashboard says a request follows its person's input (value `1`): it starts the idle time again. */
export const ACTIVITY_HEADER = 'x-rekey-activity';

/** The header carrying the session's CSRF token. */
export const CSRF_HEADER = 'x-csrf-token';

/** A person an OpenID Connect provider signed in: the provider, the ID token's subject, a name to show, their groups. */
export interface Person {
  /** The issuer that signed them in: a subject and groups mean something only at their provider. */
  issuer: string;
  subject: string;
  name: string;
  groups: string[];
}

/** Who a session signs in: the admin API token it was exchanged for, or a person. */
export type Principal = { tokenId: string } | { person: Person };

export type Session = Principal & {
  /** The id as the cookie carries it. */
  id: string;
  expiresAt: Date;
};

/** A session as an operator sees it (`rekey session list`): the SHA-256 of its id, never the id. */
export type ListedSession = Principal & { hash: string; expiresAt: Date };

export class Sessions {
  constructor(
    private readonly redis: RedisConnection,
    private readonly prefix: string,
    readonly secureCookie: boolean,
    private readonly oidc: () => Promise<OidcSignInConfig | undefined>,
  ) {}

  /** A person's scopes under the applied config (none: the session no longer signs anyone in, as when sign-in moved to another provider). */
  async scopesOf(person: Person): Promise<string[]> {
    const config = await this.oidc();
    return config?.issuer === person.issuer ? scopesOfGroups(config, person.groups) : [];
  }

  /** The cookie's name: `__Host-` only for a Secure cookie, which browsers require of it. */
  get cookieName(): string {
    return this.secureCookie ? '__Host-rekey_session' : 'rekey_session';
  }

  private key(id: string): string {
    return this.keyOfHash(this.hashOf(id));
  }

  private keyOfHash(hash: string): string {
    return `${this.prefix}:dashboard-session:${hash}`;
  }

  /** The set of every session's hash (entries of sessions over since are dropped when it is read). */
  private get index(): string {
    return `${this.prefix}:dashboard-sessions`;
  }

  /** The SHA-256 of a session id, as Redis keeps it: names the session to end later without keeping anything that signs in. */
  hashOf(id: string): string {
    return createHash('sha256').update(id).digest('hex');
  }

  /**
   * A new session for `principal`. The one the browser's cookie names (`cookieHeader`), if any,
   * ends: a sign-in replaces the browser's session, so a copy of the old id stops working.
   */
  async create(principal: Principal, cookieHeader?: string, now = Date.now()): Promise<Session> {
    const previous = this.idFrom(cookieHeader);
    if (previous) await this.end(previous);
    const id = randomBytes(32).toString('base64url');
    const expiresAt = new Date(now + SESSION_TTL_MS);
    const hash = this.hashOf(id);
    await this.redis
      .multi()
      .set(this.keyOfHash(hash), JSON.stringify({ ...principal, expiresAt: expiresAt.toISOString() }), 'PX', Math.min(SESSION_IDLE_MS, SESSION_TTL_MS))
      .sadd(this.index, hash)
      .pexpire(this.index, SESSION_TTL_MS)
      .exec();
    return { ...principal, id, expiresAt };
  }

  /**
   * The session of a cookie value, or undefined when it is unknown or over: idle for
   * SESSION_IDLE_MS (Redis forgot it) or past its expiresAt. Finding it for a person's action
   * (`activity`) starts its idle time again; a poll of the page leaves it running.
   */
  async find(id: string, activity: boolean, now = Date.now()): Promise<Session | undefined> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    // One round trip: read it and, for an action, push its expiry SESSION_IDLE_MS ahead (past expiresAt too: refused below, and deleted).
    const stored = activity ? await this.redis.getex(this.key(id), 'PX', SESSION_IDLE_MS) : await this.redis.get(this.key(id));
    if (!stored) return undefined;
    const { expiresAt, ...principal } = JSON.parse(stored) as Principal & { expiresAt: string };
    const session = { ...principal, id, expiresAt: new Date(expiresAt) };
    if (!(session.expiresAt.getTime() > now)) {
      await this.end(id);
      return undefined;
    }
    return session;
  }

  /** Ends a session; idempotent. */
  async end(id: string): Promise<void> {
    await this.endHashed(this.hashOf(id));
  }

  /** Ends the sessions whose ids have the SHA-256s `hashes` (hashOf); idempotent. */
  async endHashed(...hashes: string[]): Promise<void> {
    const valid = hashes.filter((hash) => /^[0-9a-f]{64}$/.test(hash));
    if (!valid.length) return;
    await this.redis.del(...valid.map((hash) => this.keyOfHash(hash)));
    await this.redis.srem(this.index, ...valid);
  }

  /** Every session not over yet (idle ones Redis forgot are dropped from the index as they are found). */
  async list(now = Date.now()): Promise<ListedSession[]> {
    const hashes = await this.redis.smembers(this.index);
    if (!hashes.length) return [];
    const stored = await this.redis.mget(...hashes.map((hash) => this.keyOfHash(hash)));
    const gone = hashes.filter((_, i) => !stored[i]);
    if (gone.length) await this.redis.srem(this.index, ...gone);
    return hashes.flatMap((hash, i) => {
      if (!stored[i]) return [];
      const { expiresAt, ...principal } = JSON.parse(stored[i]) as Principal & { expiresAt: string };
      return new Date(expiresAt).getTime() > now ? [{ ...principal, hash, expiresAt: new Date(expiresAt) }] : [];
    });
  }


  /** The session id a request's Cookie header carries, if any. */
  idFrom(cookieHeader: string | undefined): string | undefined {
    return this.cookieValue(cookieHeader, this.cookieName);
  }

  /** The value of the cookie `wanted` in a Cookie header, if any. */
  cookieValue(cookieHeader: string | undefined, wanted: string): string | undefined {
    for (const part of (cookieHeader ?? '').split(';')) {
      const [name, ...value] = part.trim().split('=');
      if (name === wanted) return value.join('=');
    }
    return undefined;
  }

  /** Set-Cookie for a new session. */
  cookie(session: Session): string {
    return this.attributes(`${this.cookieName}=${session.id}`, Math.floor(SESSION_TTL_MS / 1000));
  }

  /** Set-Cookie that removes the session cookie. */
  clearCookie(): string {
    return this.attributes(`${this.cookieName}=`, 0);
  }

  private attributes(pair: string, maxAge: number): string {
    return `${pair}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${this.secureCookie ? '; Secure' : ''}`;
  }
}

/** The sessions of a runtime's Redis, under its queue prefix. */
export function sessionsOf(runtime: Runtime): Sessions {
  return new Sessions(runtime.redis, runtime.settings.queuePrefix, runtime.settings.dashboardCookieSecure, async () => (await runtime.applied('dashboard'))?.oidc);
}

/**
 * A stable id for a person, shaped as a UUID: it keys their Idempotency-Keys (and the engine keys of
 * their rotations) as a token's id does. Derived from their issuer and subject as their audit actor
 * names them (personActor, escaped: unambiguous), since a subject is unique only at its provider: the
 * same subject at another provider is another person, with keys of their own. Before 2026-12-07 it was
 * derived from the subject alone: answers kept under such an id are no longer found (a retry across the
 * upgrade acts again, as a first request does) and are purged with the rest a day after they were kept.
 */
export function personId(person: { issuer: string; subject: string }): string {
  const hex = createHash('sha256').update(personActor(person)).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** The CSRF token of a session: derived from its id, so nothing more is stored. */
export function csrfToken(sessionId: string): string {
  return createHmac('sha256', sessionId).update('rekey dashboard csrf').digest('base64url');
}

/** Whether `presented` is the session's CSRF token, compared in constant time. */
export function csrfMatches(sessionId: string, presented: unknown): boolean {
  if (typeof presented !== 'string') return false;
  const expected = Buffer.from(csrfToken(sessionId));
  const given = Buffer.from(presented);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
