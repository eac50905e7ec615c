/**
 * GET /.well-known/jwks.json: the public keys of every live version (pending, current,
 * previous) whose issuer publishes one (Issuer.publicKey, e.g. jwt-signing-key).
 * Pending keys are published before signers switch to them, so verifiers that cache the
 * document already know a key when the first token signed with it arrives; a retired
 * key leaves the document with its version. GET /.well-known/jwks/<secret>.json serves
 * one secret's keys.
 */
import type { JsonObject } from '../core/ports.js';
import { liveKeys } from './target.js';
import type { Runtime } from '../runtime.js';
import type { RouteModule } from '../http/server.js';

const keys = (runtime: Runtime, secret?: string): Promise<JsonObject[]> =>
  liveKeys(runtime.db, (name) => runtime.resolver.resolve(name).then((r) => r.issuer, () => undefined), secret ? { secret } : {});

export const jwksRoutes: RouteModule = (app, runtime) => {
  app.get('/.well-known/jwks.json', async (_request, reply) =>
    reply.header('cache-control', 'public, max-age=60').send({ keys: await keys(runtime) }),
  );
  // Secret names may hold '/', so the secret is the rest of the path.
  app.get<{ Params: { '*': string } }>('/.well-known/jwks/*', async (request, reply) => {
    const path = request.params['*'];
    if (!path.endsWith('.json')) return reply.code(404).send({ error: 'not found' });
    const found = await keys(runtime, path.slice(0, -'.json'.length));
    return reply.header('cache-control', 'public, max-age=60').send({ keys: found });
  });
};
