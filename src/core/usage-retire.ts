/**
 * Usage-aware retirement (issue 18): who still sends a previous version before it is retired,
 * and, with `retire:` on the secret, retiring it early once unused or holding it past its grace
 * while it is used. What "used" means comes from the usage sources: each version's last use
 * (`versions.last_used_at`, written by the usage check, usage.ts).
 *
 * - Reported: a previous version used within `retire.whenUnusedFor` (IN_USE_MS without
 *   `retire:`) is still in use: `rekey status`, the admin API and the dashboard show it with
 *   its client (per-client keys: the one client that holds it), and the `version.still-used`
 *   notice names that client as the grace nears its end (`ending`), when the retirement is held
 *   (`held`) and when it goes ahead anyway (`retired`).
 * - Early: the usage check cuts the grace of a previous version nobody has used for
 *   `whenUnusedFor` (audited `version.grace-cut`, reason `unused`), judged only over time this
 *   process has read every target of the secret; the usual retirement follows at once.
 * - Held: at the end of a grace that ran its course, the retirement job (takedown.ts) finds the
 *   version still in use and extends the grace to `maxGrace` after it became previous (audited
 *   `version.grace-held`); the early rule then retires it once it goes unused, or the
 *   retirement at the new end does.
 *
 * Both are grace changes applied under the secret's lock (StateRepository.endGrace), so every
 * retirement still goes through takedown.ts, and a crash anywhere leaves a version whose grace
 * says when reconcile() queues its retirement.
 */
import { audit, CLOCK_TOLERANCE_MS, type EngineDeps, now, retirementDue } from './context.js';
import { describeError } from './errors.js';
import type { Logger } from './logger.js';
import type { DecommissionSnapshot, SecretPolicy, VersionChange, VersionRecord } from './model.js';
import { notice, type Notice } from './notify.js';

/** Without `retire:`, a previous version used within this long is reported still in use. */
export const IN_USE_MS = 10 * 60_000;

type RetireView = Pick<SecretPolicy, 'retire'>;

/** How recent a use makes a version "in use" under `policy`. */
export function inUseWindowMs(policy: RetireView): number {
  return policy.retire?.whenUnusedForMs ?? IN_USE_MS;
}

/** Whether `version` was used within its policy's in-use window before `at`. */
export function stillUsed(version: Pick<VersionRecord, 'lastUsedAt'>, policy: RetireView, at: Date): boolean {
  return !!version.lastUsedAt && at.getTime() - version.lastUsedAt.getTime() < inUseWindowMs(policy);
}

/** The client a per-client key belongs to; null for a shared key (usage cannot tell its callers apart). */
export function clientOf(policy: Pick<SecretPolicy, 'name' | 'consumer'>): string | null {
  return policy.consumer === policy.name ? null : policy.consumer;
}

/** Whether the retirement of a previous version can be held past its grace. */
export function canHold(policy: Pick<SecretPolicy, 'retire' | 'graceMs'>): boolean {
  return !!policy.retire && policy.retire.maxGraceMs > policy.graceMs;
}

/** `version.still-used` for `version` (one id per phase). */
function stillUsedNotice(deps: EngineDeps, policy: SecretPolicy, version: VersionRecord, phase: 'ending' | 'held' | 'retired', graceEndsAt: Date | null): Notice {
  return notice(deps, 'version.still-used', `${version.id}.${phase}`, version.secret, {
    phase,
    version: version.number,
    client: clientOf(policy),
    lastUsedAt: version.lastUsedAt?.toISOString() ?? null,
    graceEndsAt: graceEndsAt?.toISOString() ?? null,
  });
}

/**
 * Holds `version` past its grace when it is still in use and the secret's `retire.maxGrace`
 * allows (raising `held`); raises `retired` when it is in use and retires anyway. Called by the
 * retirement job once the grace is due. Returns true when the retirement waits.
 * @throws the repository's error (RekeyError REKEY_ERR_CONFLICT: the version changed meanwhile); the job is retried.
 */
export async function holdWhileUsed(deps: EngineDeps, version: VersionRecord): Promise<boolean> {
  let policy: SecretPolicy;
  try {
    policy = await deps.providers.policy(version.secret);
  } catch {
    return false; // the takedown reports why the secret cannot be resolved
  }
  const at = now(deps);
  if (!stillUsed(version, policy, at)) return false;
  if (canHold(policy)) {
    // The `held` notice commits with the grace it reports.
    const plan = (snapshot: DecommissionSnapshot) => planHold(snapshot, version.id, policy);
    const heldNotice = (changes: readonly VersionChange[]) => changes.map((c) => stillUsedNotice(deps, policy, c.version, 'held', c.set.graceEndsAt ?? null));
    const after = await deps.repo.endGrace(version.secretId, plan, audit(deps), heldNotice);
    const held = after.find((v) => v.id === version.id);
    if (held?.graceEndsAt && held.graceEndsAt > at) {
      deps.log.info({ secret: version.secret, version: version.number, until: held.graceEndsAt.toISOString() }, 'previous version still in use: retirement held');
      // This job is running under the same id: reconcile() queues the later one when it has finished.
      await deps.queue.scheduleRetirement(held.id, retirementDue(held.graceEndsAt), policy.retry);
      return true;
    }
  }
  // Before the takedown: a retry after a crash raises it again under the same id.
  await deps.notifier.notify(stillUsedNotice(deps, policy, version, 'retired', version.graceEndsAt));
  return false;
}

