/**
 * The rotation protocol (DESIGN.md): issue -> deploy -> verify -> promote -> finalize,
 * or rollback after the last attempt. Every step is idempotent and records its
 * progress before moving on, so a worker killed anywhere resumes from the run row.
 */
import { throwFirstError } from './call.js';
import { announce, audit, type EngineDeps, issuedRef, noteRunError, now, providerCall, retirementDue, storedRef, versionRef } from './context.js';
import { ProviderError, RekeyError, describeError, isRetryable } from './errors.js';
import type { DeliveryStatus, RotationStep, RunRecord, RunStatus, StepProgress, VersionRecord } from './model.js';
import type { Call, ExpectedCurrent, Target } from './ports.js';
import type { ResolvedSecret } from './resolved.js';
import type { SecretValue } from './secret-value.js';
import { LeaseLost, RunLease } from './lease.js';
import { isEmergency, makeRoom } from './emergency.js';
import { planPromotion, takenDownAsStoreCurrent } from './lifecycle.js';
import { retireAtTargets, revokeAtIssuer } from './retire.js';
import { rotationGaveUp } from './notify.js';
import { blockLeaked } from './takedown.js';

export interface Attempt {
  /** No retry follows this one: a failure rolls back (an emergency rotation starts over instead). */
  final: boolean;
  /** Which try of this job, 1 for the first: an emergency rotation's version gets `retry.attempts` of them. @defaultValue 1 */
  number?: number;
}

/** Thrown once an emergency rotation has started over with no version: its job is retried, with backoff. */
class StartedOver extends RekeyError {
  constructor(message: string) {
    super('REKEY_ERR_UNAVAILABLE', message);
  }
}

const FORWARD: readonly RotationStep[] = ['issue', 'deploy', 'verify', 'promote', 'finalize'];
/** A version in one of these states was promoted: its run is done, never rolled back. */
const PROMOTED_STATES: ReadonlySet<string> = new Set(['current', 'previous']);

/** Drives a rotation run as far as it goes. Throws only when the job should be retried. */
export async function driveRotation(deps: EngineDeps, runId: string, attempt: Attempt): Promise<RunStatus> {
  // The lease, the run and (at `issue`) its new version: one commit before anything else.
  const begun = await RunLease.begin(deps, runId);
  if (!begun.lease) return begun.status;
  const { lease, run } = begun;
  try {
    const started = now(deps);
    const status = await new Rotation(deps, run, lease, begun.version, begun.storeCurrent).drive(attempt);
    deps.events.runFinished('rotation', status, run.trigger, (now(deps).getTime() - run.startedAt.getTime()) / 1000);
    deps.log.debug({ runId, ms: now(deps).getTime() - started.getTime() }, 'rotation attempt done');
    return status;
  } finally {
    await lease.release();
  }
}

class Rotation {
  private readonly log;
  private step: RotationStep;
  private value: SecretValue | undefined;
  /**
   * The version as this attempt's promotion left it, the takedowns it left to queue, and which
   * of them it moved out of `current` (no retirement job can exist for those yet: queueTakedowns).
   */
  private promoted: { version: VersionRecord; takedowns: readonly VersionRecord[]; demoted: ReadonlySet<string> } | undefined;
  /** Targets this attempt deployed to without recording it yet (deploy and verify commit once, see eachTarget). */
  private unrecorded: string[] = [];

  constructor(
    private readonly deps: EngineDeps,
    private readonly run: RunRecord,
    private readonly lease: RunLease,
    /** The run's version as the attempt's first commit read or created it. */
    private readonly version: VersionRecord | null,
    /** The version the store held as current when the attempt began (RotationAttempt). */
    private readonly storeCurrentAtStart: VersionRecord | null,
  ) {
    this.log = deps.log.child({ runId: run.id, secret: run.secret });
    this.step = run.step as RotationStep;
  }

