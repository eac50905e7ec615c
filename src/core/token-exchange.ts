/**
 * Token exchange (POST /v1/token, issue 17), read top to bottom:
 *
 *   1. authenticate and 2. admit (delivery.ts): the token grants for the requested audience
 *      name their authenticators; the presented credential must pass one of them, and the
 *      subject must be within its rate limit;
 *   3. authorize: the first of that authenticator's grants whose `subjects` globs match the
 *      subject id;
 *   4. sign: with the current version of the grant's signing key (deps.current: the store's
 *      value, possibly cached), never a pending, previous, compromised or retired one (none
 *      current: unavailable);
 *   5. record: in one transaction (deps.handOut, batched with other requests), check that the
 *      signing version is still current and the versions the proof relied on still live, and
 *      audit `delivery.token` (subject, grant, authenticator, version, audience, expiry, jti;
 *      never the token or the credential); then hand the token out. A version revoked between
 *      steps 1-4 and this check fails it: the request runs once more from PostgreSQL.
 *
 * Errors are DeliveryError codes that the HTTP adapter maps to RFC 8693 answers; a credential
 * that fails authentication gets one answer whatever the reason.
 */
import { randomUUID } from 'node:crypto';
import { RekeyError } from './errors.js';
import { issuedRef } from './context.js';
import { authenticate, DeliveryError, grantFor, grantsOf, retryingStale, callOf, type DeliveryDeps, type DeliverySpec, type GrantSpec } from './delivery.js';
import type { JsonObject } from './ports.js';
import type { SecretValue } from './secret-value.js';

export interface Minted {
  token: string;
  expiresInSeconds: number;
  grant: string;
  subject: string;
}

/** Claims rekey sets itself: a grant may neither copy nor fix them. */
export const RESERVED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti'] as const;

type TokenGrant = GrantSpec & { token: NonNullable<GrantSpec['token']> };

/**
 * Exchanges a presented credential for a token, or throws DeliveryError.
 * @param audience the requested audience; without one, the grants of every audience are candidates.
 */
export async function exchangeToken(deps: DeliveryDeps, delivery: DeliverySpec, credential: SecretValue, audience: string | undefined): Promise<Minted> {
  const grants = grantsOf(delivery, audience === undefined ? 'token' : `token:${audience}`, (g): g is TokenGrant => !!g.token && (audience === undefined || g.token.audience === audience));
  if (!grants.length) throw new DeliveryError('no_grant', 'no grant issues tokens for this audience');

  return retryingStale(deps, async (deps) => {
    // 1, 2. authenticate, admit
    const who = await authenticate(deps, grants, credential);
    const { subject, authenticator } = who;

    // 3. authorize
    const grant = grantFor(grants, who);
    if (!grant) throw new DeliveryError('forbidden', 'no grant allows this subject a token for this audience');

    // 4. sign with the current version only
    const signing = await deps.current(grant.token.signingKey, callOf(deps));
    if (!signing) throw new DeliveryError('unavailable', 'the signing key has no current version');
    const { version, value } = signing;
    const resolved = await deps.providers.resolve(version.secret);
    if (!resolved.issuer.signJwt) throw new RekeyError('REKEY_ERR_CONFIG', `delivery.grants.${grant.name}: the issuer of ${version.secret} does not sign JWTs`);
    const now = Math.floor(Date.now() / 1000);
    const ttl = Math.floor(grant.token.ttlMs / 1000);
    const jti = randomUUID();
    const payload: JsonObject = { ...copied(subject.claims, grant.token.claims.copy), ...grant.token.claims.fixed, iss: delivery.issuer, sub: subject.id, aud: grant.token.audience, iat: now, exp: now + ttl, jti };
    const token = await resolved.issuer.signJwt(issuedRef(version, resolved.policy.consumer), value, payload);

    // 5. check and audit in one transaction, then hand out
    const recorded = await deps.handOut({
      handed: [version.id],
      relied: subject.versions ?? [],
      event: {
        actor: `subject:${subject.id}`,
        action: 'delivery.token',
        secret: version.secret,
        versionId: version.id,
        // Keys in sort order: the audit log's hash then takes the object's own JSON (src/db/audit.ts).
        data: { audience: grant.token.audience, authenticator, expiresAt: new Date((now + ttl) * 1000).toISOString(), grant: grant.name, jti, subject: subject.id, version: version.number },
      },
    });
    return recorded ? { token, expiresInSeconds: ttl, grant: grant.name, subject: subject.id } : undefined;
  });
}

function copied(claims: JsonObject, names: readonly string[]): JsonObject {
  const out: JsonObject = {};
  for (const name of names) if (Object.hasOwn(claims, name) && claims[name] !== undefined) out[name] = claims[name]!;
  return out;
}
