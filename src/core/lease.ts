/**
 * One driver per rotation run. A BullMQ lock alone cannot promise it: after a Redis restart
 * reconcile() queues again a run its first worker is still driving, and two drivers could
 * each issue a credential (an IAM key nobody would ever revoke). The lease lives in
 * PostgreSQL, on the database's clock, and is renewed while the run is driven.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { audit, type EngineDeps } from './context.js';
import { RekeyError } from './errors.js';
import type { RunRecord, RunStatus, VersionRecord } from './model.js';

export const DEFAULT_LEASE_MS = 30_000;

/** The lease was taken over (this driver stalled past it): stop, touching nothing more. */
export class LeaseLost extends RekeyError {
  constructor(runId: string) {
    super('REKEY_ERR_CONFLICT', `run ${runId} was taken over by another worker`);
  }
}

export class RunLease {
  private lost = false;
  private ended = false;
  private readonly timer: NodeJS.Timeout;
  /**
   * performance.now() past which the lease may have run out: when the last grant or renewal that
   * succeeded was sent, plus the lease's length. PostgreSQL set its `lease_until` from its own clock
   * once the statement reached it, so never before this: a driver that acts only before it never acts
   * while another holds the run, whatever failed meanwhile (PostgreSQL unreachable, renewals slow).
   */
  private heldUntil: number;

  private constructor(
    private readonly deps: EngineDeps,
    private readonly runId: string,
    /** Who holds the lease: a write the repository makes only for the lease's holder names it (StateRepository.recordIssued). */
    readonly owner: string,
    private readonly ms: number,
    /** performance.now() when the grant (StateRepository.startRotationAttempt) was sent. */
    grantSent: number,
  ) {
    this.heldUntil = grantSent + ms;
    this.timer = setInterval(() => void this.renew(), Math.max(100, Math.floor(ms / 3)));
    this.timer.unref();
  }

  /**
   * Begins an attempt at a rotation run (StateRepository.startRotationAttempt): the lease, the
   * run and its version in one commit. Returns null when the run is not running (with its
   * status, or none for no such run).
   * @throws RekeyError REKEY_ERR_CONFLICT (retryable) when another worker drives the run.
   */
  static async begin(
    deps: EngineDeps,
    runId: string,
  ): Promise<{ lease: RunLease; run: RunRecord; version: VersionRecord | null; storeCurrent: VersionRecord | null } | { lease: null; status: RunStatus | 'skipped' }> {
    const owner = `${deps.actor}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const ms = deps.leaseMs ?? DEFAULT_LEASE_MS;
    const sent = performance.now();
    const attempt = await deps.repo.startRotationAttempt(runId, owner, ms, audit(deps, runId));
    if (attempt.granted) return { lease: new RunLease(deps, runId, owner, ms, sent), run: attempt.run, version: attempt.version, storeCurrent: attempt.storeCurrent };
    if (!attempt.run || attempt.run.status !== 'running') return { lease: null, status: attempt.run?.status ?? 'skipped' };
    throw new RekeyError('REKEY_ERR_CONFLICT', `run ${runId} is being driven by another worker`);
  }

  /**
   * Call before anything with an effect outside the database. Throws once a write was refused
   * (lose), a renewal was refused, or the lease has run out since the last renewal that succeeded
   * (one that failed, PostgreSQL unreachable say, kept nothing): for good, even if a renewal
   * succeeds later, since another worker may have driven the run meanwhile.
   * @throws LeaseLost
   */
  check(): void {
    if (!this.lost && performance.now() >= this.heldUntil) this.lost = true;
    if (this.lost) throw new LeaseLost(this.runId);
  }

  /** A write made only for the lease's holder was refused: the lease is lost. Returns the error to throw. */
  lose(): LeaseLost {
    this.lost = true;
    return new LeaseLost(this.runId);
  }

  /** Gives the lease back, unless the run was finished (StateRepository.finishRun ended it then). */
  async release(): Promise<void> {
    clearInterval(this.timer);
    if (this.ended) return;
    await this.deps.repo.releaseLease(this.runId, this.owner).catch(() => undefined);
  }

  /** The run was finished: finishRun ended the lease with it, nothing is left to give back. */
  finished(): void {
    this.ended = true;
  }

  private async renew(): Promise<void> {
    const sent = performance.now();
    try {
      // Renew only (never take): a renewal that arrives after the lease ran out, was taken over and let go must not take the run back.
      if (await this.deps.repo.renewLease(this.runId, this.owner, this.ms)) this.heldUntil = Math.max(this.heldUntil, sent + this.ms);
      else this.lost = true;
    } catch {
      // PostgreSQL unreachable: nothing renewed, so the lease runs out at heldUntil (check()).
    }
  }
}
