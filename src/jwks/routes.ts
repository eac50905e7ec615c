/**
 * GET /.well-known/jwks.json: the public keys of every live version (pending, current,
 * previous until its grace ends) whose issuer publishes one (Issuer.publicKey, e.g.
 * jwt-signing-key); a previous key leaves when its grace ends, even if its retirement runs
 * later, and a retired or leaked key with its version. GET /.well-known/jwks/<secret>.json
 * serves one secret's keys.
 *
 * Verifiers may cache the document for REKEY_JWKS_MAX_AGE (Cache-Control max-age, 60 s by
 * default). A key is in it from pending on, and rekey's token exchange signs with it only once
 * it has been current that long (token-exchange.ts signerAt): until then the previous key
 * signs, so a cached document holds the key of every token minted. Each answer carries an
 * ETag, so a verifier that revalidates often (a short cache: the way to stop accepting a leaked
 * key's tokens soon) is answered 304 without the document.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { coalesced } from '../core/kit/serial.js';
import type { JsonObject } from '../core/ports.js';
import { liveKeys } from './target.js';
import type { RouteModule } from '../http/server.js';

/** The document, or 304 when the request's If-None-Match names its ETag (a hash of the document). */
function answer(request: FastifyRequest, reply: FastifyReply, found: JsonObject[], maxAgeMs: number): FastifyReply {
  const body = JSON.stringify({ keys: found });
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  reply.header('cache-control', `public, max-age=${maxAgeMs / 1000}`).header('etag', etag);
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch && ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)) return reply.code(304).send();
  return reply.type('application/json').send(body);
}

export const jwksRoutes: RouteModule = (app, runtime) => {
  // Anyone may ask, unauthenticated: the requests waiting for a document share one read of its keys that
  // starts after each of them arrived (so no answer is older than its request: a leaked key is gone from
  // the next one), and a flood costs PostgreSQL one query per document at a time, not one per request.
  const issuerOf = (name: string) => runtime.resolver.resolve(name).then((r) => r.issuer, () => undefined);
  const prefix = `jwks:${randomUUID()}`;
  const keys = async (secret?: string): Promise<JsonObject[]> => {
    if (secret === undefined) return coalesced(`${prefix}:*`, () => liveKeys(runtime.db, issuerOf));
    // A name the applied config does not hold has no keys: answered without a query, so made-up names cost nothing.
    const known = await runtime.resolver.config().then((config) => Object.hasOwn(config.secrets, secret), () => false);
    return known ? coalesced(`${prefix}:${secret}`, () => liveKeys(runtime.db, issuerOf, { secret })) : [];
  };
  app.get('/.well-known/jwks.json', async (request, reply) => answer(request, reply, await keys(), runtime.settings.jwksMaxAgeMs));
  // Secret names may hold '/', so the secret is the rest of the path.
  app.get<{ Params: { '*': string } }>('/.well-known/jwks/*', async (request, reply) => {
    const path = request.params['*'];
    if (!path.endsWith('.json')) return reply.code(404).send({ error: 'not found' });
    return answer(request, reply, await keys(path.slice(0, -'.json'.length)), runtime.settings.jwksMaxAgeMs);
  });
};