  async drive(attempt: Attempt): Promise<RunStatus> {
    let resolved: ResolvedSecret | undefined;
    try {
      resolved = await this.deps.providers.resolve(this.run.secret);
      if (this.step === 'rollback') return await this.giveUp(resolved, this.run.error ?? 'rolled back');
      await this.forward(resolved);
      return 'succeeded';
    } catch (error) {
      // Another worker drives the run now; or an emergency rotation started over and waits for its retry.
      if (error instanceof LeaseLost || error instanceof StartedOver) throw error;
      const reason = describeError(error);
      // Refused: this driver stalled past its lease (in a provider call), and the run is another's now, or finished.
      if (!(await noteRunError(this.deps, this.run.id, reason, this.log, this.lease.owner))) throw this.lease.lose();
      this.log.warn({ step: this.step, error: reason, final: attempt.final }, 'rotation step failed');
      // An emergency rotation's job is never final (names.ts emergencyRetry): each version gets retry.attempts tries.
      const spent = !!resolved && (attempt.number ?? 1) % resolved.policy.retry.attempts === 0 && (await isEmergency(this.deps, this.run));
      const final = attempt.final || !isRetryable(error) || spent;
      // Roll back a forward step that cannot promote; a failed rollback is retried as a whole.
      const canRollBack = FORWARD.indexOf(this.step) !== -1 && FORWARD.indexOf(this.step) <= FORWARD.indexOf('promote');
      if (final && canRollBack && resolved) return await this.giveUp(resolved, reason, error);
      if (final && !resolved) {
        // The secret cannot be resolved any more (no revision binds it): nothing can be rolled back through its providers.
        // A version this attempt created for it was never issued: it fails with the run.
        // Each as the lease's holder: a driver that stalled here fails no version and closes no run its successor drives.
        if (this.version?.state === 'issuing' && !this.version.fingerprint) {
          if ((await this.deps.repo.transition(this.version.id, ['issuing'], 'failed', audit(this.deps, this.run.id), this.lease.owner)) === null) throw this.lease.lose();
        }
        await this.finishRun('failed', reason);
        await rotationGaveUp(this.deps, this.run, { status: 'failed', step: this.step, error });
        return 'failed';
      }
      throw error;
    }
  }

  /**
   * Each step records its outcome and the next step in one transaction (README, Architecture:
   * what each commit holds). A step this attempt reached from the one before needs not read
   * back what that one wrote: no delivery row is deployed before `deploy`, none verified before `verify`.
   */
  private async forward(resolved: ResolvedSecret): Promise<void> {
    const from = this.step;
    let version = this.version ?? (await this.deps.repo.createVersion(this.run.id, audit(this.deps, this.run.id)));
    if (this.step === 'issue') {
      version = await this.issue(resolved, version); // marking it pending records `deploy` and the pending deliveries
      if (this.step === 'issue') await this.advance('deploy');
    }
    // Deploy and verify commit once when both succeed (`verify` is recorded only on a failure of verify).
    if (this.step === 'deploy') version = await this.deploy(resolved, version, from === 'issue' ? 'recorded' : 'resumed');
    if (this.step === 'verify') version = await this.verify(resolved, version, from !== 'verify');
    if (this.step === 'promote') {
      this.step = await this.promote(resolved, version); // recorded by repo.promote in the same transaction (`done`: the run too)
    }
    if (this.step === 'finalize') {
      const promoted = this.promoted?.version ?? (await this.deps.repo.getVersion(version.id)) ?? version;
      await this.finalize(resolved, promoted, this.promoted?.takedowns ?? (await this.deps.repo.versions(this.run.secretId, ['previous', 'compromised'])));
    } else if (this.step === 'done' && this.promoted) {
      await this.queueTakedowns(resolved, this.promoted.takedowns);
      this.log.info({}, 'rotation promoted');
    }
  }

