/**
 * The records core reasons about, and the two ports it drives besides providers:
 * {@link StateRepository} (PostgreSQL, the source of truth) and {@link WorkQueue}
 * (BullMQ, derived work that reconcile() can rebuild from the repository).
 */
import type { JsonObject } from './ports.js';
import type { Notice } from './notify.js';
import type { StoreFinding } from './sync.js';
import type { RetirePolicy, UsagePolicy } from './usage-rules.js';

export const VERSION_STATES = ['issuing', 'pending', 'current', 'previous', 'retired', 'revoked', 'failed', 'compromised'] as const;
export type VersionState = (typeof VERSION_STATES)[number];

/**
 * Every allowed version state change, from -> to (DESIGN.md's lifecycle). A version is
 * created `issuing`; `revoked` and `failed` are final. The repository refuses any change
 * not listed here (REKEY_ERR_INVALID), whoever asks for it.
 */
export const VERSION_TRANSITIONS: Readonly<Record<VersionState, readonly VersionState[]>> = {
  issuing: ['pending', 'failed', 'compromised'],
  pending: ['current', 'failed', 'compromised'],
  current: ['previous', 'compromised'],
  previous: ['retired', 'compromised'],
  retired: ['revoked', 'compromised'],
  compromised: ['revoked'],
  revoked: [],
  failed: [],
};

/** Whether the lifecycle allows a version to go from `from` to `to`. */
export function canTransition(from: VersionState, to: VersionState): boolean {
  return VERSION_TRANSITIONS[from].includes(to);
}
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
  /** The credential's public identifier (Issuer.publicId), when its issuer names one. */
  publicId: string | null;
  graceEndsAt: Date | null;
  promotedAt: Date | null;
  compromisedAt: Date | null;
  createdAt: Date;
  /** When a usage source last saw it used (usage.ts); null: never seen. */
  lastUsedAt: Date | null;
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
  /** Usage rules for the secret's keys (usage-rules.ts); undefined: usage is recorded, no rule applies. */
  usage?: UsagePolicy | undefined;
  /** Usage-aware retirement (usage-retire.ts); undefined: previous versions retire when their grace ends. */
  retire?: RetirePolicy | undefined;
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
  /** Set when this record was stamped blocked as it was inserted (its takedown finished first); null otherwise. */
  blockedAt: Date | null;
}

/**
 * What the repository reads, under the secret's lock, for a promotion: the run's version,
 * the secret's current version (the run's own after a repeat), its previous versions and
 * the version promoted last before this one.
 */
export interface PromotionSnapshot {
  version: VersionRecord;
  current: VersionRecord | null;
  previous: readonly VersionRecord[];
  /**
   * The newest version ever promoted other than `version` (whatever its state now): the one
   * the store held as current until this promotion. Null when there is none.
   */
  displaced?: VersionRecord | null;
  /** The transaction's time. */
  now: Date;
  /** The run's own grace (StateRepository.setRunGrace: 0 after a leak), read in the same transaction; null for the policy's. */
  runGraceMs?: number | null;
}

/** What a rotation step records in one transaction with its last write (StateRepository.markPending, recordProgress). */
export interface StepProgress {
  runId: string;
  /** The run's next step. */
  step?: RotationStep;
  /**
   * The version's delivery rows at these targets set to `status` (`pending` counts an
   * attempt), each audited `delivery.<status>`; `through`: statuses the rows passed on the
   * way in this attempt without being written (deploy and verify in one commit), audited
   * first, in order.
   */
  deliveries?: { targets: readonly string[]; status: DeliveryStatus; through?: readonly DeliveryStatus[] };
}

/** What planDecommission reads under the secret's lock. */
export type DecommissionSnapshot = Omit<PromotionSnapshot, 'version' | 'runGraceMs' | 'displaced'>;

/** One version's change within a promotion; `to` equal to its state changes only the fields in `set`. */
export interface VersionChange {
  /** The version as read; the repository applies the change only while it is still in this state. */
  version: VersionRecord;
  to: VersionState;
  set: { graceEndsAt?: Date; promotedAt?: Date };
  /** The audit event the change writes. */
  audit: { action: string; data: JsonObject };
}

