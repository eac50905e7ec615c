/**
 * Value delivery (GET /v1/secrets/{name}, issue 17), read top to bottom:
 *
 *   1. authenticate and 2. admit (delivery.ts) against the authenticators of every value grant
 *      (those of the secret's grants first, so a credential two of them accept is taken by one
 *      that can serve it), whichever secret is asked for, so an unauthenticated caller learns
 *      nothing about which secrets exist or are granted;
 *   3. authorize: a value grant of that authenticator naming this secret, whose `subjects`
 *      globs match the subject id;
 *   4. the current version and its value (deps.current, possibly cached), never a pending,
 *      previous, retired or compromised one (a leaked current version waiting for its
 *      replacement is compromised already): none is unavailable;
 *   5. record: in one transaction (deps.handOut, batched with other requests), check that the
 *      version is still current and the versions the proof relied on still live, and audit
 *      `delivery.value` (subject, grant, authenticator, version; never the value); then hand it
 *      out with an expiry no later than the secret's next scheduled rotation. A caller that
 *      already holds it (its ETag) gets `not_modified` after the same check, nothing audited.
 *      A version revoked meanwhile fails the check: the request runs once more from PostgreSQL.
 */
import { authenticate, candidates, DeliveryError, grantFor, grantsOf, retryingStale, callOf, type DeliveryDeps, type DeliverySpec, type GrantSpec } from './delivery.js';
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
export function valueGrants(delivery: DeliverySpec): readonly ValueGrant[] {
  return grantsOf(delivery, 'value', (g): g is ValueGrant => !!g.value);
}

/** The value grants of the section for `secret`. */
function valueGrantsFor(delivery: DeliverySpec, secret: string): readonly ValueGrant[] {
  return grantsOf(delivery, `value:${secret}`, (g): g is ValueGrant => !!g.value && g.value.secret === secret);
}

/** The ETag of a version's value: its id, which no two values share. */
export function etagOf(versionId: string): string {
  return `"${versionId}"`;
}

/**
 * Hands the current value of `secret` to the subject `credential` proves, or throws DeliveryError.
 * @param ifNoneMatch the request's If-None-Match: when it names the current version, nothing is audited.
 */
export async function deliverValue(deps: ValueDeliveryDeps, delivery: DeliverySpec, credential: SecretValue, secret: string, ifNoneMatch: string | undefined): Promise<ValueAnswer> {
  const grants = valueGrants(delivery);
  if (!grants.length) throw new DeliveryError('no_grant', 'no grant delivers values');

  return retryingStale(deps, async (deps) => {
    // 1, 2. authenticate, admit
    const granting = valueGrantsFor(delivery, secret);
    const who = await authenticate(deps, candidates(granting, grants), credential);

    // 3. authorize
    const grant = grantFor(granting, who);
    if (!grant) throw new DeliveryError('forbidden', 'no grant allows this subject this secret');

    // 4. the current version, unless it is compromised
    const current = await deps.current(secret, callOf(deps));
    if (!current) throw new DeliveryError('unavailable', 'the secret has no current version that may be handed out');
    const { version, value } = current;
    const now = Date.now();
    const next = await deps.nextRotation(secret);
    const expiresAt = new Date(Math.max(now, Math.min(now + grant.value.ttlMs, next?.getTime() ?? Infinity)));
    const etag = etagOf(version.id);
    const relied = who.subject.versions ?? [];

    // 5. check (and audit), then answer
    if (ifNoneMatch?.split(',').some((tag) => tag.trim() === etag || tag.trim() === `W/${etag}`)) {
      return (await deps.handOut({ handed: [version.id], relied })) ? ({ status: 'not_modified', version: version.number, etag, expiresAt } as const) : undefined;
    }
    const recorded = await deps.handOut({
      handed: [version.id],
      relied,
      event: {
        actor: `subject:${who.subject.id}`,
        action: 'delivery.value',
        secret,
        versionId: version.id,
        // Keys in sort order: the audit log's hash then takes the object's own JSON (src/db/audit.ts).
        data: { authenticator: who.authenticator, expiresAt: expiresAt.toISOString(), grant: grant.name, subject: who.subject.id, version: version.number },
      },
    });
    return recorded ? ({ status: 'fresh', value, version: version.number, etag, expiresAt, grant: grant.name } as const) : undefined;
  });
}
