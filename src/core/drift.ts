/**
 * The drift check: compares what a target holds with its desired state (desired.ts) and
 * repairs the difference. One check covers every secret bound to one target: each binding
 * is inspected at once (bindings of one resource share one read, see Target.inspect), or,
 * for a target that cannot be read, probed with its current version.
 *
 * Repairs never fight the rotation protocol: a missing version is deployed again only while
 * the database still wants it accepted, read again just before and just after the deploy (a
 * version retired meanwhile is retired again at once); a pending version is never touched;
 * an unwanted key is retired again through the revocations queue, with the leak path's retries.
 */
import { audit, type EngineDeps, now, providerCall, storedRef, versionRef } from './context.js';
import { desiredState, type DesiredState, wantOf } from './desired.js';
import { describeError, RekeyError } from './errors.js';
import type { Logger } from './logger.js';
import { notice, type Notice } from './notify.js';
import type { VersionRecord } from './model.js';
import type { DeployedEntry, Inspection, Target } from './ports.js';
import type { ResolvedSecret } from './resolved.js';
import { DRIFT_STREAK_ALERT, type SyncResult } from './sync.js';

/** What one check of one target found, per secret bound to it. */
export interface TargetReport {
  target: string;
  results: SyncResult[];
}

interface Binding {
  secret: string;
  secretId: string;
  resolved: ResolvedSecret;
  target: Target;
}

/**
 * Checks every one of `secrets` bound to `target` (the others are skipped), repairs what
 * differs when `repair` is set, records the sync status, and reports. Without `repair` it only
 * records that it checked (last checked, last in sync, last error; no drift event, no streak,
 * no repair claimed: see SyncRepository.recordCheck). Never throws for a target or a secret that
 * fails: the failure is its result's `error`. `periodMs`: how often the periodic check comes back
 * to these secrets at this target, so that a drift streak spans checks that far apart.
 */
export async function checkTarget(deps: EngineDeps, target: string, secrets: readonly string[], options: { repair: boolean; periodMs?: number }): Promise<TargetReport> {
  const log = deps.log.child({ component: 'drift', target });
  const at = now(deps);
  const results: SyncResult[] = [];
  const bindings: Binding[] = [];
  const ids = await deps.sync.secretIds(secrets);
  for (const secret of secrets) {
    try {
      const resolved = await deps.providers.resolve(secret);
      const bound = resolved.targets.get(target);
      const secretId = ids.get(secret);
      if (bound && secretId) bindings.push({ secret, secretId, resolved, target: bound });
    } catch (error) {
      log.warn({ secret, error: describeError(error) }, 'drift check: cannot resolve secret');
    }
  }
  if (!bindings.length) return { target, results };

  const live = await deps.repo.versionsOf(bindings.map((b) => b.secret), ['issuing', 'pending', 'current', 'previous']);
  // Every binding at once, so bindings that read one resource share one read.
  const held = await Promise.allSettled(bindings.map((b) => read(deps, log, b, target)));
  const inspected = held.flatMap((h) => (h.status === 'fulfilled' && h.value ? h.value.entries : []));
  const known = new Set(live.flatMap((v) => [v.id, v.fingerprint ?? '']));
  const others = await deps.sync.versionsByKeys({
    fingerprints: [...new Set(inspected.flatMap((e) => (e.fingerprint && !known.has(e.fingerprint) ? [e.fingerprint] : [])))],
    versionIds: [...new Set(inspected.flatMap((e) => (e.versionId && !known.has(e.versionId) ? [e.versionId] : [])))],
  });

  for (const [i, binding] of bindings.entries()) {
    const result: SyncResult = { secretId: binding.secretId, secret: binding.secret, method: binding.target.inspect ? 'inspect' : 'probe', missing: [], unwanted: [], redeployed: [], retiring: [] };
    results.push(result);
    const outcome = held[i]!;
    if (outcome.status === 'rejected') {
      result.error = describeError(outcome.reason);
      continue;
    }
    const desired = desiredState([...live, ...others].filter((v) => v.secret === binding.secret), at);
    let found: { missing: VersionRecord[]; unwanted: VersionRecord[] };
    try {
      found = outcome.value ? compare(desired, outcome.value) : await probe(deps, log, binding, target, desired);
    } catch (error) {
      // This secret's probe failed (its store, the target): the target's other secrets are still checked.
      result.error = describeError(error);
      continue;
    }
    const { missing, unwanted } = found;
    result.missing = missing.map((v) => v.number);
    result.unwanted = unwanted.map((v) => v.number);
    if (!options.repair) continue;
    try {
      for (const version of missing) if (await redeploy(deps, log, binding, target, version, `d${at.getTime()}`)) result.redeployed.push(version.number);
      for (const version of unwanted) {
        await deps.queue.enqueueTargetRetire(version.id, target);
        result.retiring.push(version.number);
      }
    } catch (error) {
      result.error = describeError(error);
    }
  }

  // Drift is counted once, by the check that repairs it: a check-only one (`rekey verify`) finds
  // the same drift the next repairing check will.
  for (const result of options.repair ? results : []) {
    if (result.missing.length) deps.events.targetDrift(target, 'missing', result.missing.length);
    if (result.unwanted.length) deps.events.targetDrift(target, 'unwanted', result.unwanted.length);
  }
  const streaks = await deps.sync.recordCheck(target, at, results, audit(deps), { repair: options.repair, periodMs: options.periodMs, notices: (r, streak) => repeated(deps, target, at, r, streak) });
  report(log, results, streaks);
  return { target, results };
}

