/**
 * Taking a version down: after its grace (retirement) or because it leaked
 * (revocation). Retire it at every target, then revoke it at the issuer, then
 * destroy it in the store; a leaked version is revoked at the issuer beside its
 * retirement at the targets, not after it. No value is needed, so a leak is blocked
 * even while the store is unreachable.
 */
import { audit, type EngineDeps, noteRunError, now, retirementDue } from './context.js';
import { describeError } from './errors.js';
import type { Logger } from './logger.js';
import type { AuditContext, RunStatus, VersionRecord } from './model.js';
import type { ResolvedSecret } from './resolved.js';
import { leakBlocked } from './notify.js';
import { requestRotation } from './requests.js';
import { allOrFirstError } from './call.js';
import { destroyInStore, retireAtTargets, revokeAtIssuer } from './retire.js';
import { holdWhileUsed } from './usage-retire.js';

/** Retires a previous version once its grace has ended. */
export async function retireVersion(deps: EngineDeps, versionId: string): Promise<RunStatus> {
  const version = await deps.repo.getVersion(versionId);
  if (!version) return 'skipped';
  if (version.state !== 'previous' && version.state !== 'retired') {
    // Revoked by this retirement before its worker died (the run never recorded it), or taken
    // over by a leak report: an open retirement run has nothing left to do.
    await closeOpenRun(deps, 'retirement', version.id, version.state === 'revoked' && !version.compromisedAt ? 'succeeded' : 'skipped');
    return 'skipped';
  }
  if (version.state === 'previous' && version.graceEndsAt && retirementDue(version.graceEndsAt) > now(deps)) {
    // Not due by this worker's clock (behind, or a replayed job): retiring now could cut the grace.
    // The job ends here; reconcile() queues it again for when it is due.
    return 'skipped';
  }
  // Still in use at the end of its grace: held up to retire.maxGrace (usage-retire.ts).
  if (version.state === 'previous' && (await holdWhileUsed(deps, version))) return 'skipped';
  return takeDown(deps, version, 'retirement');
}

/** Revokes a compromised version at once. */
export async function revokeVersion(deps: EngineDeps, versionId: string): Promise<RunStatus> {
  const version = await deps.repo.getVersion(versionId);
  if (!version || version.state !== 'compromised') {
    // Only a revocation moves a compromised version to revoked: its run died before recording it.
    if (version?.state === 'revoked' && version.compromisedAt) await closeOpenRun(deps, 'revocation', version.id, 'succeeded');
    return 'skipped';
  }
  const status = await takeDown(deps, version, 'revocation');
  await recoverIfNoCurrent(deps, version);
  return status;
}

/**
 * At the leak deadline (rotate-then-revoke): a leaked current version that no emergency
 * rotation has replaced yet is blocked anyway. The secret then has no current version
 * until the rotation promotes (the one exception to invariants 2 and 4).
 */
export async function blockAtDeadline(deps: EngineDeps, versionId: string, why = 'leak deadline passed before the replacement was promoted; blocking anyway'): Promise<void> {
  const version = await deps.repo.getVersion(versionId);
  if (!version || version.state !== 'current' || !version.compromisedAt) return;
  if (await deps.repo.transition(version.id, ['current'], 'compromised', audit(deps))) {
    deps.log.warn({ secret: version.secret, version: version.number }, why);
    await deps.queue.enqueueRevocation(version.id);
  }
}

