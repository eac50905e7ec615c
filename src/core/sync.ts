/**
 * The sync status of each (secret, target) pair, kept in PostgreSQL behind a port: what the
 * drift check (drift.ts) found the last time it compared a target with its desired state.
 */
import type { AuditContext, VersionRecord } from './model.js';
import type { Notice } from './notify.js';

/** What one check of one secret at one target found and did. Version numbers, never values. */
export interface SyncResult {
  secretId: string;
  secret: string;
  /** How the target was read: `inspect` (Target.inspect) or `probe` (verify of the current version). */
  method: 'inspect' | 'probe';
  /** Versions the target must hold and did not. */
  missing: number[];
  /** Versions the target must refuse and still held. */
  unwanted: number[];
  /** Missing versions deployed again by this check. */
  redeployed: number[];
  /** Unwanted versions queued for retirement (the revocations queue). */
  retiring: number[];
  /** Why the check or a repair failed (sanitized), if it did. */
  error?: string;
}

/**
 * Drift found again within this long of the last one counts towards the streak; for a secret
 * checked less often (a long `drift.interval`, a target checked a slice at a time), within two
 * of its check periods (`periodMs` of recordCheck).
 */
export const DRIFT_WINDOW_MS = 10 * 60_000;

/** How long after the last drift a drift found again still extends the streak, for checks `periodMs` apart. */
export function driftWindowMs(periodMs = 0): number {
  return Math.max(DRIFT_WINDOW_MS, 2 * periodMs);
}

/** A streak this long is reported at error level and as a warning in `rekey status`. */
export const DRIFT_STREAK_ALERT = 3;

/** PostgreSQL behind an interface, for the drift check. */
export interface SyncRepository {
  /** The ids of the named secrets (removed ones too), by name, in one query. */
  secretIds(names: readonly string[]): Promise<Map<string, string>>;
  /**
   * Versions whose key a target reported holding (by fingerprint or by rekey's version id),
   * in any state: how the check recognizes a retired key put back. Reads only.
   */
  versionsByKeys(keys: { fingerprints: readonly string[]; versionIds: readonly string[] }): Promise<VersionRecord[]>;
  /**
   * Records one check of `target` at `at`: every result updates its row (created on first use)
   * with when it was checked, and when in sync or the error. A result of a repairing check
   * (`repair`) that found drift also records the drift, writes the audit event `target.drift` (in
   * the secret's chain) and extends or restarts its streak; a check-only result (`rekey verify`
   * without --repair) records none of that, since it changed nothing and the next repairing check
   * finds the same drift. Returns the streak of each secret that drifted, by id (check-only: none).
   * Errors are stored through errors.ts `sanitize`. Takes no secret lock. `options.notices(result,
   * streak)` are written to the notification outbox in the transaction that records the drift.
   * `options.periodMs`: how often these secrets are checked at this target (see driftWindowMs).
   */
  recordCheck(
    target: string,
    at: Date,
    results: readonly SyncResult[],
    audit: AuditContext,
    options: { repair: boolean; periodMs?: number; notices?: (result: SyncResult, streak: number) => readonly Notice[] },
  ): Promise<Map<string, number>>;
  /** Stamps lastRepairedAt once a queued repair has been done (an unwanted key retired again). Idempotent. */
  markRepaired(secretId: string, target: string, at: Date): Promise<void>;
}