/** A promotion as core builds it (lifecycle.ts planPromotion) and the repository applies it, in one transaction. */
export interface Promotion {
  /** Applied in order. */
  changes: readonly VersionChange[];
  /** Stamped on the secret as lastPromotedAt; absent when the version was current already (a repeat after a crash). */
  promotedAt?: Date;
  /**
   * The run's step once the promotion is applied: `done` finishes the run in the same
   * transaction (succeeded, lease ended, audited `run.finished`); `finalize` leaves it to
   * the rotation's finalize step (a displaced version to destroy in the store first).
   */
  nextStep: RotationStep;
}

/** A promotion as the repository applied it. */
export interface AppliedPromotion extends Promotion {
  /** The secret's previous and compromised versions after it, oldest first: what the retirements and revocations queued next are for. */
  takedowns: VersionRecord[];
}

/**
 * A rotation attempt begun: its lease taken, the run as the lease's statement read it, its
 * version, and the version the store holds as current (the newest ever promoted: see
 * lastPromoted), which no other run can change while this one holds its secret's rotation.
 */
export type RotationAttempt =
  | { granted: true; run: RunRecord; version: VersionRecord | null; storeCurrent: VersionRecord | null }
  | { granted: false; run: RunRecord | null };

export interface AuditContext {
  actor: string;
  runId?: string;
}

/**
 * PostgreSQL behind an interface: the source of truth core drives.
 *
 * Conventions, unless a method says otherwise:
 * - Reads take no lock and return `null` (or `[]`) for what does not exist.
 * - Every method that changes lifecycle state writes its audit event in the same
 *   transaction, and takes **the secret lock** (the secret's row, `SELECT ... FOR UPDATE`)
 *   first, so promotions, leak reports and takedowns of one secret serialize.
 * - Version state changes follow {@link VERSION_TRANSITIONS}: any other is refused with
 *   RekeyError REKEY_ERR_INVALID and nothing is written.
 * - Any method may throw the database's own error when PostgreSQL is unreachable; the
 *   engine treats it as retryable.
 */
export interface StateRepository {
  /** The secret named `name` (removed ones too: `removedAt` is set). */
  getSecret(name: string): Promise<SecretRecord | null>;
  getRun(id: string): Promise<RunRecord | null>;
  getVersion(id: string): Promise<VersionRecord | null>;
  /** The secret's one current version (a unique index allows no second). */
  currentVersion(secretId: string): Promise<VersionRecord | null>;
  /**
   * A version whose value has this fingerprint, in any state (leak matching), and whether its
   * secret was removed from the config (`secretRemoved`, read in the same statement).
   */
  findVersionByFingerprint(fingerprint: string): Promise<(VersionRecord & { secretRemoved: boolean }) | null>;
  /** Every version whose value has this fingerprint: two may share a value (an issuer that gave two secrets the same token). */
  findVersionsByFingerprint(fingerprint: string): Promise<Array<VersionRecord & { secretRemoved: boolean }>>;
  findVersionByNumber(secret: string, number: number): Promise<VersionRecord | null>;
  /** The newest version whose credential has this public identifier (Issuer.publicId: an AWS access key id). */
  findVersionByPublicId(publicId: string): Promise<VersionRecord | null>;
  /**
   * The newest version ever promoted (whatever its state now), or the newest promoted before
   * `before`: the version the store holds as current until a successor is promoted.
   */
  lastPromoted(secretId: string, before?: Date): Promise<VersionRecord | null>;
  /** The version's delivery rows, one per target it was ever sent to, by target name. */
  deliveries(versionId: string): Promise<DeliveryRecord[]>;
  /** A secret's versions in the given states (one or two: the live ones a step needs), oldest first. */
  versions(secretId: string, states: readonly VersionState[]): Promise<VersionRecord[]>;
  /** The versions in the given states (up to six: every state but the history's revoked and failed) of every named secret, in one query. */
  versionsOf(secretNames: readonly string[], states: readonly VersionState[]): Promise<VersionRecord[]>;

