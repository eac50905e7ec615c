/**
 * Value delivery (GET /v1/secrets/{name}, issue 17), read top to bottom:
 *
 *   1. authenticate and 2. admit (delivery.ts) against the authenticators of every value grant,
 *      whichever secret is asked for, so an unauthenticated caller learns nothing about which
 *      secrets exist or are granted;
 *   3. authorize: a value grant of that authenticator naming this secret, whose `subjects`
 *      globs match the subject id;
 *   4. pick the current version, never a pending, previous, retired or compromised one (a
 *      leaked current version waiting for its replacement is compromised already): none is
 *      unavailable. A caller that already holds it (its ETag) gets `not_modified`, nothing read;
 *   5. read the value from the store, audit `delivery.value` (subject, grant, authenticator,
 *      version; never the value), then hand it out with an expiry no later than the secret's
 *      next scheduled rotation.
 */
import { authenticate, DeliveryError, grantFor, signal, type Authenticated, type DeliveryDeps, type DeliverySpec, type GrantSpec } from './delivery.js';
import type { SecretValue } from './secret-value.js';

export interface ValueDeliveryDeps extends DeliveryDeps {
  /** When the secret's schedule next rotates it; undefined without a schedule. */
  nextRotation(secret: string): Promise<Date | undefined>;
}

export type ValueAnswer =
  | { status: 'fresh'; value: SecretValue; version: number; etag: string; expiresAt: Date; grant: string }
  | { status: 'not_modified'; version: number; etag: string; expiresAt: Date };

type ValueGrant = GrantSpec & { value: NonNullable<GrantSpec['value']> };

/** The value grants of the section. */
export function valueGrants(delivery: DeliverySpec): ValueGrant[] {
  return Object.values(delivery.grants).filter((g): g is ValueGrant => !!g.value);
}

/** The secrets an authenticated subject may read (the change stream tells it about these only). */
export function readableSecrets(delivery: DeliverySpec, who: Authenticated): string[] {
  const grants = valueGrants(delivery);
  return [...new Set(grants.filter((g) => grantFor([g], who)).map((g) => g.value.secret))];
}

/** The ETag of a version's value: its id, which no two values share. */
export function etagOf(versionId: string): string {
  return `"${versionId}"`;
}

/**
 * Hands the current value of `secret` to the subject `credential` proves, or throws DeliveryError.
 * @param ifNoneMatch the request's If-None-Match: when it names the current version, nothing is read or audited.
 */
export async function deliverValue(deps: ValueDeliveryDeps, delivery: DeliverySpec, credential: SecretValue, secret: string, ifNoneMatch: string | undefined): Promise<ValueAnswer> {
  const grants = valueGrants(delivery);
  if (!grants.length) throw new DeliveryError('no_grant', 'no grant delivers values');

  // 1, 2. authenticate, admit
  const who = await authenticate(deps, grants, credential);

  // 3. authorize
  const grant = grantFor(
    grants.filter((g) => g.value.secret === secret),
    who,
  );
  if (!grant) throw new DeliveryError('forbidden', 'no grant allows this subject this secret');

  // 4. the current version, unless it is compromised
  const record = await deps.repo.getSecret(secret);
  const version = record && !record.removedAt ? await deps.repo.currentVersion(record.id) : null;
  if (!record || !version?.storeVersionId || version.compromisedAt) throw new DeliveryError('unavailable', 'the secret has no current version that may be handed out');
  const now = Date.now();
  const next = await deps.nextRotation(secret);
  const expiresAt = new Date(Math.max(now, Math.min(now + grant.value.ttlMs, next?.getTime() ?? Infinity)));
  const etag = etagOf(version.id);
  if (ifNoneMatch?.split(',').some((tag) => tag.trim() === etag || tag.trim() === `W/${etag}`)) return { status: 'not_modified', version: version.number, etag, expiresAt };

  // 5. read, audit, hand out
  const { store } = await deps.providers.resolve(secret);
  const value = await store.read({ storeVersionId: version.storeVersionId }, { signal: signal(deps) });
  await deps.audit({
    actor: `subject:${who.subject.id}`,
    action: 'delivery.value',
    secret,
    versionId: version.id,
    data: { grant: grant.name, authenticator: who.authenticator, subject: who.subject.id, version: version.number, expiresAt: expiresAt.toISOString() },
  });
  return { status: 'fresh', value, version: version.number, etag, expiresAt, grant: grant.name };
}