  private async issue(resolved: ResolvedSecret, version: VersionRecord): Promise<VersionRecord> {
    const { issuer, store, policy, names } = resolved;
    if (version.state !== 'issuing') return this.live(version);
    this.lease.check();
    const ctx = audit(this.deps, this.run.id);
    if (version.fingerprint) {
      // A crash after issue(): the value may have reached the store before we lost it.
      const stored = (await providerCall(this.deps, this.log, { provider: names.store, op: 'store.list' }, policy.timeoutMs, (c) => store.list(c))).find(
        (v) => v.versionId === version.id,
      );
      if (stored) return this.markPending(resolved, version, stored.storeVersionId);
      await providerCall(this.deps, this.log, { provider: names.issuer, op: 'issuer.revoke' }, policy.timeoutMs, (c) => issuer.revoke(issuedRef(version, policy.consumer), c));
    }
    const issued = await providerCall(this.deps, this.log, { provider: names.issuer, op: 'issuer.issue' }, policy.timeoutMs, (c) => issuer.issue(versionRef(version, policy.consumer), c));
    const fingerprint = this.deps.fingerprint(issued.value);
    const recorded = await this.deps.repo.recordIssued(version.id, { fingerprint, issuerState: issued.state, publicId: issuer.publicId?.(issued.state) }, ctx, this.lease.owner);
    if (!recorded) {
      // This driver stalled past its lease while issuing (a long GC pause: check() trusts a renewal it has not made since),
      // and another drives the run now, with a credential of its own for this version. This one is recorded nowhere: revoked here.
      await providerCall(this.deps, this.log, { provider: names.issuer, op: 'issuer.revoke' }, policy.timeoutMs, (c) => issuer.revoke(issuedRef({ ...version, issuerState: issued.state }, policy.consumer), c)).catch(
        (error: unknown) => this.log.error({ error: describeError(error) }, 'could not revoke a credential issued after the lease was lost; revoke it at the issuer by hand'),
      );
      throw this.lease.lose();
    }
    const { storeVersionId } = await providerCall(this.deps, this.log, { provider: names.store, op: 'store.writePending' }, policy.timeoutMs, (c) =>
      store.writePending(versionRef(recorded, policy.consumer), issued.value, c),
    );
    return this.markPending(resolved, recorded, storeVersionId);
  }

  /**
   * issuing -> pending, the step `deploy` and every target's delivery `pending`, in one
   * transaction, after the value was read back from the store (before any target is called,
   * so a crash mid-deploy leaves rows to roll back). A failed read records the version
   * pending without deliveries first, so the rollback destroys it in the store.
   */
  private async markPending(resolved: ResolvedSecret, version: VersionRecord, storeVersionId: string): Promise<VersionRecord> {
    this.lease.check();
    try {
      await this.readValue(resolved, { ...version, storeVersionId });
    } catch (error) {
      await this.recordPending(resolved, version, storeVersionId, { runId: this.run.id, step: 'deploy' });
      this.step = 'deploy';
      throw error;
    }
    const pending = await this.recordPending(resolved, version, storeVersionId, this.progress('deploy', resolved.policy.targets, 'pending'));
    this.step = 'deploy';
    return pending;
  }

  /**
   * repo.markPending. A leak report that took the version down before it was recorded as stored
   * leaves it with no store version id, so neither its revocation nor the rollback would find the
   * value this attempt has just written: it is destroyed here, then the refusal is thrown.
   */
  private async recordPending(resolved: ResolvedSecret, version: VersionRecord, storeVersionId: string, next: StepProgress): Promise<VersionRecord> {
    let pending: VersionRecord | null;
    try {
      pending = await this.deps.repo.markPending(version.id, storeVersionId, audit(this.deps, this.run.id), next, this.lease.owner);
    } catch (error) {
      const taken = error instanceof RekeyError && error.code === 'REKEY_ERR_COMPROMISED' ? await this.deps.repo.getVersion(version.id) : null;
      if (taken?.compromisedAt && !taken.storeVersionId && (taken.state === 'compromised' || taken.state === 'revoked')) {
        const { store, policy, names } = resolved;
        await providerCall(this.deps, this.log, { provider: names.store, op: 'store.destroy' }, policy.timeoutMs, (c) => store.destroy(storedRef({ ...taken, storeVersionId }, policy.consumer), c));
      }
      throw error;
    }
    // This driver stalled past its lease (in store.writePending or store.read): its successor drives the run, or finished it.
    if (!pending) throw this.lease.lose();
    return pending;
  }

  /**
   * Reads the pending value back from the store, once per attempt: nothing after issue()
   * keeps the value, and the fingerprint check proves the store holds what was issued.
   */
  private async readValue({ store, policy, names }: ResolvedSecret, version: VersionRecord): Promise<SecretValue> {
    if (this.value) return this.value;
    const value = await providerCall(this.deps, this.log, { provider: names.store, op: 'store.read' }, policy.timeoutMs, (c) => store.read({ storeVersionId: storedRef(version, policy.consumer).storeVersionId }, c));
    if (this.deps.fingerprint(value) !== version.fingerprint) {
      throw new RekeyError('REKEY_ERR_INVALID', `store returned a different value for version ${version.number} of ${version.secret}`);
    }
    this.value = value;
    return value;
  }

