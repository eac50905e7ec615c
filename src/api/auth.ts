/**
 * Authentication of every admin API request, before anything else of it is read (an
 * onRequest hook: no body parsed, no route's handler run, unknown paths included):
 *
 *   1. admission (src/http/admission.ts, shared with the other authenticated receivers): 503
 *      when too many requests await authentication (from unproven sources, or at all), 429 when
 *      the source has its own cap of them or is over its limit of failed authentications and
 *      such sources already hold their share; authenticated callers are never charged for
 *      anyone's failures, and an authenticated request makes its source proven;
 *   2. `Authorization: Bearer <token>`: 401 REKEY_API_UNAUTHENTICATED without one, 401
 *      REKEY_API_TOKEN_INVALID for an unknown, revoked or expired token (one answer for all),
 *      each counted against the source;
 *      or, without that header, the dashboard's session cookie (src/api/sessions.ts): 401
 *      REKEY_API_SESSION_INVALID for an unknown or ended session or one whose token is no
 *      longer live (counted too), and 403 REKEY_API_CSRF for a state-changing request without
 *      the session's CSRF token; a session's idle time starts again only on its person's action
 *      (a change with the CSRF token, or `X-Rekey-Activity: 1`), never on the page's polling;
 *      a session of a person (OpenID Connect) is refused the same way once none of their
 *      groups maps to a scope under the applied config;
 *   3. the caller (token or person, scopes, audit actor `token:<name>` or `oidc:<issuer>#<subject>`, the
 *      session) is attached to the request.
 *
 * Every answer, refusals included, carries `Cache-Control: no-store` and
 * `X-Content-Type-Options: nosniff` (PRIVATE_ANSWER).
 *
 * Nothing here logs a header or echoes what was sent.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Admission, Refusal } from '../http/admission.js';
import { isRefusal } from '../http/admission.js';
import type { Db } from '../db/client.js';
import { personActor } from './actors.js';
import { type ProblemCode, sendProblem } from './problems.js';
import type { Caller } from './route.js';
import { Access } from './scopes.js';
import { ACTIVITY_HEADER, CSRF_HEADER, csrfMatches, personId, type Session, type Sessions } from './sessions.js';
import { findToken, findTokenById, type TokenInfo } from './tokens.js';

/** Methods that change nothing: the only ones a session cookie authenticates without the CSRF token. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

type Identified = { principal: Caller['principal']; actor: string; token?: TokenInfo; session?: Session } | { problem: ProblemCode; failed: boolean };

/** Headers of every answer under an authenticated scope (the admin API, the dashboard's session routes). */
export const PRIVATE_ANSWER: Readonly<Record<string, string>> = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

/** The problem answered for each reason admission refuses a request (src/http/admission.ts). */
export const ADMISSION_PROBLEMS: Readonly<Record<Refusal['reason'], ProblemCode>> = {
  busy: 'REKEY_API_BUSY',
  source_busy: 'REKEY_API_SOURCE_BUSY',
  auth_failures: 'REKEY_API_TOO_MANY_FAILURES',
};

/** lastUsedAt is written at most this often per token: reads must not turn into a write each. */
const LAST_USED_EVERY_MS = 60_000;

export class Authenticator {
  private readonly callers = new WeakMap<FastifyRequest, Caller>();
  private readonly lastUsed = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly admission: Admission,
    private readonly sessions: Sessions,
  ) {}

  /** The onRequest hook: answers and ends the request unless it is authenticated. */
  readonly hook = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    // Every answer is one caller's, refusals included: no browser or shared cache keeps it (the
    // back button after signing out, a proxy between the dashboard and rekey), and no browser
    // sniffs its JSON into a page.
    reply.headers(PRIVATE_ANSWER);
    const admitted = this.admission.enter(request.ip, reply.raw);
    if (isRefusal(admitted)) {
      reply.header('retry-after', String(admitted.retryAfter));
      return sendProblem(reply, ADMISSION_PROBLEMS[admitted.reason]);
    }
    try {
      const identified = await this.identify(request);
      if ('problem' in identified) {
        if (identified.failed) this.admission.failed(request.ip);
        if (identified.problem === 'REKEY_API_UNAUTHENTICATED' || identified.problem === 'REKEY_API_TOKEN_INVALID') reply.header('www-authenticate', 'Bearer realm="rekey"');
        return sendProblem(reply, identified.problem);
      }
      const { principal, actor, token, session } = identified;
      this.admission.succeeded(request.ip);
      this.callers.set(request, { principal, access: new Access(principal.scopes), actor, ...(session ? { session } : {}) });
      if (token) this.touch(token.id);
      return undefined;
    } finally {
      admitted.release();
    }
  };

  private async identify(request: FastifyRequest): Promise<Identified> {
    const header = request.headers.authorization;
    const sessionId = header === undefined ? this.sessions.idFrom(request.headers.cookie) : undefined;
    if (sessionId === undefined) {
      const presented = typeof header === 'string' && /^Bearer [\x21-\x7e]+$/i.test(header) ? header.slice(7) : undefined;
      const token = presented === undefined ? undefined : await findToken(this.db, presented);
      return token ? { principal: token, actor: `token:${token.name}`, token } : { problem: presented === undefined ? 'REKEY_API_UNAUTHENTICATED' : 'REKEY_API_TOKEN_INVALID', failed: true };
    }
    // SameSite=Strict already keeps the cookie off cross-site requests; the token is the second lock.
    const safe = SAFE_METHODS.has(request.method);
    const csrf = !safe && csrfMatches(sessionId, request.headers[CSRF_HEADER]);
    // A person's action starts the idle time again: a change (its CSRF token proves the page sent
    // it) or a read the page marks as following its person's input. The page's polls are neither,
    // so a dashboard left open still times out. Only the page's script can set the header: a
    // cross-origin request with it needs a CORS preflight that nothing here answers.
    const session = await this.sessions.find(sessionId, safe ? request.headers[ACTIVITY_HEADER] === '1' : csrf);
    const signedIn = session && (await this.signedIn(session));
    if (!session || !signedIn) return { problem: 'REKEY_API_SESSION_INVALID', failed: true };
    if (!safe && !csrf) return { problem: 'REKEY_API_CSRF', failed: false };
    return { ...signedIn, session };
  }

  /** Who a session signs in now: its token while live, or its person while their groups map to a scope. */
  private async signedIn(session: Session): Promise<{ principal: Caller['principal']; actor: string; token?: TokenInfo } | undefined> {
    if ('tokenId' in session) {
      const token = await findTokenById(this.db, session.tokenId);
      return token && { principal: token, actor: `token:${token.name}`, token };
    }
    const scopes = await this.sessions.scopesOf(session.person);
    if (!scopes.length) return undefined;
    return { principal: { id: personId(session.person), name: session.person.name, scopes }, actor: personActor(session.person) };
  }

  /** The caller of an authenticated request. */
  caller(request: FastifyRequest): Caller {
    const caller = this.callers.get(request);
    if (!caller) throw new Error('request not authenticated'); // the hook runs first on every route of the scope
    return caller;
  }

  private touch(tokenId: string): void {
    const now = Date.now();
    if (now - (this.lastUsed.get(tokenId) ?? 0) < LAST_USED_EVERY_MS) return;
    this.lastUsed.set(tokenId, now);
    void this.db.apiToken.update({ where: { id: tokenId }, data: { lastUsedAt: new Date(now) } }).catch(() => undefined);
  }
}
