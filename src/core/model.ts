/**
 * The records core reasons about, and the two ports it drives besides providers:
 * {@link StateRepository} (PostgreSQL, the source of truth) and {@link WorkQueue}
 * (BullMQ, derived work that reconcile() can rebuild from the repository).
 */
import type { JsonObject } from './ports.js';

export const VERSION_STATES = ['issuing', 'pending', 'current', 'previous', 'retired', 'revoked', 'failed', 'compromised'] as const;
export type VersionState = (typeof VERSION_STATES)[number];
export type DeliveryStatus = 'pending' | 'deployed' | 'verified' | 'retired' | 'failed';
export type RunKind = 'rotation' | 'retirement' | 'revocation';
export type RunStatus = 'running' | 'succeeded' | 'rolled_back' | 'failed' | 'skipped';
/** Rotation steps in protocol order; `rollback` replaces the rest after a final failure. */
export type RotationStep = 'issue' | 'deploy' | 'verify' | 'promote' | 'finalize' | 'rollback' | 'done';
export type LeakPolicy = 'rotate-then-revoke' | 'block-first';

export interface SecretRecord {
  id: string;
  name: string;
  lastPromotedAt: Date | null;
  removedAt: Date | null;
}

export interface VersionRecord {
  id: string;
  secretId: string;
  secret: string;
  number: number;
  state: VersionState;
  fingerprint: string | null;
  storeVersionId: string | null;
  issuerState: JsonObject | null;
  graceEndsAt: Date | null;
  promotedAt: Date | null;
  compromisedAt: Date | null;
  createdAt: Date;
}

export interface DeliveryRecord {
  versionId: string;
  target: string;
  status: DeliveryStatus;
  attempts: number;
  lastError: string | null;
}

export interface RunRecord {
  id: string;
  secretId: string;
  secret: string;
  kind: RunKind;
  trigger: string;
  /** What made it: `cron:<secret>:<due ms>`, `leak:<versionId>`, `manual:<uuid>`, ... */
  idempotencyKey: string;
  status: RunStatus;
  step: string;
  versionId: string | null;
  /** Overlap for the version this rotation replaces; null = the secret's configured grace. */
  graceMs: number | null;
  attempts: number;
  error: string | null;
  startedAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

/** What core needs of a secret's configuration (config/schema.ts's SecretSpec extends it). */
export interface SecretPolicy {
  name: string;
  /** Who the key belongs to, as targets label it: the client for per-client keys, else the secret's name. */
  consumer: string;
  graceMs: number;
  onLeak: LeakPolicy;
  leakDeadlineMs: number;
  timeoutMs: number;
  retry: { attempts: number; backoffMs: number };
  /** Target instance names, in config order. */
  targets: readonly string[];
}

export interface LeakReportInput {
  /** Which receiver: github, gitguardian, aws-health, webhook, cli. */
  source: string;
  /** The sender's delivery id (or a digest of the body): redelivery of the same report dedupes on it. */
  deliveryId: string;
  fingerprint: string;
  receivedAt: Date;
}

export type LeakOutcome =
  | 'unknown'
  | 'already-revoked'
  | 'revoking'
  | 'rotating'
  | 'blocking';

export interface LeakRecord {
  id: string;
  outcome: LeakOutcome;
  secret: string | null;
  versionId: string | null;
  duplicate: boolean;
}

export interface AuditContext {
  actor: string;
  runId?: string;
}

/**
 * PostgreSQL behind an interface. Every method that changes state writes an audit
 * event in the same transaction. Conditional transitions throw RekeyError
 * REKEY_ERR_COMPROMISED when a leak report changed the version under the caller.
 */
export interface StateRepository {
  getSecret(name: string): Promise<SecretRecord | null>;
  getRun(id: string): Promise<RunRecord | null>;
  getVersion(id: string): Promise<VersionRecord | null>;
  currentVersion(secretId: string): Promise<VersionRecord | null>;
  findVersionByFingerprint(fingerprint: string): Promise<VersionRecord | null>;
  findVersionByNumber(secret: string, number: number): Promise<VersionRecord | null>;
  /** The newest version whose public issuer state holds `value` under `key` (an AWS access key id, for one). */
  findVersionByIssuerState(key: string, value: string): Promise<VersionRecord | null>;
  deliveries(versionId: string): Promise<DeliveryRecord[]>;
  /** A secret's versions in the given states, oldest first. */
  versions(secretId: string, states: readonly VersionState[]): Promise<VersionRecord[]>;
  /** The versions in the given states of every named secret, in one query. */
  versionsOf(secretNames: readonly string[], states: readonly VersionState[]): Promise<VersionRecord[]>;