  /**
   * `recorded`: this attempt issued the version and recorded every target's delivery pending
   * with it, so none has it deployed yet; `resumed`: the rows say where it is. Returns the
   * version as it is after.
   */
  private async deploy(resolved: ResolvedSecret, version: VersionRecord, from: 'recorded' | 'resumed'): Promise<VersionRecord> {
    const value = await this.readValue(resolved, this.live(version));
    const done = await this.delivered(version, from === 'recorded', ['deployed', 'verified']);
    const after = await this.eachTarget(resolved, done, 'deploy', (target, c) => target.deploy(versionRef(version, resolved.policy.consumer), value, c), 'deployed', version, from === 'recorded');
    // A leak report may have retired this version while we were deploying it.
    return this.live(after);
  }

  /** `fresh`: this attempt deployed the version, so no target has verified it yet. Returns the version as it is after. */
  private async verify(resolved: ResolvedSecret, version: VersionRecord, fresh: boolean): Promise<VersionRecord> {
    const value = await this.readValue(resolved, this.live(version));
    const { issuer, policy, names } = resolved;
    try {
      await providerCall(this.deps, this.log, { provider: names.issuer, op: 'issuer.verify' }, policy.timeoutMs, (c) => issuer.verify(issuedRef(version, policy.consumer), value, c));
    } catch (error) {
      await this.recordDeployed(version);
      throw error;
    }
    const done = await this.delivered(version, fresh, ['verified']);
    const after = await this.eachTarget(resolved, done, 'verify', (target, c) => target.verify(versionRef(version, policy.consumer), value, c), 'verified', version);
    // A leak report may have taken this version while we were deploying or verifying it.
    return this.live(after);
  }

  /**
   * Records the deliveries this attempt deployed without recording them (and the step
   * `verify`): before a failure of verify is handled, so a retry resumes at verify, as it
   * would had deploy committed on its own.
   */
  private async recordDeployed(version: VersionRecord): Promise<void> {
    if (this.unrecorded.length === 0) return;
    const targets = this.unrecorded;
    this.unrecorded = [];
    await this.recordProgress(version, this.progress('verify', targets, 'deployed'));
  }

  /**
   * repo.recordProgress, as the lease's holder: a driver that stalled past its lease (in a target's
   * call) moves no step of its successor's back and marks none of its deliveries.
   * @throws LeaseLost
   */
  private async recordProgress(version: VersionRecord, next: StepProgress): Promise<VersionRecord> {
    const recorded = await this.deps.repo.recordProgress(version.id, next, audit(this.deps, this.run.id), this.lease.owner);
    if (!recorded) throw this.lease.lose();
    return recorded;
  }

  /** The targets whose delivery of `version` is in one of `statuses`; none when `fresh` (this attempt did the step before). */
  private async delivered(version: VersionRecord, fresh: boolean, statuses: readonly DeliveryStatus[]): Promise<ReadonlySet<string>> {
    if (fresh) return new Set();
    return new Set((await this.deps.repo.deliveries(version.id)).filter((d) => statuses.includes(d.status)).map((d) => d.target));
  }

  /** Returns the step that follows: `done` when the promotion's transaction finished the run too. */
  private async promote({ store, issuer, policy, names }: ResolvedSecret, version: VersionRecord): Promise<RotationStep> {
    this.lease.check();
    const current = this.storeCurrentAtStart;
    const previous = current && current.id !== version.id && current.storeVersionId ? storedRef(current, policy.consumer) : undefined;
    const expected = await this.expectedCurrent({ store, policy, names }, current);
    try {
      await providerCall(this.deps, this.log, { provider: names.store, op: 'store.promote' }, policy.timeoutMs, (c) =>
        store.promote(storedRef(this.live(version), policy.consumer), previous, expected, c),
      );
    } catch (error) {
      await this.stillLeased(error, 'promote');
      throw error;
    }
    if (!current) {
      // The secret's first promotion. A rolled-back version may still have held the store's current
      // stage (AWS keeps AWSCURRENT on the only version of a new secret), and moving current has just
      // made it previous: readers of `previous` would accept it. Destroy those again (idempotent).
      for (const failed of await this.deps.repo.versions(version.secretId, ['failed'])) {
        if (!failed.storeVersionId) continue;
        await providerCall(this.deps, this.log, { provider: names.store, op: 'store.destroy' }, policy.timeoutMs, (c) => store.destroy(storedRef(failed, policy.consumer), c));
      }
    }
    // The run's grace as the promotion's transaction reads it (a leak report sets 0).
    const promotion = await this.deps.repo.promote(
      this.run.id,
      (snapshot) => planPromotion(snapshot, snapshot.runGraceMs ?? policy.graceMs, { keepEarlierGrace: !!issuer.signJwt }),
      audit(this.deps, this.run.id),
      this.lease.owner,
    );
    // This driver stalled past its lease (in store.promote: check() trusts the last renewal), and another drives the run now.
    if (!promotion) throw this.lease.lose();
    if (promotion.promotedAt) {
      const demoted = new Set(promotion.changes.filter((c) => c.version.state === 'current').map((c) => c.version.id));
      this.promoted = { version: { ...version, state: 'current', promotedAt: promotion.promotedAt }, takedowns: promotion.takedowns, demoted };
      announce(this.deps, { secret: version.secret, event: 'rotated', version: version.number });
    }
    if (promotion.nextStep === 'done') this.lease.finished();
    return promotion.nextStep;
  }

