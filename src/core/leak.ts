/**
 * Leak reports (DESIGN.md "Leaks"): match the fingerprint to a version, then act by
 * its state and the secret's onLeak policy. Acting is idempotent (conditional state
 * changes, deterministic job ids) and its state changes commit before the report is
 * recorded, so a crash in between is healed by the sender's redelivery. A current version
 * under rotate-then-revoke is stamped compromised in its emergency rotation's commit; the
 * run's job and its deadline block are queued beside the report's commit, not before it: a
 * crash before they are queued leaves rows reconcile() queues them from (the open run; the
 * compromised current version), and a queue that fails fails the report, which the sender
 * then delivers again.
 */
import { randomUUID } from 'node:crypto';
import { announce, audit, type EngineDeps } from './context.js';
import { RekeyError } from './errors.js';
import type { AuditContext, LeakOutcome, LeakRecord, LeakReportInput, SecretPolicy, VersionRecord, VersionState } from './model.js';
import { shortFingerprint } from './fingerprint.js';
import { leakBlocked, notice } from './notify.js';
import { recordRotationRequest, requestRotation } from './requests.js';

export async function reportLeak(deps: EngineDeps, report: LeakReportInput): Promise<LeakRecord> {
  const found = await deps.repo.findVersionByFingerprint(report.fingerprint);
  const record = await reportVersion(deps, report, found);
  if (found) {
    // Two versions can share a value (an issuer that gave two secrets the same token): a leak of
    // it is a leak of each. Each other one is acted on and recorded as its own report, under a
    // delivery id of its own, so a redelivery dedupes on every one of them.
    for (const other of await deps.repo.findVersionsByFingerprint(report.fingerprint)) {
      if (other.id !== found.id) await reportVersion(deps, { ...report, deliveryId: `${report.deliveryId}/${other.id}` }, other);
    }
  }
  return record;
}

/** The leak path for one version the reported fingerprint matched (none: recorded as unknown). */
async function reportVersion(deps: EngineDeps, report: LeakReportInput, found: (VersionRecord & { secretRemoved: boolean }) | null): Promise<LeakRecord> {
  let version: VersionRecord | null = null;
  let acted: Acted = { outcome: 'unknown' };
  if (found) {
    const { secretRemoved, ...rest } = found;
    version = rest;
    const policy = await deps.providers.policy(version.secret);
    acted = await act(deps, version, policy, report, secretRemoved);
  }
  const { outcome } = acted;
  // Its notices commit with the report; a redelivered report records nothing and raises nothing again.
  const recording = deps.repo.recordLeak({ ...report, version, outcome }, audit(deps), (record) => [
    notice(deps, 'leak.received', record.id, record.secret, {
      leakId: record.id,
      source: report.source,
      version: version?.number ?? null,
      fingerprint: version ? shortFingerprint(report.fingerprint) : null,
      outcome: record.outcome,
      receivedAt: report.receivedAt.toISOString(),
    }),
    // The takedown finished before the row existed, so markBlocked could not time it: this is its figure.
    ...(record.blockedAt ? [leakBlocked(deps, version!, report.receivedAt, record.blockedAt)] : []),
  ]);
  const [record] = await Promise.all([recording, acted.queued]);
  if (record.blockedAt) deps.events.leakBlocked((record.blockedAt.getTime() - report.receivedAt.getTime()) / 1000);
  // A scanner's report is a warning; an operator's `rekey revoke` is the operator's own deliberate act.
  deps.log[report.source === 'cli' ? 'info' : 'warn'](
    { source: report.source, secret: record.secret, versionId: record.versionId, outcome: record.outcome, duplicate: record.duplicate },
    'leak report',
  );
  return record;
}

/** `rekey revoke NAME --version N`: the leak path for one version, by an operator. */
export async function revokeByNumber(deps: EngineDeps, secret: string, number: number): Promise<LeakRecord> {
  const version = await deps.repo.findVersionByNumber(secret, number);
  if (!version) throw new RekeyError('REKEY_ERR_UNKNOWN', `${secret} has no version ${number}`);
  if (!version.fingerprint) throw new RekeyError('REKEY_ERR_UNKNOWN', `version ${number} of ${secret} was never issued`);
  return reportLeak(deps, { source: 'cli', deliveryId: randomUUID(), fingerprint: version.fingerprint, receivedAt: new Date() });
}

/** What acting did: its outcome, and the queueing still under way beside the report's commit. */
interface Acted {
  outcome: LeakOutcome;
  queued?: Promise<unknown>;
}

/** `removed`: the secret was removed from the config (as the version's lookup read it). */
async function act(deps: EngineDeps, version: VersionRecord, policy: SecretPolicy, report: LeakReportInput, removed: boolean): Promise<Acted> {
  const ctx = audit(deps);
  const idempotencyKey = `leak:${version.id}`;
  switch (version.state) {
    case 'revoked':
    case 'failed':
      return { outcome: 'already-revoked' };
    case 'current': {
      // A secret removed from the config is not rotated any more: nothing will replace the key, so it is blocked now.
      if (policy.onLeak === 'block-first' || removed) {
        // From any live state: a promotion since the lookup may have made it previous.
        await takeDown(deps, version, ctx, ['current', ...NOT_CURRENT]);
        // The replacement starts now, beside the takedown (none when a promotion replaced it already).
        if (!removed) await requestRotation(deps, { secret: version.secret, trigger: 'leak', idempotencyKey, urgent: true, replacing: version.id });
        return { outcome: 'blocking' };
      }
      // The compromised stamp commits with the run (one commit for both).
      const rotation = await recordRotationRequest(deps, { secret: version.secret, trigger: 'leak', idempotencyKey, urgent: true, replacing: version.id, compromise: true });
      announce(deps, { secret: version.secret, event: 'revoked', version: version.number });
      // Another version is current: a promotion replaced this one since the lookup (it is previous
      // now, in its grace, and no deadline block would touch it): a leaked previous version.
      if (rotation.result.status === 'stale') return { outcome: await takeDown(deps, version, ctx) };
      // The run is committed: its job and the deadline block are queued beside the report's commit.
      const block = deps.queue.scheduleBlock(version.id, new Date(report.receivedAt.getTime() + policy.leakDeadlineMs));
      const queued = Promise.all([rotation.queued, block]);
      queued.catch(() => {}); // awaited by reportLeak, beside the report's commit
      return { outcome: 'rotating', queued };
    }
    default: {
      // issuing, pending, previous, retired, compromised: take it down now.
      const outcome = await takeDown(deps, version, ctx);
      if (version.state !== 'issuing' && version.state !== 'pending') return { outcome };
      // Its rotation may have promoted it since the lookup: the takedown (not from current) moved
      // nothing, and its revocation would skip a version that is not compromised. Acted on as it is now.
      const fresh = await deps.repo.getVersion(version.id);
      return fresh && (fresh.state === 'current' || fresh.state === 'previous') ? act(deps, fresh, policy, report, removed) : { outcome };
    }
  }
}

/** Every state a leaked version is taken down from at once (a current one is replaced first, or blocked). */
const NOT_CURRENT = ['issuing', 'pending', 'previous', 'retired'] as const;

/** Moves `version` to compromised from any of `from` (announced when it moved) and queues its revocation. */
async function takeDown(deps: EngineDeps, version: VersionRecord, ctx: AuditContext, from: readonly VersionState[] = NOT_CURRENT): Promise<LeakOutcome> {
  if (await deps.repo.transition(version.id, from, 'compromised', ctx)) announce(deps, { secret: version.secret, event: 'revoked', version: version.number });
  await deps.queue.enqueueRevocation(version.id);
  return 'revoking';
}