/**
 * One warning per check that found drift or failed (a restarted gateway missing 200 keys is one
 * line, the audit events have the detail), and an error per secret whose drift keeps coming back.
 */
function report(log: Logger, results: readonly SyncResult[], streaks: ReadonlyMap<string, number>): void {
  const sample = (list: readonly SyncResult[]) => list.slice(0, 10).map((r) => r.secret);
  const failed = results.filter((r) => r.error);
  if (failed.length) log.warn({ secrets: sample(failed), count: failed.length, error: failed[0]!.error }, 'drift check failed; trying again next interval');
  const drifted = results.filter((r) => streaks.has(r.secretId));
  if (drifted.length) {
    const sum = (pick: (r: SyncResult) => number[]) => drifted.reduce((n, r) => n + pick(r).length, 0);
    log.warn(
      { secrets: sample(drifted), count: drifted.length, missing: sum((r) => r.missing), unwanted: sum((r) => r.unwanted), redeployed: sum((r) => r.redeployed), retiring: sum((r) => r.retiring) },
      'target drifted from its desired state',
    );
  }
  for (const r of drifted) {
    const streak = streaks.get(r.secretId)!;
    if (streak >= DRIFT_STREAK_ALERT) log.error({ secret: r.secret, missing: r.missing, unwanted: r.unwanted, streak }, 'target keeps drifting: something outside rekey keeps changing it');
  }
}

/**
 * `drift.repeated` when a secret's drift at a target reaches the alert streak: once per streak,
 * written with the drift it reports (the check that extends the streak raises nothing).
 */
function repeated(deps: EngineDeps, target: string, at: Date, r: SyncResult, streak: number): Notice[] {
  if (streak !== DRIFT_STREAK_ALERT) return [];
  const data = { target, streak, missing: r.missing.join(','), unwanted: r.unwanted.join(',') };
  return [notice(deps, 'drift.repeated', `${r.secretId}.${target}.${at.getTime()}`, r.secret, data)];
}

/** The binding's inspection, or undefined for a target that cannot be read (it is probed). */
async function read(deps: EngineDeps, log: Logger, b: Binding, target: string): Promise<Inspection | undefined> {
  const inspect = b.target.inspect?.bind(b.target);
  if (!inspect) return undefined;
  return providerCall(deps, log, { provider: target, op: 'target.inspect' }, b.resolved.policy.timeoutMs, (c) => inspect(c));
}

const holds = (entries: readonly DeployedEntry[], v: VersionRecord) => entries.some((e) => e.versionId === v.id || (e.fingerprint !== undefined && e.fingerprint === v.fingerprint));

/** What differs between an inspection and the desired state. */
export function compare(desired: DesiredState, inspection: Inspection): { missing: VersionRecord[]; unwanted: VersionRecord[] } {
  const unwanted = desired.refuse.filter((v) => holds(inspection.entries, v));
  if (inspection.holds === 'all') return { missing: desired.accept.filter((v) => !holds(inspection.entries, v)), unwanted };
  // One value in use: the newest accepted version, unless a rotation already put a newer one in.
  const newest = desired.accept[0];
  if (!newest) return { missing: [], unwanted };
  const fine = [newest, ...desired.keep.filter((v) => v.number > newest.number)].some((v) => holds(inspection.entries, v));
  return { missing: fine ? [] : [newest], unwanted };
}