  /**
   * What the store's current stage must still be held by for this promotion (SecretStore.promote):
   * the version current when the attempt began, read under the lease. A secret's first rotation
   * has none in rekey, yet the store may hold one (a value from before rekey, or the first version
   * of a rolled-back first rotation, which AWS keeps current): it is read from the store, then the
   * lease is confirmed, so what was read precedes anything a successor of this driver could do.
   */
  private async expectedCurrent({ store, policy, names }: Pick<ResolvedSecret, 'store' | 'policy' | 'names'>, current: VersionRecord | null): Promise<ExpectedCurrent> {
    if (current?.storeVersionId) return { storeVersionId: current.storeVersionId };
    const listed = await providerCall(this.deps, this.log, { provider: names.store, op: 'store.list' }, policy.timeoutMs, (c) => store.list(c));
    const holder = listed.find((v) => v.stages.includes('current'));
    await this.confirmLease('promote');
    return holder ? { storeVersionId: holder.storeVersionId } : null;
  }

  /**
   * Records `step` as the run's step, as the lease's holder (the same step again changes nothing).
   * @throws LeaseLost when another driver took the run over, or it finished.
   */
  private async confirmLease(step: RotationStep): Promise<void> {
    if (!(await this.deps.repo.setRunStep(this.run.id, step, this.lease.owner))) throw this.lease.lose();
  }

  /**
   * After a store refused to move its current stage (REKEY_ERR_CONFLICT: another version holds it),
   * whether this driver still holds the run's lease: one that stalled past it (its promote arrived
   * late, after a successor and maybe later rotations) stops here, touching nothing more; one that
   * holds it met a change made outside rekey, and the error takes its course (the run fails, loudly).
   * @throws LeaseLost
   */
  private async stillLeased(error: unknown, step: RotationStep): Promise<void> {
    if (!(error instanceof RekeyError && error.code === 'REKEY_ERR_CONFLICT')) return;
    await this.confirmLease(step);
  }

  /**
   * After a promotion that could not finish the run in its own transaction (a displaced version
   * to destroy, or a repeat after a crash): destroys it, queues the takedowns, finishes the run.
   */
  private async finalize(resolved: ResolvedSecret, version: VersionRecord, takedowns: readonly VersionRecord[]): Promise<void> {
    const { store, policy, names } = resolved;
    // A predecessor taken down while the store still held it as current was kept there (takedown.ts): it goes now.
    const displaced = version.promotedAt ? await this.deps.repo.lastPromoted(version.secretId, version.promotedAt) : null;
    if (displaced && takenDownAsStoreCurrent(displaced)) {
      await providerCall(this.deps, this.log, { provider: names.store, op: 'store.destroy' }, policy.timeoutMs, (c) => store.destroy(storedRef(displaced, policy.consumer), c));
    }
    await this.queueTakedowns(resolved, takedowns);
    await this.finishRun('succeeded');
    this.step = 'done';
    this.log.info({}, 'rotation promoted');
  }

