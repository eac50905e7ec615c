/** The engine: core's entry points, bound to their dependencies. */
import type { EngineDeps } from './context.js';
import { decommission } from './decommission.js';
import { checkTarget, retireDrifted, type TargetReport } from './drift.js';
import { reportLeak, revokeByNumber } from './leak.js';
import type { LeakRecord, LeakReportInput, RunStatus, VersionRecord } from './model.js';
import { type ReconcileOptions, type ReconcileSummary, reconcile } from './reconcile.js';
import { checkStores, type StoreCheckReport } from './store-drift.js';
import { type RotationRequest, type RotationRequestResult, requestRotation } from './requests.js';
import { type Attempt, driveRotation } from './rotation.js';
import { blockAtDeadline, retireVersion, revokeVersion } from './takedown.js';

export class Engine {
  constructor(readonly deps: EngineDeps) {}

  /** The same engine acting as `actor` in the audit log (an admin API caller, `token:<name>`). */
  as(actor: string): Engine {
    return new Engine({ ...this.deps, actor });
  }

  /** A trigger asks for a rotation; returns the run that will do it (new or joined), or stale. */
  requestRotation(request: RotationRequest): Promise<RotationRequestResult> {
    return requestRotation(this.deps, request);
  }

  /** An authenticated leak report, already fingerprinted. */
  reportLeak(report: LeakReportInput): Promise<LeakRecord> {
    return reportLeak(this.deps, report);
  }

  /** An operator revokes one version (`rekey revoke NAME --version N`). */
  revoke(secret: string, number: number): Promise<LeakRecord> {
    return revokeByNumber(this.deps, secret, number);
  }

  /** Retires and revokes everywhere every live key of a secret removed from the config. */
  decommission(secret: string): Promise<VersionRecord[]> {
    return decommission(this.deps, secret);
  }

  /** Job handler: drives a rotation run forward (or rolls it back). */
  driveRotation(runId: string, attempt: Attempt): Promise<RunStatus> {
    return driveRotation(this.deps, runId, attempt);
  }

  /** Job handler: a previous version's grace has ended. */
  retire(versionId: string): Promise<RunStatus> {
    return retireVersion(this.deps, versionId);
  }

  /** Job handler: a compromised version must die now. */
  revokeNow(versionId: string): Promise<RunStatus> {
    return revokeVersion(this.deps, versionId);
  }

  /** Job handler: a leaked current version's deadline has passed. */
  block(versionId: string): Promise<void> {
    return blockAtDeadline(this.deps, versionId);
  }

  /** Compares `target` with the desired state of each of `secrets` bound to it; repairs what differs when asked. */
  checkTarget(target: string, secrets: readonly string[], options: { repair: boolean; periodMs?: number }): Promise<TargetReport> {
    return checkTarget(this.deps, target, secrets, options);
  }

  /** Compares each secret's store current stage with rekey's current version; with `repair`, gives it back where rekey took the store's version out of service (store-drift.ts). */
  checkStores(secrets: readonly string[], options: { repair: boolean }): Promise<StoreCheckReport> {
    return checkStores(this.deps, secrets, options);
  }

  /** Job handler: retires a version the drift check found where it must be refused (`generation`: see drift.ts retireDrifted). */
  retireDrifted(versionId: string, target: string, generation?: string): Promise<'succeeded' | 'skipped'> {
    return retireDrifted(this.deps, versionId, target, generation);
  }

  /** Re-derives queued work from the database: all of it, or what changed since `options.since`. */
  reconcile(options?: ReconcileOptions): Promise<ReconcileSummary> {
    return reconcile(this.deps, options);
  }
}