  /**
   * Creates a rotation run (step `issue`, audited `run.started`), or returns the run that
   * already holds the idempotency key or the secret's one running rotation, with
   * `created: false`. Idempotent per key; no lock: unique indexes decide the race.
   * @throws RekeyError REKEY_ERR_CONFLICT when neither insert nor look-up wins after five tries.
   */
  createRotationRun(input: {
    /** The secret's name. */
    secret: string;
    trigger: string;
    idempotencyKey: string;
    graceMs: number | null;
    /** A request older than the secret's last promotion makes no run: `{ stale }` is returned instead. */
    requestedAt?: Date;
    /**
     * A leak's rotation: the leaked version. Once another version is current (a rotation
     * promoted since the leak was seen), no new run is made and `{ stale }` is returned: a
     * second, zero-grace rotation would cut the overlap of a key that never leaked. While none
     * is (the leaked version is current still, or already taken down), the run is made.
     */
    replacing?: string;
    /**
     * With `replacing`: stamp it compromised first (compromisedAt, audited `version.leaked`, under
     * the secret lock; nothing when stamped already), in the run's own transaction: the leak of a
     * current version under rotate-then-revoke. When no run is made there (one is running already,
     * or the version was replaced), the stamp commits in a transaction of its own before the run
     * is looked up.
     */
    compromise?: boolean;
    audit: AuditContext;
  }): Promise<{ run: RunRecord; created: boolean } | { stale: SecretRecord }>;
  /**
   * Creates (or returns) the run that retires or revokes one version, and counts an attempt at
   * it while it runs (for the status output and the reconciler's budget): one run per (kind,
   * version), audited `run.started` once. A finished run is returned as it is.
   */
  startVersionRun(input: { kind: 'retirement' | 'revocation'; version: VersionRecord; trigger: string; audit: AuditContext }): Promise<RunRecord>;
  /** The version's retirement or revocation run while it is still running, if there is one. */
  openVersionRun(kind: 'retirement' | 'revocation', versionId: string): Promise<RunRecord | null>;
  /**
   * Audits a trigger that made no run of its own: stale, or joined to a running rotation. A
   * key that already has an outcome (it made a run, or was audited before: a job delivered
   * again after a worker died) is not audited again; returns whether this call audited it.
   * Takes the secret lock, so two deliveries of one key audit it once.
   */
  recordTrigger(input: { secret: Pick<SecretRecord, 'id' | 'name'>; trigger: string; idempotencyKey: string; outcome: 'stale' | 'joined'; runId?: string }, audit: AuditContext): Promise<boolean>;
  /**
   * Takes (or renews) the right to drive a run for `ms`, by the database's clock: granted when
   * nobody holds it, its lease has expired, or `owner` holds it already. One driver per run.
   * One conditional UPDATE of the run's row; never granted for a finished run. Not audited.
   */
  takeLease(runId: string, owner: string, ms: number): Promise<boolean>;
  /**
   * Extends the lease `owner` holds to `ms` from now, by the database's clock, only while it holds it: never
   * granted once it has expired or another has taken it (even if that one has let it go since, unlike takeLease:
   * a renewal that arrives late must not take back a run a successor drove meanwhile). One conditional UPDATE; not audited.
   */
  renewLease(runId: string, owner: string, ms: number): Promise<boolean>;
  /**
   * Begins an attempt at a rotation run, in one transaction: takes the lease as takeLease does
   * and counts an attempt (as startVersionRun does) in one UPDATE that reads the run with it; a run at `issue` with no version gets
   * its version as createVersion makes it. Not granted: the run as it is (null for none),
   * nothing written.
   */
  startRotationAttempt(runId: string, owner: string, ms: number, audit: AuditContext): Promise<RotationAttempt>;
  /** Gives the lease up if `owner` still holds it; idempotent, not audited. */
  releaseLease(runId: string, owner: string): Promise<void>;
  /**
   * Records the step a run has reached, only while `leaseOwner` (RunLease.owner) holds the open run, checked by the
   * write itself; idempotent. Progress bookkeeping: not audited (the step's own events are).
   * @returns false, nothing written, once another driver has taken the run over or it has finished.
   */
  setRunStep(runId: string, step: RotationStep, leaseOwner: string): Promise<boolean>;
  /** Sets the overlap the run's promotion will give the version it replaces (0 after a leak); audited `run.grace`. */
  setRunGrace(runId: string, graceMs: number, audit: AuditContext): Promise<void>;
  /**
   * Starts a running rotation over at `issue` with no version (its version was rolled back):
   * an emergency rotation is retried with a fresh version rather than finished. Audited
   * `run.restarted`; a finished run is left as it is. No lock but the run's row.
   * With `leaseOwner` (RunLease.owner), only while it holds the open run, checked by the write itself.
   * @returns whether it restarted the run: false, nothing written, once it has finished (or, with `leaseOwner`, another driver holds it).
   */
  restartRun(runId: string, audit: AuditContext, leaseOwner?: string): Promise<boolean>;
  /**
   * Error texts (here, in finishRun and setDelivery) are stored through errors.ts `sanitize`. Overwrites; not audited.
   * With `leaseOwner` (RunLease.owner), only while it holds the open run, checked by the write itself.
   * @returns false, nothing written, when `leaseOwner` does not hold the open run (another driver took it over, or it has finished).
   */
  recordRunError(runId: string, error: string, leaseOwner?: string): Promise<boolean>;
  /**
   * Closes a running run with `status` (audited `run.finished`) and ends its lease; idempotent: a run already finished is left as it is.
   * With `leaseOwner` (RunLease.owner; a rotation's own close), only while it holds the open run, checked by the write itself;
   * without, any caller (a retirement or revocation, which hold no lease).
   * @returns whether this call closed it: false, nothing written, when it had finished (or, with `leaseOwner`, another driver holds it).
   */
  finishRun(runId: string, status: Exclude<RunStatus, 'running'>, audit: AuditContext, error?: string, leaseOwner?: string): Promise<boolean>;