  /**
   * Queues the retirements and revocations a promotion left (deterministic job ids: a repeat
   * collapses). After the run may have finished: a crash before this is healed by reconcile(),
   * which queues them for every previous and compromised version written since its last pass.
   * The retirement of a version this attempt's promotion moved out of `current` is queued
   * without looking for an existing job first (WorkQueue.scheduleRetirement's `fresh`): none was
   * made while it was current, and one made since (reconcile, a later promotion cutting its grace)
   * is due no later than this one.
   * A leaked version the promotion replaced is blocked at its targets here first, at once
   * (takedown.ts blockLeaked): its revocation would otherwise refuse it only once its job was
   * picked up and its run recorded. A failure is left to the revocation, which retries it.
   */
  private async queueTakedowns(resolved: ResolvedSecret, takedowns: readonly VersionRecord[]): Promise<void> {
    for (const v of takedowns) {
      if (v.state !== 'compromised') {
        const fresh = this.promoted?.demoted.has(v.id) ?? false;
        await this.deps.queue.scheduleRetirement(v.id, retirementDue(v.graceEndsAt ?? now(this.deps)), { ...resolved.policy.retry, fresh });
        continue;
      }
      await blockLeaked(this.deps, resolved, v, audit(this.deps, this.run.id), this.log, { early: true }).catch((error: unknown) =>
        this.log.warn({ version: v.number, error: describeError(error) }, 'leaked version not blocked at promotion; its revocation retries'),
      );
      await this.deps.queue.enqueueRevocation(v.id);
    }
  }

  /**
   * A rotation that cannot promote is rolled back, except an emergency rotation: after a leak
   * the secret has no working current version until one is promoted, so its version is
   * rolled back and the run starts over with a fresh one, loudly, until one is current.
   */
  private async giveUp(resolved: ResolvedSecret, reason: string, error?: unknown): Promise<RunStatus> {
    const step = this.step;
    if (!(await isEmergency(this.deps, this.run))) return this.rollback(resolved, reason, step, error);
    await this.undo(resolved);
    if (error instanceof RekeyError && error.code === 'REKEY_ERR_LIMIT') await makeRoom(this.deps, this.run, resolved.policy, this.log);
    // Before the run moves on: a notice that cannot be queued fails this try, and the retry raises it again.
    await rotationGaveUp(this.deps, this.run, { status: 'restarted', step, error: error ?? reason });
    // As the lease's holder: a driver that stalled in its undo never sends back to `issue` a run its successor has started over.
    if (!(await this.deps.repo.restartRun(this.run.id, audit(this.deps, this.run.id), this.lease.owner))) throw this.lease.lose();
    this.deps.events.emergencyRetried();
    this.log.error({ error: reason }, 'emergency rotation failed; retrying with a fresh version');
    throw new StartedOver(`emergency rotation of ${this.run.secret} starts over with a fresh version after: ${reason}`);
  }

  /** Undoes a rotation that cannot promote and closes it: current untouched. */
  private async rollback(resolved: ResolvedSecret, reason: string, step: RotationStep, error: unknown): Promise<RunStatus> {
    await this.undo(resolved);
    // Before the run is closed: a notice that cannot be queued leaves it open at `rollback`, so the
    // job's retry or reconcile() drives it again and raises the notice again (at least once).
    await rotationGaveUp(this.deps, this.run, { status: 'rolled_back', step, error: error ?? reason });
    await this.finishRun('rolled_back', reason);
    this.log.warn({ error: reason }, 'rotation rolled back');
    return 'rolled_back';
  }

  /**
   * Takes the run's version back: give the store's current stage back, destroy it there, retire where
   * deployed, revoke, mark it failed.
   * The issuer revokes it only once the store has destroyed it (dropFromStore), so the store never
   * serves as current a key the issuer has killed.
   */
  private async undo(resolved: ResolvedSecret): Promise<void> {
    const { policy } = resolved;
    // store.promote may have run before the failure (or before the crash of an earlier rollback).
    const storeMayHavePromoted = this.step === 'promote' || this.step === 'rollback';
    await this.advance('rollback');
    const ctx = audit(this.deps, this.run.id);
    // Fresh: this attempt may have created the version after the run record was read.
    const versionId = (await this.deps.repo.getRun(this.run.id))?.versionId;
    const version = versionId ? await this.deps.repo.getVersion(versionId) : null;
    if (version && PROMOTED_STATES.has(version.state)) {
      // Unreachable while the run is leased (advance() checked it): a promoted version's run is done.
      throw new RekeyError('REKEY_ERR_CONFLICT', `run ${this.run.id} will not roll back version ${version.number} of ${version.secret}: it is ${version.state}`);
    }
    if (version) {
      const current = await this.storeCurrent(version.secretId);
      if (storeMayHavePromoted) await this.giveBackCurrent(resolved, version, current);
      // The store next, before the targets: once it has destroyed the version it refuses to promote it
      // (SecretStore.promote), so a late promotion (its driver stalled past its lease) cannot land while
      // this rollback retires and revokes; one that landed since the give-back is given back there.
      await this.dropFromStore(resolved, version, current);
      // Only where deployed: the version never went live, so no other target can hold it.
      await retireAtTargets(this.deps, resolved, version, 'deployed', ctx, this.log);
      if (version.state === 'issuing' && !version.fingerprint) {
        // issue() may have minted a credential whose answer never came back (a timeout, a crash):
        // nothing recorded it, so the issuer is asked, with no state, to kill what it made for this version id.
        const { issuer, names } = resolved;
        await providerCall(this.deps, this.log, { provider: names.issuer, op: 'issuer.revoke' }, policy.timeoutMs, (c) => issuer.revoke(issuedRef(version, policy.consumer), c));
      }
      // Revoke only: dropFromStore destroyed it in the store.
      await revokeAtIssuer(this.deps, resolved, version, this.log);
      // As the lease's holder: a driver that stalled in the calls above fails no version of its successor's.
      if ((await this.deps.repo.transition(version.id, ['issuing', 'pending'], 'failed', ctx, this.lease.owner)) === null) throw this.lease.lose();
    }
  }

