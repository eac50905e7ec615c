// The set-up the JWKS tests share: a harness serving the JWKS routes, with one ES256 signing
// key (`session-signing` unless named) in the local store, published (`publish: jwks`) to a memory target.
import { randomUUID } from 'node:crypto';
import { jwtSignerFromValue } from '../../providers/jwt-signing-key/jwks.js';
import { jwksRoutes } from '../../src/jwks/routes.js';
import { startHarness, type Harness } from './harness.js';
import { journal, type Journal } from './memory-provider.js';

/** Started and applied; `pushed` is the journal of what the `publish: jwks` target received. */
export async function startJwksHarness(label: string, o: { grace: string; secret?: string }): Promise<{ h: Harness; pushed: Journal }> {
  const name = `${label}-${randomUUID()}`;
  const pushed = journal(name);
  const h = await startHarness({ label, routes: [jwksRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
  verifiers: { type: memory, journal: ${name} }
secrets:
  ${o.secret ?? 'session-signing'}:
    store: { provider: vault }
    issuer: { type: jwt-signing-key, alg: ES256 }
    targets: [{ provider: verifiers, publish: jwks }]
    grace: ${o.grace}
`);
  return { h, pushed };
}

/** A JWT (sub user-1, valid 5 minutes) signed with session-signing's key at `stage`, read from the store. */
export async function signSession(h: Harness, stage: 'current' | 'previous'): Promise<string> {
  const { store } = await h.runtime.resolver.resolve('session-signing');
  const now = Math.floor(Date.now() / 1000);
  return jwtSignerFromValue(await store.read({ stage }, { signal: AbortSignal.timeout(5000) })).sign({ sub: 'user-1', iat: now, exp: now + 300 });
}