  /**
   * Creates the run's version in `issuing` with the secret's next number (audited
   * `version.issuing`), or returns the one it already has. Idempotent per run; takes the secret lock.
   */
  createVersion(runId: string, audit: AuditContext): Promise<VersionRecord>;
  /**
   * Records what issue() produced (fingerprint, public issuer state, public id; never the value); audited `version.issued`. A repeat overwrites.
   * Only for the driver whose lease is `leaseOwner` (RunLease.owner) on the run that made the version, checked by the write itself:
   * null, nothing written, once another driver has taken the run over or it has finished (or there is no such version).
   */
  recordIssued(versionId: string, issued: { fingerprint: string; issuerState: JsonObject; publicId: string | undefined }, audit: AuditContext, leaseOwner: string): Promise<VersionRecord | null>;
  /**
   * issuing -> pending with the store's version id (audited), with `next`'s bookkeeping. Idempotent: a pending version
   * is returned as it is (`next` recorded again). Takes the secret lock, then the run's row.
   * Only while `leaseOwner` (RunLease.owner) holds the open run `next.runId`, checked by the write itself:
   * null, nothing written, once another driver has taken the run over or it has finished.
   * @throws RekeyError REKEY_ERR_COMPROMISED when the version is in any other state (a leak report took it).
   */
  markPending(versionId: string, storeVersionId: string, audit: AuditContext, next: StepProgress, leaseOwner: string): Promise<VersionRecord | null>;
  /**
   * Records a rotation step's progress (`next`: delivery rows, then the run's step) in one
   * transaction with its audit events, and returns the version as it is now (a leak report
   * may have taken it meanwhile). Locks the run's row, nothing else.
   * Only while `leaseOwner` (RunLease.owner) holds the open run `next.runId`, checked by the write itself:
   * null, nothing written, once another driver has taken the run over or it has finished.
   * @throws RekeyError REKEY_ERR_UNKNOWN for no such version.
   */
  recordProgress(versionId: string, next: StepProgress, audit: AuditContext, leaseOwner: string): Promise<VersionRecord | null>;
  /**
   * Upserts the (version, target) delivery row, audited `delivery.<status>`; `pending` counts
   * an attempt. Written before the target is called, so a crash leaves a row to roll back. No lock,
   * but the run's row with `leaseOwner`.
   * With `leaseOwner` (RunLease.owner; a rotation's own write), only while it holds the version's open run,
   * checked by the write itself; without, any writer (a retirement or revocation, which hold no lease).
   * @returns false, nothing written, when `leaseOwner` does not hold the version's open run.
   * @throws RekeyError REKEY_ERR_UNKNOWN for no such version.
   */
  setDelivery(versionId: string, target: string, status: DeliveryStatus, audit: AuditContext, error?: string, leaseOwner?: string): Promise<boolean>;
  /**
   * Applies the promotion `plan` builds (core's planPromotion) from what it reads under the
   * secret lock, in one transaction: each version change (only from the state it was read
   * in), secret.lastPromotedAt, the run's next step (`done`: the run finished as finishRun
   * does), and their audit events. Idempotent through the plan: a version already current
   * changes only the step. Returns what it applied and the takedowns it leaves.
   * Only while `leaseOwner` (RunLease.owner) holds the open run, checked under the run's row lock:
   * null, nothing written, once another driver has taken the run over or it has finished.
   * @throws what `plan` throws (REKEY_ERR_COMPROMISED), RekeyError REKEY_ERR_INVALID for a
   *   change the transitions table refuses; nothing is written then.
   */
  promote(runId: string, plan: (snapshot: PromotionSnapshot) => Promotion, audit: AuditContext, leaseOwner: string): Promise<AppliedPromotion | null>;
  /**
   * Moves a version to `to` when it is in one of `from`, stamping retiredAt / revokedAt /
   * compromisedAt (an earlier compromisedAt is kept); audited `version.<to>`. Returns whether
   * it moved: false (nothing written) when the version is in none of `from`, so a repeat is
   * harmless. Takes the secret lock (then, with `leaseOwner`, the row of the version's run).
   * With `leaseOwner` (RunLease.owner; a rotation failing its own version), only while it holds the version's open run,
   * checked by the write itself: null, nothing written, once another driver has taken the run over or it has finished.
   * Without, any caller (takedowns and leaks, which hold no lease): never null.
   * @throws RekeyError REKEY_ERR_INVALID when the table refuses the change; REKEY_ERR_UNKNOWN for no such version.
   */
  transition(versionId: string, from: readonly VersionState[], to: VersionState, audit: AuditContext, leaseOwner?: string): Promise<boolean | null>;
  /**
   * Decommissions a secret removed from the config, in one transaction that locks it: applies
   * the changes `plan` (lifecycle.ts planDecommission) builds from its current and previous
   * versions, audited, then `secret.decommissioned`. Returns the versions left to take down
   * (previous, retired).
   * @throws RekeyError REKEY_ERR_CONFLICT while a rotation of the secret is running.
   */
  decommission(secretId: string, plan: (snapshot: DecommissionSnapshot) => readonly VersionChange[], audit: AuditContext): Promise<VersionRecord[]>;