  /**
   * Destroys the rolled-back `version` in the store. A store refuses to destroy the version it holds
   * as current: a promotion of this version reached it (this run's own, or a late one, its driver
   * stalled past its lease). Then, as the lease's holder, the current stage is given back and the
   * destroy made again. Returns once the store has destroyed it, so it no longer serves it as current
   * and refuses to promote it: only then may the issuer revoke it. Idempotent.
   * @throws LeaseLost when this driver no longer holds the run (it gives nothing back then).
   */
  private async dropFromStore(resolved: ResolvedSecret, version: VersionRecord, current: VersionRecord | null): Promise<void> {
    const { store, policy, names } = resolved;
    if (!version.storeVersionId) return;
    const destroy = () => providerCall(this.deps, this.log, { provider: names.store, op: 'store.destroy' }, policy.timeoutMs, (c) => store.destroy(storedRef(version, policy.consumer), c));
    try {
      await destroy();
    } catch (error) {
      if (!(error instanceof ProviderError && error.code === 'REKEY_ERR_INVALID')) throw error;
      await this.confirmLease('rollback');
      this.log.warn({}, 'a late store promotion made the rolled-back version current again; giving current back');
      await this.giveBackCurrent(resolved, version, current);
      await destroy();
    }
  }

  /**
   * Takes back the store's current stage from `version`, which a promotion of this run (or a late
   * one, its driver stalled past its lease) may have given it: to `current`, rekey's current version,
   * or, with none (a first rotation), away by destroying `version` as the undo of its promotion.
   * Idempotent.
   */
  private async giveBackCurrent(resolved: ResolvedSecret, version: VersionRecord, current: VersionRecord | null): Promise<void> {
    const { store, policy, names } = resolved;
    if (version.storeVersionId && current?.storeVersionId && current.id !== version.id) {
      // Give the current stage back to the version the store held before (idempotent), and the
      // previous stage back to the one still in its grace: the store's own rule would hand it to
      // this version (the current holder), and destroying this version would then leave none.
      const before = current.promotedAt ? await this.deps.repo.lastPromoted(current.secretId, current.promotedAt) : null;
      const previous = before?.state === 'previous' && before.storeVersionId ? storedRef(before, policy.consumer) : undefined;
      // Expected current: this version, which the failed promotion may have made current (or `current` still, as `next`).
      const expected = { storeVersionId: version.storeVersionId };
      try {
        await providerCall(this.deps, this.log, { provider: names.store, op: 'store.promote' }, policy.timeoutMs, (c) => store.promote(storedRef(current, policy.consumer), previous, expected, c));
      } catch (error) {
        await this.stillLeased(error, 'rollback');
        if (!(error instanceof ProviderError && error.code === 'REKEY_ERR_CONFLICT' && !error.retryable)) throw error;
        // Neither this version nor `current` holds the store's current stage (changed outside rekey):
        // there is nothing of this run's to give back, and destroying this version below is safe.
        this.log.error({ error: describeError(error) }, "the store's current stage is held by a version rekey did not promote; left as it is");
      }
    } else if (version.storeVersionId && !current) {
      // No version was current before (a first rotation): the store may serve this one as current.
      // Take that back before it is revoked; its destroy below is then the usual one.
      await providerCall(this.deps, this.log, { provider: names.store, op: 'store.destroy' }, policy.timeoutMs, (c) => store.destroy(storedRef(version, policy.consumer), c, { undoPromotion: true }));
    }
  }

