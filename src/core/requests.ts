/** Turning triggers (cron, CLI, events, leaks) into rotation runs: one run per trigger, one active per secret. */
import { randomUUID } from 'node:crypto';
import { audit, type EngineDeps } from './context.js';
import { RekeyError } from './errors.js';
import type { RunRecord } from './model.js';

export interface RotationRequest {
  secret: string;
  /** cron, manual, event, leak. */
  trigger: string;
  /** The same key twice makes one run (a redelivered event, a retried scheduler job). */
  idempotencyKey?: string;
  /**
   * When the trigger asked for the rotation (a cron due time, an event's timestamp). A
   * request older than the secret's last promotion is stale and does nothing.
   */
  requestedAt?: Date;
  /** A leak: zero grace for the replaced version, and the emergencies queue. */
  urgent?: boolean;
  /** A leak's rotation: the leaked version; no run is made once another version is current (StateRepository.createRotationRun). */
  replacing?: string;
  /** With `replacing`: stamp it compromised in the run's commit (a leaked current version, rotate-then-revoke). */
  compromise?: boolean;
  /** Overlap for the version this rotation replaces, instead of the secret's `grace` (a fleet rotation's `--grace`); more than 0: zero is the leak path. */
  graceMs?: number;
}

export type RotationRequestResult =
  | { status: 'queued' | 'joined'; run: RunRecord }
  | { status: 'stale' };

export async function requestRotation(deps: EngineDeps, request: RotationRequest): Promise<RotationRequestResult> {
  const { result, queued } = await recordRotationRequest(deps, request);
  await queued;
  return result;
}

/**
 * {@link requestRotation} up to its run's commit: `queued` is the queueing (and, for a request
 * that joins a run, its bookkeeping) already under way, for a caller with a commit of its own to
 * make beside it (a leak report, leak.ts). Await it: it rejects as requestRotation would.
 */
export async function recordRotationRequest(deps: EngineDeps, request: RotationRequest): Promise<{ result: RotationRequestResult; queued: Promise<void> }> {
  const idempotencyKey = request.idempotencyKey ?? `${request.trigger}:${randomUUID()}`;
  const urgent = request.urgent ?? false;
  // One commit: the insert looks the secret up and checks staleness itself (no read before it).
  const made = await deps.repo.createRotationRun({
    secret: request.secret,
    trigger: request.trigger,
    idempotencyKey,
    graceMs: urgent ? 0 : (request.graceMs ?? null),
    requestedAt: request.requestedAt,
    replacing: request.replacing,
    compromise: request.compromise,
    audit: audit(deps),
  });
  if ('stale' in made) {
    if (await deps.repo.recordTrigger({ secret: made.stale, trigger: request.trigger, idempotencyKey, outcome: 'stale' }, audit(deps))) {
      deps.events.triggerSkipped('stale');
      deps.log.info({ secret: made.stale.name, trigger: request.trigger }, request.replacing ? 'leak rotation not needed: the leaked version was already replaced; skipped' : 'trigger older than the last rotation; skipped');
    }
    return { result: { status: 'stale' }, queued: Promise.resolve() };
  }
  const { run, created } = made;
  const options = (await deps.providers.policy(run.secret)).retry;
  const queueing = async () => {
    if (!created && urgent && run.graceMs !== 0) {
      await deps.repo.setRunGrace(run.id, 0, audit(deps, run.id));
      await explainNotQueued(run, deps.queue.expediteRun(run, options));
    } else {
      await explainNotQueued(run, deps.queue.enqueueRun(run, { urgent: urgent || run.graceMs === 0, ...options, fresh: created }));
    }
    if (!created && run.idempotencyKey !== idempotencyKey) {
      const secret = { id: run.secretId, name: run.secret };
      if (await deps.repo.recordTrigger({ secret, trigger: request.trigger, idempotencyKey, outcome: 'joined', runId: run.id }, audit(deps))) deps.events.triggerSkipped('busy');
    }
  };
  const queued = queueing();
  // Handled here too: the caller may await something else first (it still sees the rejection).
  queued.catch(() => {});
  return { result: { status: created ? 'queued' : 'joined', run }, queued };
}

/**
 * The run is committed before its job is queued: a queue that fails then has not lost the
 * request. reconcile() queues every open run, so the caller is told that, not that it failed.
 * @throws RekeyError REKEY_ERR_NOT_QUEUED (retryable: a retry joins the run) with the queue's error as its cause.
 */
async function explainNotQueued(run: RunRecord, queueing: Promise<unknown>): Promise<void> {
  try {
    await queueing;
  } catch (error) {
    throw new RekeyError('REKEY_ERR_NOT_QUEUED', `rotation run ${run.id} of ${run.secret} is recorded but could not be queued; a worker's reconcile pass starts it`, { cause: error });
  }
}
