/**
 * Emergency rotations: the runs that replace a leaked key (zero grace). rotation.ts never
 * finishes one rolled back while its secret is in the config; these are the two decisions it
 * asks of this file.
 */
import { audit, type EngineDeps, now, retirementDue } from './context.js';
import { planGraceEnd } from './lifecycle.js';
import type { Logger } from './logger.js';
import type { RunRecord, SecretPolicy } from './model.js';

/** Whether `run` replaces a leaked key (zero grace, read fresh: a leak may have joined it) of a secret still in the config. */
export async function isEmergency(deps: EngineDeps, run: RunRecord): Promise<boolean> {
  if ((await deps.repo.getRun(run.id))?.graceMs !== 0) return false;
  return !(await deps.repo.getSecret(run.secret))?.removedAt;
}

/**
 * The issuer holds as many live credentials as it allows (REKEY_ERR_LIMIT: an IAM user's two
 * keys, the leaked current one and the previous one in its overlap): the previous versions'
 * overlap ends now, and their retirement frees the room the run's next attempt needs.
 */
export async function makeRoom(deps: EngineDeps, run: RunRecord, policy: SecretPolicy, log: Logger): Promise<void> {
  const previous = await deps.repo.endGrace(run.secretId, planGraceEnd, audit(deps, run.id));
  for (const v of previous) await deps.queue.scheduleRetirement(v.id, retirementDue(v.graceEndsAt ?? now(deps)), policy.retry);
  log.warn({ versions: previous.map((v) => v.number) }, "issuer at its limit of live credentials: the previous versions' overlap ends now to make room");
}