  /**
   * Applies the changes `plan` (lifecycle.ts planGraceEnd; usage-retire.ts planHold, planUnused) builds from the secret's current
   * and previous versions, read under the secret lock, in one transaction, each audited;
   * returns the versions that are previous afterwards.
   * `notices(changes)` (called only when the plan changes something) are written to the
   * notification outbox in the same transaction.
   * @throws RekeyError REKEY_ERR_CONFLICT when a version changed state while being planned.
   */
  endGrace(
    secretId: string,
    plan: (snapshot: DecommissionSnapshot) => readonly VersionChange[],
    audit: AuditContext,
    notices?: (changes: readonly VersionChange[]) => readonly Notice[],
  ): Promise<VersionRecord[]>;

  /**
   * Records a leak report (audited `leak.reported`) once per (source, deliveryId, fingerprint):
   * a redelivery returns the first record with `duplicate: true`. Takes the secret lock of a
   * matched version: a version already blocked (markBlocked ran first: its revocation finished
   * before this row existed) stamps the report blocked at once, returned as `blockedAt`.
   * `notices(record)` are written to the notification outbox in the same transaction (a
   * redelivery, which records nothing, writes none).
   */
  recordLeak(input: LeakReportInput & { version: VersionRecord | null; outcome: LeakOutcome }, audit: AuditContext, notices?: (record: LeakRecord) => readonly Notice[]): Promise<LeakRecord>;
  /**
   * Stamps blockedAt on the version (once) and on its open leak reports; returns their
   * receivedAt times. Idempotent: a report is stamped once. Takes the secret lock, so a report
   * recorded at the same time either is stamped here or finds the version's stamp.
   * `notices(receivedAt)` (given the times it returns, called only when there are some) are
   * written to the notification outbox in the same transaction.
   */
  markBlocked(versionId: string, notices?: (receivedAt: readonly Date[]) => readonly Notice[]): Promise<Date[]>;

