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

/**
 * The sync row the store check (store-drift.ts) keeps for a secret's store: `store:<provider>`.
 * Provider names never contain a colon (config/schema.ts), so it never names a target.
 */
export function storeSyncName(storeProvider: string): string {
  return `store:${storeProvider}`;
}

/** What the store check reads of one secret in PostgreSQL, before and again after it lists the store. */
export interface StoreCheckState {
  secretId: string;
  /** rekey's current version. */
  current: VersionRecord | null;
  /** The newest previous version (in its grace), which keeps the store's previous stage. */
  previous: VersionRecord | null;
  /** A rotation of the secret is running: it moves the store's stages itself. */
  rotating: boolean;
  /** When any run of the secret last changed (started, stepped, ended): one that came and went while the store was listed moves it. */
  runChangedAt: Date | null;
}

/** What the store check can find (StoreCheckResult.found); the admin API's answer lists them from here. */
export const STORE_FINDINGS = ['in-sync', 'not-live', 'live', 'unknown', 'none'] as const;
export type StoreFinding = (typeof STORE_FINDINGS)[number];

/** What one store check of one secret found and did. Ids, numbers and states, never values. */
export interface StoreCheckResult {
  secretId: string;
  secret: string;
  /** The store's provider instance name. */
  store: string;
  /**
   * - `in-sync`: the store's current stage is on rekey's current version;
   * - `not-live`: on a version rekey knows and holds failed, retired, revoked or compromised (a late promotion
   *   after a rollback, a stage moved back by hand): repaired when rekey has a current version;
   * - `live`: on another version rekey holds live (previous, pending): reported, left alone;
   * - `unknown`: on a version rekey does not know (written outside rekey): reported, left alone;
   * - `none`: no version holds it while rekey has a current one: reported, left alone.
   * Undefined when the check failed (`error`).
   */
  found?: StoreFinding;
  /** The version holding the store's current stage: its store id, and its number and state when rekey knows it. */
  storeCurrent?: { storeVersionId: string; number?: number; state?: string };
  /** rekey's current version's number. */
  rekeyCurrent?: number;
  /** The current stage was given back to rekey's current version and the wrong one destroyed again. */
  repaired: boolean;
  /** Why the check or its repair failed (sanitized), if it did. */
  error?: string;
}

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
  /**
   * For the store check: each named secret's current and previous versions and its runs' activity,
   * by name (secrets with no row are left out). Reads only.
   */
  storeCheckStates(names: readonly string[]): Promise<Map<string, StoreCheckState>>;
  /** The secret's versions with one of these store ids or rekey version ids, in any state. Reads only. */
  versionsInStore(secretId: string, keys: { storeVersionIds: readonly string[]; versionIds: readonly string[] }): Promise<VersionRecord[]>;
  /**
   * Records one store check of one secret in its sync row (storeSyncName): checked, in sync, or the
   * drift found (`lastDrift`, streak, lastRepairedAt when repaired) with the audit event `store.drift` in
   * the secret's chain, or the error. A check-only result (`repair` false) records no drift, as
   * recordCheck's. Errors are stored through errors.ts `sanitize`. `options.notices(occurrence)` are
   * written to the notification outbox in the transaction that records the drift (none otherwise);
   * `occurrence` names the drift this finding belongs to: when the row was last found in sync or
   * repaired before it (epoch milliseconds, `0` for never), so the same drift found again keeps it
   * and a drift that comes back after being in sync or repaired gets another.
   */
  recordStoreCheck(result: StoreCheckResult, at: Date, audit: AuditContext, options: { repair: boolean; notices?: (occurrence: string) => readonly Notice[] }): Promise<void>;
  /** Stamps lastRepairedAt once a queued repair has been done (an unwanted key retired again). Idempotent. */
  markRepaired(secretId: string, target: string, at: Date): Promise<void>;
}