  /**
   * Closes the run, as the lease's holder (the lease ends with it): a driver that stalled past its
   * lease (in a rollback's provider calls, say) never closes a run its successor drives.
   * @throws LeaseLost
   */
  private async finishRun(status: 'succeeded' | 'rolled_back' | 'failed', error?: string): Promise<void> {
    if (!(await this.deps.repo.finishRun(this.run.id, status, audit(this.deps, this.run.id), error, this.lease.owner))) throw this.lease.lose();
    this.lease.finished();
  }

  /**
   * Calls every target not `done` at once. A deploy records their deliveries `pending` first
   * (one transaction; already done when `recorded`: markPending did), so a crash mid-deploy
   * still rolls back there. A deploy that succeeded everywhere in an attempt that goes on to
   * verify records nothing yet: the verify's transaction records both (a crash in between
   * redoes the deploy, which is idempotent). Otherwise one transaction records the targets
   * that succeeded and, when all did, the next step; a failure is recorded on its own.
   * Returns the version as the last transaction read it.
   */
  private async eachTarget(
    { targets, policy }: ResolvedSecret,
    done: ReadonlySet<string>,
    verb: 'deploy' | 'verify',
    act: (target: Target, c: Call) => Promise<void>,
    status: 'deployed' | 'verified',
    version: VersionRecord,
    recorded = false,
  ): Promise<VersionRecord> {
    const ctx = audit(this.deps, this.run.id);
    const names = policy.targets.filter((name) => !done.has(name));
    if (verb === 'deploy' && names.length > 0 && !recorded) {
      await this.recordProgress(version, this.progress(undefined, names, 'pending'));
    }
    const results = await Promise.allSettled(names.map((name) => providerCall(this.deps, this.log, { provider: name, op: `target.${verb}` }, policy.timeoutMs, (c) => act(targets.get(name)!, c))));
    const next = verb === 'deploy' ? 'verify' : 'promote';
    const failed = results.some((r) => r.status === 'rejected');
    this.lease.check();
    const succeeded = names.filter((_, i) => results[i]!.status === 'fulfilled');
    if (verb === 'deploy' && !failed) {
      this.unrecorded = succeeded;
      this.step = next;
      return version;
    }
    // Verified where this attempt deployed unrecorded: one commit for both, unless it failed somewhere or the sets differ.
    const same = this.unrecorded.length === succeeded.length && succeeded.every((t) => this.unrecorded.includes(t));
    if (failed || !same) await this.recordDeployed(version);
    const progress = this.progress(failed ? undefined : next, succeeded, status, this.unrecorded.length ? ['deployed'] : []);
    const after = await this.recordProgress(version, progress);
    if (!failed) {
      this.unrecorded = [];
      this.step = next;
    }
    for (const [i, result] of results.entries()) {
      if (result.status === 'rejected' && !(await this.deps.repo.setDelivery(version.id, names[i]!, 'failed', ctx, describeError(result.reason), this.lease.owner))) throw this.lease.lose();
    }
    throwFirstError(results);
    return after;
  }

  private progress(step: RotationStep | undefined, targets: readonly string[], status: DeliveryStatus, through: readonly DeliveryStatus[] = []): StepProgress {
    return { runId: this.run.id, step, deliveries: { targets, status, ...(through.length ? { through } : {}) } };
  }

  /** The version the store holds as current: the current one, or one taken down with no successor promoted yet. */
  private async storeCurrent(secretId: string): Promise<VersionRecord | null> {
    return (await this.deps.repo.currentVersion(secretId)) ?? this.deps.repo.lastPromoted(secretId);
  }

  /**
   * Records the next step, as the lease's holder: a driver that stalled past its lease (a long
   * GC pause, a frozen VM: check() trusts the last renewal) learns here, before it acts, that
   * another drives the run, or finished it.
   * @throws LeaseLost
   */
  private async advance(step: RotationStep): Promise<void> {
    this.lease.check();
    await this.confirmLease(step);
    this.step = step;
  }

  /** The version must still be issuing or pending: a leak report stops the rotation. */
  private live(version: VersionRecord): VersionRecord {
    if (version.state === 'compromised' || version.state === 'revoked') {
      throw new RekeyError('REKEY_ERR_COMPROMISED', `version ${version.number} of ${version.secret} was reported leaked`);
    }
    return version;
  }
}