  /** Creates a rotation run, or returns the run holding the key or the secret's active rotation. */
  createRotationRun(input: {
    secretId: string;
    trigger: string;
    idempotencyKey: string;
    graceMs: number | null;
    audit: AuditContext;
  }): Promise<{ run: RunRecord; created: boolean }>;
  /** Creates (or returns) the run that retires or revokes one version. */
  startVersionRun(input: { kind: 'retirement' | 'revocation'; version: VersionRecord; trigger: string; audit: AuditContext }): Promise<RunRecord>;
  /** The version's retirement or revocation run while it is still running, if there is one. */
  openVersionRun(kind: 'retirement' | 'revocation', versionId: string): Promise<RunRecord | null>;
  /**
   * Audits a trigger that made no run of its own: stale, or joined to a running rotation. A
   * key that already has an outcome (it made a run, or was audited before: a job delivered
   * again after a worker died) is not audited again; returns whether this call audited it.
   */
  recordTrigger(input: { secret: SecretRecord; trigger: string; idempotencyKey: string; outcome: 'stale' | 'joined'; runId?: string }, audit: AuditContext): Promise<boolean>;
  /**
   * Takes (or renews) the right to drive a run for `ms`, by the database's clock: granted when
   * nobody holds it, its lease has expired, or `owner` holds it already. One driver per run.
   */
  takeLease(runId: string, owner: string, ms: number): Promise<boolean>;
  releaseLease(runId: string, owner: string): Promise<void>;
  /** Counts an attempt at a run (for the status output and the reconciler's budget). */
  touchRun(runId: string): Promise<void>;
  setRunStep(runId: string, step: RotationStep): Promise<void>;
  setRunGrace(runId: string, graceMs: number, audit: AuditContext): Promise<void>;
  recordRunError(runId: string, error: string): Promise<void>;
  finishRun(runId: string, status: Exclude<RunStatus, 'running'>, audit: AuditContext, error?: string): Promise<void>;

  /** Creates the run's version in `issuing` (or returns the one it already has). */
  createVersion(runId: string, audit: AuditContext): Promise<VersionRecord>;
  recordIssued(versionId: string, fingerprint: string, issuerState: JsonObject, audit: AuditContext): Promise<VersionRecord>;
  markPending(versionId: string, storeVersionId: string, audit: AuditContext): Promise<VersionRecord>;
  setDelivery(versionId: string, target: string, status: DeliveryStatus, audit: AuditContext, error?: string): Promise<void>;
  /**
   * new pending -> current, old current -> previous (or compromised), older previous versions'
   * grace cut to now, secret.lastPromotedAt; one transaction. finalize() reads the outcome back.
   */
  promote(runId: string, graceMs: number, audit: AuditContext): Promise<void>;
  /** Moves a version along its lifecycle when it is in one of `from`; returns whether it moved. */
  transition(versionId: string, from: readonly VersionState[], to: VersionState, audit: AuditContext): Promise<boolean>;
  /** Stamps compromisedAt (a leak of the current version under rotate-then-revoke). */
  markCompromised(versionId: string, audit: AuditContext): Promise<void>;

  /** Records a leak report once per (source, deliveryId, fingerprint). */
  recordLeak(input: LeakReportInput & { version: VersionRecord | null; outcome: LeakOutcome }, audit: AuditContext): Promise<LeakRecord>;
  /** Stamps blockedAt on the version's open leak reports; returns their receivedAt times. */
  markBlocked(versionId: string): Promise<Date[]>;

  /** For reconcile(): what should have work queued. */
  pendingWork(): Promise<{
    /** Every run still running, of every kind. */
    activeRuns: RunRecord[];
    previous: VersionRecord[];
    compromised: VersionRecord[];
    leakedCurrent: VersionRecord[];
  }>;
}

/** BullMQ behind an interface. Job ids are deterministic; adding an existing one is a no-op. */
export interface WorkQueue {
  /** Queues the job that drives a run; urgent runs go to the revocations queue. */
  enqueueRun(run: RunRecord, options: { urgent: boolean; attempts: number; backoffMs: number }): Promise<void>;
  /** Moves a queued, not yet started run job to the revocations queue. */
  expediteRun(run: RunRecord, options: { attempts: number; backoffMs: number }): Promise<void>;
  /** Retires a version at `at`; an earlier time moves an existing job forward. */
  scheduleRetirement(versionId: string, at: Date, options: { attempts: number; backoffMs: number }): Promise<void>;
  /** Takes a compromised version down; retried every few seconds at most, however long its targets fail. */
  enqueueRevocation(versionId: string): Promise<void>;
  /** At the leak deadline, blocks a leaked current version that has not been replaced. */
  scheduleBlock(versionId: string, at: Date): Promise<void>;
}

/** Figures core reports as it goes; the metrics module implements it. */
export interface EngineEvents {
  runFinished(kind: RunKind, status: RunStatus, trigger: string, seconds: number): void;
  triggerSkipped(reason: 'stale' | 'busy'): void;
  leakBlocked(seconds: number): void;
}
