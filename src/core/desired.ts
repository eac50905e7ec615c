/**
 * The desired state of a target, derived from PostgreSQL's version records alone: which
 * versions of a secret the target must accept and which it must refuse. The drift check
 * (drift.ts) compares what a target holds with it; providers never decide it.
 */
import type { VersionRecord } from './model.js';

/**
 * What a target should do with one version.
 * - `accept`: it must be held; the drift check deploys it again when it is missing (the
 *   current version, and a previous one well inside its grace).
 * - `keep`: it may be held and is never taken away, but the drift check does not deploy it
 *   either: a running rotation owns a pending version (it deploys and verifies it, or rolls
 *   it back), and a leaked current version waits for the leak path.
 * - `leave`: a transition owned by another job is under way (a previous version whose grace
 *   is about to end or has ended, which its retirement takes down): neither deployed nor removed.
 * - `refuse`: it must not be accepted (retired, revoked, compromised, or rolled back): the
 *   drift check retires it again when a target holds it.
 */
export type Want = 'accept' | 'keep' | 'leave' | 'refuse';

/**
 * A previous version is deployed again only while more than this is left of its grace: a
 * repair must never race its retirement and put back a key being retired.
 */
export const GRACE_MARGIN_MS = 5000;

/** What a target should do with `version` at `now` (see {@link Want}). Pure. */
export function wantOf(version: VersionRecord, now: Date): Want {
  switch (version.state) {
    case 'current':
      return version.compromisedAt ? 'keep' : 'accept';
    case 'previous':
      if (version.compromisedAt) return 'leave';
      return version.graceEndsAt && version.graceEndsAt.getTime() - now.getTime() > GRACE_MARGIN_MS ? 'accept' : 'leave';
    case 'pending':
      return 'keep';
    case 'issuing':
      // Issued but not stored yet: no target has been sent it, none may keep it either.
      return 'leave';
    case 'retired':
    case 'revoked':
    case 'compromised':
    case 'failed':
      return 'refuse';
  }
}

/** One secret's desired state at a target. */
export interface DesiredState {
  /** Versions the target must hold, newest first. */
  accept: VersionRecord[];
  /** Versions it may hold and nobody must take away (pending during a rotation, a leaked current one). */
  keep: VersionRecord[];
  /** Versions it must not hold. */
  refuse: VersionRecord[];
}

/**
 * The desired state of one secret from its versions (any states; a version with no fingerprint
 * has no key a target could hold and is left out). The one place that decides it.
 */
export function desiredState(versions: readonly VersionRecord[], now: Date): DesiredState {
  const state: DesiredState = { accept: [], keep: [], refuse: [] };
  for (const version of [...versions].sort((a, b) => b.number - a.number)) {
    if (!version.fingerprint) continue;
    const want = wantOf(version, now);
    if (want !== 'leave') state[want].push(version);
  }
  return state;
}
