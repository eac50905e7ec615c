/**
 * The lifecycle rules of a promotion, as a pure function of what the repository read under
 * the secret's lock. The repository applies the result as it is (StateRepository.promote),
 * so the rules live here once, whatever store implements the repository.
 */
import { RekeyError } from './errors.js';
import type { DecommissionSnapshot, Promotion, PromotionSnapshot, VersionChange, VersionRecord } from './model.js';

/**
 * Promotes the run's version: pending -> current; the old current -> previous with
 * `graceEndsAt = now + graceMs`, or -> compromised (grace ended now) when a leak of it was
 * reported; every earlier previous version still in its grace has it cut to now (only one
 * previous version is accepted beside the current one), except with `keepEarlierGrace`: a
 * signing key's earlier previous versions keep theirs, since tokens they signed live up to the
 * grant's ttl (at most the grace) after they stopped being current, and their public keys must
 * stay published until then (docs/delivery.md, "Why TTL ≤ grace"); then the run is done, in the same
 * transaction, unless the version promoted before it was revoked while the store still held
 * it as current (it is destroyed there at finalize first). A version already current (a
 * repeat after a crash) changes nothing and goes on to finalize.
 * @throws RekeyError REKEY_ERR_COMPROMISED when the version is neither pending nor current
 *   (a leak report took it down under the run).
 */
export function planPromotion({ version, current, previous, displaced, now }: PromotionSnapshot, graceMs: number, o: { keepEarlierGrace?: boolean } = {}): Promotion {
  if (version.state === 'current') return { changes: [], nextStep: 'finalize' };
  if (version.state !== 'pending') throw notPending(version);
  const changes: VersionChange[] = o.keepEarlierGrace ? [] : cutGrace(previous, now);
  if (current) {
    const to = current.compromisedAt ? 'compromised' : 'previous';
    const graceEndsAt = to === 'compromised' ? now : new Date(now.getTime() + graceMs);
    changes.push({
      version: current,
      to,
      set: { graceEndsAt },
      audit: { action: `version.${to}`, data: { from: 'current', to, number: current.number, graceEndsAt: graceEndsAt.toISOString() } },
    });
  }
  changes.push({
    version,
    to: 'current',
    set: { promotedAt: now },
    audit: { action: 'version.current', data: { from: 'pending', to: 'current', number: version.number, graceMs } },
  });
  // A predecessor taken down while the store still held it as current is destroyed there by finalize (rotation.ts) before the run ends:
  // revoked, or still being revoked (its revocation read that no successor was promoted, so it keeps it in the store).
  const destroyFirst = !!displaced && takenDownAsStoreCurrent(displaced);
  return { changes, promotedAt: now, nextStep: destroyFirst ? 'finalize' : 'done' };
}

/**
 * Whether `displaced`, the version the store held as current before a promotion, was taken down
 * (revoked, or leaked and being revoked) while it was: its takedown kept it in the store
 * (takedown.ts), so the promotion's finalize destroys it there.
 */
export function takenDownAsStoreCurrent(displaced: VersionRecord): boolean {
  return (displaced.state === 'revoked' || displaced.state === 'compromised') && !!displaced.storeVersionId;
}

/**
 * Decommissions a secret removed from the config (decommission.ts): the current version
 * becomes previous with its grace ended now (an explicit revoke, so no successor is needed:
 * invariant 3), and every previous version still in its grace has it cut to now. What is
 * previous then is retired and revoked by the usual retirement.
 */
export function planDecommission({ current, previous, now }: DecommissionSnapshot): VersionChange[] {
  const changes: VersionChange[] = cutGrace(previous, now, 'decommission');
  if (current) {
    changes.push({
      version: current,
      to: 'previous',
      set: { graceEndsAt: now },
      audit: { action: 'version.previous', data: { from: 'current', to: 'previous', number: current.number, graceEndsAt: now.toISOString(), reason: 'decommission' } },
    });
  }
  return changes;
}

/**
 * Ends every previous version's overlap now, for an emergency rotation (after a leak of the
 * current version) whose issuer holds as many live credentials as it allows
 * (REKEY_ERR_LIMIT): their retirement frees the room the replacement needs. The promotion
 * would cut their grace anyway, and each was succeeded by a verified version (invariant 3).
 */
export function planGraceEnd({ previous, now }: DecommissionSnapshot): VersionChange[] {
  return cutGrace(previous, now, 'leak');
}

/** `version.grace-cut` for each version whose grace ends after `now`. */
function cutGrace(previous: readonly VersionRecord[], now: Date, reason?: string): VersionChange[] {
  return previous
    .filter((v) => v.graceEndsAt && v.graceEndsAt > now)
    .map((v) => ({ version: v, to: v.state, set: { graceEndsAt: now }, audit: { action: 'version.grace-cut', data: { number: v.number, ...(reason ? { reason } : {}) } } }));
}

/** The error for a run whose version a leak report took out of its way. */
export function notPending(version: VersionRecord): RekeyError {
  return new RekeyError('REKEY_ERR_COMPROMISED', `version ${version.number} of ${version.secret} is ${version.state}, not pending`);
}