  /**
   * For reconcile(): what should have work queued. Reads only. With `since`, only the items
   * written at or after it (by the database's clock), and previous versions whose grace ended
   * between it and `asOf`; without, every open item.
   */
  pendingWork(since?: Date): Promise<{
    /** The database's clock when the read began: the next incremental pass's watermark. */
    asOf: Date;
    /** Every run still running, of every kind. */
    activeRuns: RunRecord[];
    /** With `since`: the ids of runs that ended since (so a caller can forget them); otherwise empty. */
    endedRuns: string[];
    previous: VersionRecord[];
    compromised: VersionRecord[];
    leakedCurrent: VersionRecord[];
    /**
     * The last promoted version of each secret still in the config that has no current version
     * and no running rotation, when that version was taken down after a leak: nothing is
     * replacing it (a worker died between the revocation and its request for a replacement).
     */
    unreplaced: VersionRecord[];
  }>;
}

/** BullMQ behind an interface. Job ids are deterministic; adding an existing one is a no-op. */
export interface WorkQueue {
  /**
   * Queues the job that drives a run; urgent runs (a leak's replacement) go to the emergencies
   * queue. Nothing happens when a queue holds its job already, which is looked up first unless `fresh` (the run
   * was created a moment ago by the caller: no job for it can exist yet, and one added meanwhile
   * by reconcile() went to the same queue, where the add collapses).
   */
  enqueueRun(run: RunRecord, options: { urgent: boolean; attempts: number; backoffMs: number; fresh?: boolean }): Promise<void>;
  /** Moves a queued, not yet started run job to the emergencies queue. */
  expediteRun(run: RunRecord, options: { attempts: number; backoffMs: number }): Promise<void>;
  /**
   * Retires a version at `at`; an earlier time moves an existing job forward, which is looked up
   * first unless `fresh` (the version left `current` in the caller's promotion a moment ago: no
   * retirement job for it can exist from before, and one added meanwhile, by reconcile() or by a
   * later promotion that cut its grace, is due no later, so the add collapsing into it keeps it).
   */
  scheduleRetirement(versionId: string, at: Date, options: { attempts: number; backoffMs: number; fresh?: boolean }): Promise<void>;
  /** Takes a compromised version down; retried every few seconds at most, however long its targets fail. */
  enqueueRevocation(versionId: string): Promise<void>;
  /** At the leak deadline, blocks a leaked current version that has not been replaced. */
  scheduleBlock(versionId: string, at: Date): Promise<void>;
  /** Retires a version the drift check found at `target` although it must be refused; on the revocations queue, with a takedown's retries. */
  enqueueTargetRetire(versionId: string, target: string): Promise<void>;
}

/**
 * A change delivery clients hear about (GET /v1/events): a secret got a new current version
 * (`rotated`), or one of its versions was found leaked or revoked (`revoked`). Never a value.
 */
export interface SecretChange {
  secret: string;
  event: 'rotated' | 'revoked';
  /** The version's number. */
  version: number;
  /** Its id in the change log (a Redis stream id), once published: what `GET /v1/events` sends as the event's `id:`. */
  id?: string;
}

/** Figures core reports as it goes; the metrics module implements it. */
export interface EngineEvents {
  runFinished(kind: RunKind, status: RunStatus, trigger: string, seconds: number): void;
  triggerSkipped(reason: 'stale' | 'busy'): void;
  leakBlocked(seconds: number): void;
  /** An emergency rotation (a leak's replacement) rolled its version back and starts over with a fresh one. */
  emergencyRetried(): void;
  /** A provider call ended: `outcome` is `ok` or its error's code in lower case (`timeout`, `unavailable`, `error`). */
  providerCalled(provider: string, op: string, outcome: string, seconds: number): void;
  /** A drift check found `count` versions `missing` at a target, or `unwanted` ones still held. */
  targetDrift(target: string, kind: 'missing' | 'unwanted', count: number): void;
  /** The store check (store-drift.ts) found a store's current stage on another version than rekey's current, and whether it repaired it. */
  storeDrift(store: string, found: Exclude<StoreFinding, 'in-sync'>, repaired: boolean): void;
}