/**
 * The grace of `versionId` extended to `maxGrace` after its successor was promoted, when that
 * grace ran its course: one that was cut (a newer promotion, a leak, a decommission, an early
 * retirement) stays cut. Pure.
 */
export function planHold({ current, previous }: DecommissionSnapshot, versionId: string, policy: Pick<SecretPolicy, 'retire' | 'graceMs'>): VersionChange[] {
  const version = previous.find((v) => v.id === versionId);
  if (!version?.graceEndsAt || !current?.promotedAt || current.compromisedAt || !policy.retire) return [];
  const since = current.promotedAt.getTime();
  if (version.graceEndsAt.getTime() < since + policy.graceMs - CLOCK_TOLERANCE_MS) return [];
  const until = new Date(since + policy.retire.maxGraceMs);
  if (until <= version.graceEndsAt) return [];
  const data = { number: version.number, graceEndsAt: until.toISOString(), lastUsedAt: version.lastUsedAt?.toISOString() ?? null, reason: 'in-use' };
  return [{ version, to: 'previous', set: { graceEndsAt: until }, audit: { action: 'version.grace-held', data } }];
}

/**
 * The grace of `versionId` cut to now, when it has not ended and the version was not used
 * after `judgedLastUse` (the use the caller judged by; a later one voids the judgement). Pure.
 */
export function planUnused({ previous, now: at }: DecommissionSnapshot, versionId: string, judgedLastUse: Date | null, unusedForMs: number): VersionChange[] {
  const version = previous.find((v) => v.id === versionId);
  if (!version?.graceEndsAt || version.graceEndsAt <= at) return [];
  if (version.lastUsedAt && (!judgedLastUse || version.lastUsedAt > judgedLastUse)) return [];
  return [{ version, to: 'previous', set: { graceEndsAt: at }, audit: { action: 'version.grace-cut', data: { number: version.number, reason: 'unused', unusedForMs } } }];
}

/** What one process has read of a target's usage: from its first reading (epoch ms) to its latest whose uses are recorded. */
export interface Observed {
  since: number;
  last: number;
}

/** A previous version the usage check saw, with its secret's policy and current version. */
export interface RetireCandidate {
  version: VersionRecord;
  policy: SecretPolicy;
  current: VersionRecord | undefined;
  /** Used in the window just read. */
  usedNow: boolean;
}

/**
 * After a usage check: raises `ending` for previous versions still used near the end of a grace
 * that cannot be held, and retires early those with `retire:` that nobody has used for
 * `whenUnusedFor`, judged only over time `observed` covers every target of the secret
 * (`observed` must be read before the versions were, so every use it covers is in them).
 * Never throws: a failure is logged and the next check judges again.
 */
export async function reviewPrevious(deps: EngineDeps, candidates: readonly RetireCandidate[], observed: ReadonlyMap<string, Observed>, windowMs: number, log: Logger): Promise<void> {
  for (const { version, policy, current, usedNow } of candidates) {
    try {
      const at = now(deps);
      const graceEndsAt = version.graceEndsAt;
      if (!graceEndsAt || graceEndsAt <= at) continue;
      if (usedNow && !canHold(policy) && graceEndsAt.getTime() - at.getTime() <= Math.max(policy.graceMs / 10, 3 * windowMs)) {
        await deps.notifier.notify(stillUsedNotice(deps, policy, version, 'ending', graceEndsAt));
      }
      const retire = policy.retire;
      if (!retire || usedNow || !current?.promotedAt) continue;
      const covered = policy.targets.map((t) => observed.get(t));
      if (!covered.length || covered.some((c) => !c)) continue;
      const from = Math.max(...covered.map((c) => c!.since), current.promotedAt.getTime(), version.lastUsedAt?.getTime() ?? 0);
      const to = Math.min(...covered.map((c) => c!.last));
      if (to - from < retire.whenUnusedForMs) continue;
      const after = await deps.repo.endGrace(version.secretId, (s) => planUnused(s, version.id, version.lastUsedAt, retire.whenUnusedForMs), audit(deps));
      const cut = after.find((v) => v.id === version.id);
      if (!cut?.graceEndsAt || cut.graceEndsAt >= graceEndsAt) continue;
      log.info({ secret: version.secret, version: version.number, unusedForMs: to - from }, 'previous version unused: retiring it before its grace ends');
      await deps.queue.scheduleRetirement(cut.id, retirementDue(cut.graceEndsAt), policy.retry);
    } catch (error) {
      log.warn({ secret: version.secret, version: version.number, error: describeError(error) }, 'usage-aware retirement failed; judging again next window');
    }
  }
}