/** A target that cannot be read: probe the newest accepted version (a retired key cannot be probed: its value is gone). */
async function probe(deps: EngineDeps, log: Logger, b: Binding, target: string, desired: DesiredState): Promise<{ missing: VersionRecord[]; unwanted: VersionRecord[] }> {
  const newest = desired.accept[0];
  if (!newest) return { missing: [], unwanted: [] };
  const { policy } = b.resolved;
  const value = await readValue(deps, log, b.resolved, newest);
  try {
    await providerCall(deps, log, { provider: target, op: 'target.verify' }, policy.timeoutMs, (c) => b.target.verify(versionRef(newest, policy.consumer), value, c));
    return { missing: [], unwanted: [] };
  } catch (error) {
    if (error instanceof RekeyError && error.code === 'REKEY_ERR_VERIFY_FAILED') return { missing: [newest], unwanted: [] };
    throw error;
  }
}

async function readValue(deps: EngineDeps, log: Logger, { store, policy, names }: ResolvedSecret, version: VersionRecord) {
  const value = await providerCall(deps, log, { provider: names.store, op: 'store.read' }, policy.timeoutMs, (c) => store.read({ storeVersionId: storedRef(version, policy.consumer).storeVersionId }, c));
  if (deps.fingerprint(value) !== version.fingerprint) throw new RekeyError('REKEY_ERR_INVALID', `store returned a different value for version ${version.number} of ${version.secret}`);
  return value;
}

/**
 * Deploys a missing version again, if the database still wants it accepted just before; if it
 * stopped being wanted during the deploy (retired, leaked), it is retired again at once.
 * Returns whether it deployed.
 */
async function redeploy(deps: EngineDeps, log: Logger, b: Binding, target: string, version: VersionRecord, generation: string): Promise<boolean> {
  const before = await deps.repo.getVersion(version.id);
  if (!before || wantOf(before, now(deps)) !== 'accept') return false;
  const { policy } = b.resolved;
  const value = await readValue(deps, log, b.resolved, before);
  await providerCall(deps, log, { provider: target, op: 'target.deploy', generation }, policy.timeoutMs, (c) => b.target.deploy(versionRef(before, policy.consumer), value, c));
  const after = await deps.repo.getVersion(version.id);
  // Refused now, or being taken down (`leave`): a retirement retires at every target before it marks the version
  // retired, so it may have passed this one before the deploy landed. The job retires it once it is refused.
  const want = after ? wantOf(after, now(deps)) : 'accept';
  if (want === 'refuse' || want === 'leave') {
    log.warn({ secret: b.secret, version: version.number }, 'drift repair: version retired while it was deployed again; retiring it again');
    await deps.queue.enqueueTargetRetire(version.id, target);
  }
  return true;
}

/**
 * Job handler (revocations queue): retires a version the drift check found at `target` although
 * it must be refused. Does nothing when the version is wanted again or the target is gone.
 * `generation` ({@link Call.generation}) is the same for every retry of one job (the worker
 * passes the job's creation time) and new for each job; without it, this call's own time.
 * @throws the target's error, so the job is retried on the leak path's schedule; RekeyError
 *   REKEY_ERR_CONFLICT (retried the same way) while the version's takedown is under way (`leave`).
 */
export async function retireDrifted(deps: EngineDeps, versionId: string, target: string, generation?: string): Promise<'succeeded' | 'skipped'> {
  const version = await deps.repo.getVersion(versionId);
  const want = version ? wantOf(version, now(deps)) : 'accept';
  // Put back by a repair while its retirement ran: retried (the leak path's schedule) until the retirement has marked it retired.
  if (version && want === 'leave') throw new RekeyError('REKEY_ERR_CONFLICT', `version ${version.number} of ${version.secret} is being taken down; retiring it again at ${target} once it is`);
  if (!version || want !== 'refuse') return 'skipped';
  const resolved = await deps.providers.resolve(version.secret);
  const bound = resolved.targets.get(target);
  if (!bound) return 'skipped';
  const log = deps.log.child({ component: 'drift', target, secret: version.secret, version: version.number });
  const site = { provider: target, op: 'target.retire', generation: generation ?? `r${now(deps).getTime()}` };
  await providerCall(deps, log, site, resolved.policy.timeoutMs, (c) => bound.retire(versionRef(version, resolved.policy.consumer), c));
  await deps.sync.markRepaired(version.secretId, target, now(deps));
  log.info({}, 'drift repair: unwanted key retired again');
  return 'succeeded';
}
