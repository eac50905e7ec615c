/**
 * Rows the server builds and the dashboard shows, typed once: `rekey status` (src/cli/status.ts)
 * builds them and the admin API sends them as they are. They live here, not beside the server
 * code, because the dashboard compiles no file outside this folder (its tsconfig's rootDir, no
 * Node types); the server imports them type-only. Types only: the module is empty at run time.
 */

/** Per target: what the drift check last found (src/core/drift.ts). */
export interface SyncStatus {
  target: string;
  lastCheckedAt: string | null;
  lastInSyncAt: string | null;
  lastDriftAt: string | null;
  lastDrift: string | null;
  lastRepairedAt: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
  driftStreak: number;
  /** Drift found again and again within the window: something outside rekey keeps changing the target. */
  warning: string | null;
}
