/**
 * Token exchange (POST /v1/token, issue 17), read top to bottom:
 *
 *   1. authenticate and 2. admit (delivery.ts): the presented credential must pass one of the
 *      authenticators of the token grants (those of the requested audience's grants first;
 *      every one, whatever the audience, so an unauthenticated caller learns nothing about
 *      which audiences are served), and the subject must be within its rate limit;
 *   3. authorize: the first of that authenticator's grants for the audience whose `subjects`
 *      globs match the subject id (none for the audience: no_grant; none for the subject: forbidden);
 *   4. sign: with the newest live version of the grant's signing key that has been current for
 *      the JWKS max-age at least (signerAt; deps.signingKeys: the store's values, possibly
 *      cached), or the current one when none has: for a minute after a rotation the previous
 *      version signs, with an expiry no later than its grace, so a verifier that caches the
 *      JWKS document never meets a key it does not hold. Never a pending, compromised or retired
 *      one (no current one that is not leaked: unavailable);
 *   5. record: in one transaction (deps.handOut, batched with other requests), check that the
 *      signing version is still current (a previous one: still live) and the versions the proof
 *      relied on still live, and
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
import { authenticate, candidates, DeliveryError, grantFor, grantsOf, retryingStale, callOf, type DeliveryDeps, type DeliverySpec, type GrantSpec, type Handable } from './delivery.js';
import type { VersionRecord } from './model.js';
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
  const all = grantsOf(delivery, 'token', (g): g is TokenGrant => !!g.token);
  // The same for every audience: no token grant at all.
  if (!all.length) throw new DeliveryError('no_grant', 'no grant issues tokens');
  const grants = audience === undefined ? all : grantsOf(delivery, `token:${audience}`, (g): g is TokenGrant => !!g.token && g.token.audience === audience);

  return retryingStale(deps, async (deps) => {
    // 1, 2. authenticate, admit: against every token grant's authenticator, whatever the audience,
    // so only an authenticated caller learns whether a grant serves it.
    const who = await authenticate(deps, candidates(grants, all), credential);
    const { subject, authenticator } = who;
    if (!grants.length) throw new DeliveryError('no_grant', 'no grant issues tokens for this audience');

    // 3. authorize
    const grant = grantFor(grants, who);
    if (!grant) throw new DeliveryError('forbidden', 'no grant allows this subject a token for this audience');

    // 4. sign with a version every verifier's cached JWKS holds
    const keys = await deps.signingKeys(grant.token.signingKey, callOf(deps));
    const nowMs = Date.now();
    const signing = keys && signerAt(keys, nowMs, deps.publishLeadMs);
    if (!signing) throw new DeliveryError('unavailable', 'the signing key has no current version');
    const { version, value } = signing;
    const resolved = await deps.providers.resolve(version.secret);
    if (!resolved.issuer.signJwt) throw new RekeyError('REKEY_ERR_CONFIG', `delivery.grants.${grant.name}: the issuer of ${version.secret} does not sign JWTs`);
    const now = Math.floor(nowMs / 1000);
    const exp = Math.min(now + Math.floor(grant.token.ttlMs / 1000), lastSecond(version));
    const ttl = exp - now;
    const jti = randomUUID();
    // Built in place, in the order the token's JSON lists the claims: a literal spreading the
    // copied and fixed claims allocated 1.7 KB more per request.
    const payload = Object.assign(copied(subject.claims, grant.token.claims.copy), grant.token.claims.fixed);
    payload.iss = delivery.issuer;
    payload.sub = subject.id;
    payload.aud = grant.token.audience;
    payload.iat = now;
    payload.exp = exp;
    payload.jti = jti;
    const token = await resolved.issuer.signJwt(issuedRef(version, resolved.policy.consumer), value, payload);

    // 5. check and audit in one transaction, then hand out
    const current = version.state === 'current';
    const recorded = await deps.handOut({
      handed: current ? [version.id] : [],
      relied: current ? (subject.versions ?? []) : [...(subject.versions ?? []), version.id],
      event: {
        actor: `subject:${subject.id}`,
        action: 'delivery.token',
        secret: version.secret,
        versionId: version.id,
        // Keys in sort order: the audit log's hash then takes the object's own JSON (src/db/audit.ts).
        data: { audience: grant.token.audience, authenticator, expiresAt: new Date(exp * 1000).toISOString(), grant: grant.name, jti, subject: subject.id, version: version.number },
      },
    });
    return recorded ? { token, expiresInSeconds: ttl, grant: grant.name, subject: subject.id } : undefined;
  });
}

/**
 * The version that signs at `now`: the newest of `keys` (current first, then previous ones
 * newest first) that has been current for `leadMs` at least, so its public key has been in the
 * JWKS document for as long as verifiers may cache it (it was there from pending on), and
 * whose grace leaves a token a second at least; the current one when none has.
 */
export function signerAt(keys: readonly Handable[], now: number, leadMs: number): Handable | undefined {
  const current = keys[0];
  if (current?.version.state !== 'current') return undefined;
  const published = (h: Handable) => !h.version.promotedAt || h.version.promotedAt.getTime() + leadMs <= now;
  return keys.find((h) => published(h) && lastSecond(h.version) > Math.floor(now / 1000)) ?? current;
}

/** The last whole second a token `version` signs may live: a previous version's, the end of its grace. */
function lastSecond(version: VersionRecord): number {
  return version.state !== 'current' && version.graceEndsAt ? Math.floor(version.graceEndsAt.getTime() / 1000) : Number.MAX_SAFE_INTEGER;
}

function copied(claims: JsonObject, names: readonly string[]): JsonObject {
  const out: JsonObject = {};
  for (const name of names) if (Object.hasOwn(claims, name) && claims[name] !== undefined) out[name] = claims[name]!;
  return out;
}
