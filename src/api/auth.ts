/**
 * Authentication of every admin API request, before anything else of it is read (an
 * onRequest hook: no body parsed, no route's handler run, unknown paths included):
 *
 *   1. admission (src/http/admission.ts, shared with the other authenticated receivers): 503
 *      when too many requests await authentication, 429 when the source is over its limit of
 *      failed authentications and such sources already hold their share; authenticated
 *      callers are never charged for anyone's failures;
 *   2. `Authorization: Bearer <token>`: 401 REKEY_API_UNAUTHENTICATED without one, 401
 *      REKEY_API_TOKEN_INVALID for an unknown, revoked or expired token (one answer for all),
 *      each counted against the source;
 *   3. the caller (token, scopes, audit actor `token:<name>`) is attached to the request.
 *
 * Nothing here logs a header or echoes what was sent.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Admission } from '../http/admission.js';
import { isRefusal } from '../http/admission.js';
import type { Db } from '../db/client.js';
import { sendProblem } from './problems.js';
import type { Caller } from './route.js';
import { Access } from './scopes.js';
import { findToken } from './tokens.js';

/** lastUsedAt is written at most this often per token: reads must not turn into a write each. */
const LAST_USED_EVERY_MS = 60_000;

export class Authenticator {
  private readonly callers = new WeakMap<FastifyRequest, Caller>();
  private readonly lastUsed = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly admission: Admission,
  ) {}

  /** The onRequest hook: answers and ends the request unless it is authenticated. */
  readonly hook = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const admitted = this.admission.enter(request.ip, reply.raw);
    if (isRefusal(admitted)) {
      reply.header('retry-after', String(admitted.retryAfter));
      return sendProblem(reply, admitted.status === 503 ? 'REKEY_API_BUSY' : 'REKEY_API_TOO_MANY_FAILURES');
    }
    try {
      const header = request.headers.authorization;
      const presented = typeof header === 'string' && /^Bearer [\x21-\x7e]+$/i.test(header) ? header.slice(7) : undefined;
      const token = presented === undefined ? undefined : await findToken(this.db, presented);
      if (!token) {
        this.admission.failed(request.ip);
        reply.header('www-authenticate', 'Bearer realm="rekey"');
        return sendProblem(reply, presented === undefined ? 'REKEY_API_UNAUTHENTICATED' : 'REKEY_API_TOKEN_INVALID');
      }
      this.callers.set(request, { token, access: new Access(token.scopes), actor: `token:${token.name}` });
      this.touch(token.id);
      return undefined;
    } finally {
      admitted.release();
    }
  };

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
