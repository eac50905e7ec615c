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
  /** A leak: zero grace for the replaced version, and the revocations queue. */
  urgent?: boolean;
  /** Overlap for the version this rotation replaces, instead of the secret's `grace` (a fleet rotation's `--grace`); more than 0: zero is the leak path. */
  graceMs?: number;
}

export type RotationRequestResult =
  | { status: 'queued' | 'joined'; run: RunRecord }
  | { status: 'stale' };

export async function requestRotation(deps: EngineDeps, request: RotationRequest): Promise<RotationRequestResult> {
  const secret = await deps.repo.getSecret(request.secret);
  if (!secret || secret.removedAt) throw new RekeyError('REKEY_ERR_UNKNOWN', `no managed secret named ${request.secret}`);
  const idempotencyKey = request.idempotencyKey ?? `${request.trigger}:${randomUUID()}`;
  if (request.requestedAt && secret.lastPromotedAt && request.requestedAt < secret.lastPromotedAt) {
    if (await deps.repo.recordTrigger({ secret, trigger: request.trigger, idempotencyKey, outcome: 'stale' }, audit(deps))) {
      deps.events.triggerSkipped('stale');
      deps.log.info({ secret: secret.name, trigger: request.trigger }, 'trigger older than the last rotation; skipped');
    }
    return { status: 'stale' };
  }
  const policy = await deps.providers.policy(secret.name);
  const options = policy.retry;
  const urgent = request.urgent ?? false;
  const { run, created } = await deps.repo.createRotationRun({
    secretId: secret.id,
    trigger: request.trigger,
    idempotencyKey,
    graceMs: urgent ? 0 : (request.graceMs ?? null),
    audit: audit(deps),
  });
  if (!created && urgent && run.graceMs !== 0) {
    await deps.repo.setRunGrace(run.id, 0, audit(deps, run.id));
    await deps.queue.expediteRun(run, options);
  } else {
    await deps.queue.enqueueRun(run, { urgent: urgent || run.graceMs === 0, ...options });
  }
  if (!created && run.idempotencyKey !== idempotencyKey) {
    if (await deps.repo.recordTrigger({ secret, trigger: request.trigger, idempotencyKey, outcome: 'joined', runId: run.id }, audit(deps))) deps.events.triggerSkipped('busy');
  }
  return { status: created ? 'queued' : 'joined', run };
}