async function takeDown(deps: EngineDeps, version: VersionRecord, kind: 'retirement' | 'revocation'): Promise<RunStatus> {
  const run = await deps.repo.startVersionRun({ kind, version, trigger: kind === 'revocation' ? 'leak' : 'grace', audit: audit(deps) });
  if (run.status !== 'running') return run.status;
  const ctx = audit(deps, run.id);
  const log = deps.log.child({ runId: run.id, secret: version.secret, version: version.number });
  try {
    const resolved = await deps.providers.resolve(version.secret);
    if (kind === 'revocation') {
      // At the issuer too at once, whatever the targets do: an issuer that checks the key itself
      // (a database role, an AWS access key, an HTTP API) must refuse it even while a target that
      // should refuse it too cannot be reached. (A retirement keeps the order: invariant 2.)
      await allOrFirstError([blockLeaked(deps, resolved, version, ctx, log), revokeAtIssuer(deps, resolved, version, log)]);
    } else {
      // Everywhere: a version that was live goes wherever the config points now, row or not.
      await retireAtTargets(deps, resolved, version, 'everywhere', ctx, log);
      await deps.repo.transition(version.id, ['previous'], 'retired', ctx);
      await revokeAtIssuer(deps, resolved, version, log);
    }
    // No successor was promoted yet (a leak blocked at its deadline, a decommission): the store keeps it as current.
    if ((await deps.repo.lastPromoted(version.secretId))?.id !== version.id) await destroyInStore(deps, resolved, version, log);
    if (!(await deps.repo.transition(version.id, kind === 'revocation' ? ['compromised'] : ['retired'], 'revoked', ctx))) {
      // Reported leaked while we retired it: the revocation run finishes the job.
      await deps.repo.finishRun(run.id, 'skipped', ctx);
      return 'skipped';
    }
    await deps.repo.finishRun(run.id, 'succeeded', ctx);
    // A retirement that was failing when the leak came in would otherwise stay open for ever:
    // its job may never run again (spent, or lost with Redis) now that the version is not previous.
    if (kind === 'revocation') await closeOpenRun(deps, 'retirement', version.id, 'skipped');
    deps.events.runFinished(kind, 'succeeded', run.trigger, (now(deps).getTime() - run.startedAt.getTime()) / 1000);
    log.info({}, kind === 'revocation' ? 'leaked version revoked' : 'previous version retired');
    return 'succeeded';
  } catch (error) {
    // Nothing to roll back: the run stays open and is retried until it completes.
    await noteRunError(deps, run.id, describeError(error), log);
    log.warn({ error: describeError(error) }, `${kind} step failed`);
    throw error;
  }
}

/**
 * A leaked version's block, the first half of its revocation: retired at every target the
 * config names and every one with a row (each success recorded), then its leak reports
 * stamped blocked. Idempotent: targets recorded retired are skipped and a stamped report
 * keeps its stamp. The promotion of a leaked key's replacement runs it at once, in the
 * promoting worker (rotation.ts, `early`: the configured targets are called beside the read
 * of the rows, retireAtTargets), so the key is refused without waiting for the revocation
 * job to be picked up and its run recorded; the revocation then finds it done.
 * @throws the first target's failure (the targets that succeeded stay recorded).
 */
export async function blockLeaked(deps: EngineDeps, resolved: ResolvedSecret, version: VersionRecord, ctx: AuditContext, log: Logger, options: { early?: boolean } = {}): Promise<void> {
  // Everywhere: a version that was live goes wherever the config points now, row or not.
  await retireAtTargets(deps, resolved, version, 'everywhere', ctx, log, options);
  // Timed from the first report: what the person who reads it waited for. The notice commits with the stamp.
  const reports = await deps.repo.markBlocked(version.id, (received) => [leakBlocked(deps, version, new Date(Math.min(...received.map((d) => d.getTime()))), now(deps))]);
  for (const receivedAt of reports) deps.events.leakBlocked((now(deps).getTime() - receivedAt.getTime()) / 1000);
}

/**
 * Ends a version's run that is still open although its version needs nothing more: as
 * succeeded when that run did the work (its worker died before recording it), as skipped
 * when a revocation took the version down instead of the retirement.
 */
async function closeOpenRun(deps: EngineDeps, kind: 'retirement' | 'revocation', versionId: string, status: 'succeeded' | 'skipped'): Promise<void> {
  const open = await deps.repo.openVersionRun(kind, versionId);
  if (!open) return;
  await deps.repo.finishRun(open.id, status, audit(deps, open.id), status === 'skipped' ? 'the version was reported leaked and revoked' : undefined);
  deps.log.info({ runId: open.id, versionId, status }, `closed a ${kind} run whose version is already ${kind === 'retirement' && status === 'skipped' ? 'revoked after a leak' : 'revoked'}`);
}

/** After a leak took the current version down, make sure a replacement is on its way. */
async function recoverIfNoCurrent(deps: EngineDeps, version: VersionRecord): Promise<void> {
  if (await deps.repo.currentVersion(version.secretId)) return;
  const secret = await deps.repo.getSecret(version.secret);
  if (!secret || secret.removedAt) return;
  // Not `leak:<id>`: that run may be the emergency rotation that failed to replace it.
  // Skipped if the leak's own rotation promoted since the check above.
  await requestRotation(deps, { secret: version.secret, trigger: 'leak', idempotencyKey: `recover:${version.id}`, urgent: true, replacing: version.id });
}
