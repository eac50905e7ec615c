/**
 * Token exchange (POST /v1/token, issue 17), read top to bottom:
 *
 *   1. authenticate: the grants for the requested audience name their authenticators; the
 *      presented credential must pass one of them (the first that accepts it gives the subject);
 *   2. authorize: the first of that authenticator's grants whose `subjects` globs match the
 *      subject id;
 *   3. sign: with the current version of the grant's signing key, read from its store, never a
 *      pending, previous, compromised or retired one (none current: unavailable);
 *   4. audit `delivery.token` (subject, grant, authenticator, version, audience, expiry, jti;
 *      never the token or the credential), then hand the token out.
 *
 * Errors are TokenExchangeError codes that the HTTP adapter maps to RFC 8693 answers; a
 * credential that fails authentication gets one answer whatever the reason.
 */
import { randomUUID } from 'node:crypto';
import { describeError, RekeyError } from './errors.js';
import type { Logger } from './logger.js';
import type { StateRepository } from './model.js';
import { issuedRef } from './context.js';
import type { Authenticator, JsonObject, Subject } from './ports.js';
import type { ProviderResolver } from './resolved.js';
import type { SecretValue } from './secret-value.js';

/** A token grant of rekey.yaml's `delivery.grants`. */
export interface GrantSpec {
  name: string;
  /** An entry of `delivery.authenticators`. */
  authenticator: string;
  /** Subject id globs (`*` matches any run of characters). */
  subjects: readonly string[];
  token: {
    /** The managed secret whose issuer signs (Issuer.signJwt: jwt-signing-key). */
    signingKey: string;
    audience: string;
    ttlMs: number;
    /** Claims copied from the subject's verified claims (absent ones are left out), and fixed ones. */
    claims: { copy: readonly string[]; fixed: Readonly<Record<string, string | number | boolean>> };
  };
}

/** rekey.yaml's `delivery:` section, validated. */
export interface DeliverySpec {
  /** `iss` of every minted token. */
  issuer: string;
  grants: Readonly<Record<string, GrantSpec>>;
}

export type TokenExchangeCode = 'unauthenticated' | 'no_grant' | 'forbidden' | 'unavailable';

export class TokenExchangeError extends Error {
  constructor(
    readonly code: TokenExchangeCode,
    message: string,
  ) {
    super(message);
    this.name = 'TokenExchangeError';
  }
}

export interface TokenExchangeDeps {
  repo: StateRepository;
  providers: ProviderResolver;
  authenticator(name: string): Promise<Authenticator>;
  /** Appends one audit event (its own transaction). */
  audit(event: { actor: string; action: string; secret: string; versionId: string; data: JsonObject }): Promise<void>;
  log: Logger;
  /** Per provider call. @defaultValue 10000 */
  timeoutMs?: number;
}

export interface Minted {
  token: string;
  expiresInSeconds: number;
  grant: string;
  subject: string;
}

/** Claims rekey sets itself: a grant may neither copy nor fix them. */
export const RESERVED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti'] as const;

/** Whether a subject id matches a grant's glob (`*`: any run of characters, nothing else special). */
export function subjectMatches(glob: string, id: string): boolean {
  const pattern = glob.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${pattern}$`, 's').test(id);
}

/**
 * Exchanges a presented credential for a token, or throws TokenExchangeError.
 * @param audience the requested audience; without one, the grants of every audience are candidates.
 */
export async function exchangeToken(deps: TokenExchangeDeps, delivery: DeliverySpec, credential: SecretValue, audience: string | undefined): Promise<Minted> {
  const grants = Object.values(delivery.grants).filter((g) => audience === undefined || g.token.audience === audience);
  if (!grants.length) throw new TokenExchangeError('no_grant', 'no grant issues tokens for this audience');
  const signal = () => AbortSignal.timeout(deps.timeoutMs ?? 10_000);

  // 1. authenticate
  let subject: Subject | undefined;
  let authenticator: string | undefined;
  for (const name of new Set(grants.map((g) => g.authenticator))) {
    try {
      subject = await (await deps.authenticator(name)).authenticate(credential, { signal: signal() });
      authenticator = name;
      break;
    } catch (error) {
      if (error instanceof RekeyError && error.code === 'REKEY_ERR_DENIED') {
        deps.log.info({ authenticator: name, reason: error.message }, 'token request: credential refused');
        continue;
      }
      deps.log.warn({ authenticator: name, error: describeError(error) }, 'token request: authenticator failed');
      throw new TokenExchangeError('unavailable', 'the authenticator is unavailable');
    }
  }
  if (!subject || !authenticator) throw new TokenExchangeError('unauthenticated', 'the subject token is not valid');

  // 2. authorize
  const grant = grants.find((g) => g.authenticator === authenticator && g.subjects.some((glob) => subjectMatches(glob, subject.id)));
  if (!grant) throw new TokenExchangeError('forbidden', 'no grant allows this subject a token for this audience');

  // 3. sign with the current version only
  const secret = await deps.repo.getSecret(grant.token.signingKey);
  const version = secret && !secret.removedAt ? await deps.repo.currentVersion(secret.id) : null;
  if (!secret || !version?.storeVersionId) throw new TokenExchangeError('unavailable', 'the signing key has no current version');
  const resolved = await deps.providers.resolve(secret.name);
  if (!resolved.issuer.signJwt) throw new RekeyError('REKEY_ERR_CONFIG', `delivery.grants.${grant.name}: the issuer of ${secret.name} does not sign JWTs`);
  const value = await resolved.store.read({ storeVersionId: version.storeVersionId }, { signal: signal() });
  const now = Math.floor(Date.now() / 1000);
  const ttl = Math.floor(grant.token.ttlMs / 1000);
  const jti = randomUUID();
  const payload: JsonObject = { ...copied(subject.claims, grant.token.claims.copy), ...grant.token.claims.fixed, iss: delivery.issuer, sub: subject.id, aud: grant.token.audience, iat: now, exp: now + ttl, jti };
  const token = await resolved.issuer.signJwt(issuedRef(version, resolved.policy.consumer), value, payload);

  // 4. audit, then hand out
  await deps.audit({
    actor: `subject:${subject.id}`,
    action: 'delivery.token',
    secret: secret.name,
    versionId: version.id,
    data: { grant: grant.name, authenticator, subject: subject.id, audience: grant.token.audience, version: version.number, jti, expiresAt: new Date((now + ttl) * 1000).toISOString() },
  });
  return { token, expiresInSeconds: ttl, grant: grant.name, subject: subject.id };
}

function copied(claims: JsonObject, names: readonly string[]): JsonObject {
  const out: JsonObject = {};
  for (const name of names) if (Object.hasOwn(claims, name) && claims[name] !== undefined) out[name] = claims[name]!;
  return out;
}
