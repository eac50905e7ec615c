/**
 * The store check: compares the version a secret's store serves as current with the version
 * rekey holds current, and gives the current stage back when the store serves a version rekey
 * itself took out of service.
 *
 * Why it is needed: a store.promote from a driver that stalled past its lease can land after its
 * successor rolled the run back and destroyed the version (AWS: UpdateSecretVersionStage has no
 * condition on the version it moves AWSCURRENT to; providers/aws-secrets-manager/README.md), and a
 * person can move the stage by hand. The store then serves something else than `rekey status` says,
 * to every client reading it, until something moves the stage again.
 *
 * For each secret with a current version and no rotation running (a rotation moves the stages itself):
 * 1. PostgreSQL: rekey's current and previous versions and when its runs last changed;
 * 2. store.list() (one store call);
 * 3. PostgreSQL again: a run that started, moved or ended meanwhile, or a new current version, makes
 *    the comparison meaningless: the secret is skipped until the next check;
 * 4. compare: in sync, or a finding (see StoreCheckResult.found). Only `not-live` (a version rekey
 *    knows and holds failed, retired, revoked or compromised) is repaired: store.promote(rekey's current,
 *    its previous in grace if any, expected = the wrong holder), a compare-and-set,
 *    so a change made meanwhile (a rotation, a person) wins; then store.destroy of the wrong version
 *    (idempotent), which the promotion may have given the previous stage. A version rekey does not
 *    know is a change outside rekey: reported, never touched.
 *
 * Each finding is recorded in the secret's sync row `store:<provider>` with the audit event
 * `store.drift` and the notice `store.drift` (once per occurrence: the same finding raised again at
 * later checks has the same id, the same version put back after a repair another), counted (EngineEvents.storeDrift) and logged
 * at error level, by ids, numbers and states only. A rotation never runs any of this: the check costs nothing on the rotation path.
 *
 * Without `repair` (`rekey verify` without --repair) it compares and reports only: no promote, no
 * destroy, and, as the target drift check does, it records only that it checked (no audit event, no
 * streak, no count, no log line): the next repairing check finds the same drift and records it once.
 */
import { forEachBounded } from './bounded.js';
import { audit, type EngineDeps, now, providerCall, storedRef } from './context.js';
import { describeError } from './errors.js';
import type { Logger } from './logger.js';
import { errorCode, notice, type Notice } from './notify.js';
import type { VersionRecord, VersionState } from './model.js';
import type { StoredVersion } from './ports.js';
import type { ResolvedSecret } from './resolved.js';
import type { StoreCheckResult, StoreCheckState } from './sync.js';

/** States of versions rekey has taken out of service: a store serving one as current is repaired. */
const NOT_LIVE: ReadonlySet<VersionState> = new Set(['failed', 'retired', 'revoked', 'compromised']);

/** Store calls in flight at once: a check of many secrets must not burst a cloud API's rate limit. */
const CONCURRENCY = 4;

/** What one store check found, per secret checked; secrets skipped (rotating, unresolvable) have no result. */
export interface StoreCheckReport {
  results: StoreCheckResult[];
  /** Secrets not compared this time: a rotation was running or ran meanwhile, or the secret could not be resolved. */
  skipped: string[];
}

interface Listed {
  secret: string;
  before: StoreCheckState;
  resolved: ResolvedSecret;
  versions: StoredVersion[] | undefined;
  error?: string;
}

/**
 * Checks the store of each of `secrets` (see the file's comment), repairs (with `repair`) a store
 * serving a version rekey took out of service, records and reports. Never throws for a secret whose
 * store fails: the failure is its result's `error`. Costs one store.list() per secret checked, plus a
 * promote and a destroy per repair, and two PostgreSQL reads for the whole batch.
 */
export async function checkStores(deps: EngineDeps, secrets: readonly string[], options: { repair: boolean }): Promise<StoreCheckReport> {
  const log = deps.log.child({ component: 'store-check' });
  const report: StoreCheckReport = { results: [], skipped: [] };
  if (!secrets.length) return report;
  const before = await deps.sync.storeCheckStates(secrets);
  const listed: Listed[] = [];
  await forEachBounded([...before], CONCURRENCY, async ([secret, state]) => {
    // No current version (never rotated, or a leaked one taken down with nothing promoted since: `secret.no-current`
    // reports that): nothing to give the stage back to, and a new secret's store is not worth a call.
    if (state.rotating || !state.current) {
      report.skipped.push(secret);
      return;
    }
    let resolved: ResolvedSecret;
    try {
      resolved = await deps.providers.resolve(secret);
    } catch (error) {
      log.warn({ secret, error: describeError(error) }, 'store check: cannot resolve secret');
      report.skipped.push(secret);
      return;
    }
    const { store, policy, names } = resolved;
    try {
      const versions = await providerCall(deps, log, { provider: names.store, op: 'store.list' }, policy.timeoutMs, (c) => store.list(c));
      listed.push({ secret, before: state, resolved, versions });
    } catch (error) {
      listed.push({ secret, before: state, resolved, versions: undefined, error: describeError(error) });
    }
  });
  const after = listed.length ? await deps.sync.storeCheckStates(listed.map((l) => l.secret)) : new Map<string, StoreCheckState>();
  for (const item of listed) {
    const state = after.get(item.secret);
    if (!state || moved(item.before, state)) {
      report.skipped.push(item.secret);
      continue;
    }
    const result = await compareAndRepair(deps, log, item, state, options.repair);
    report.results.push(result);
    try {
      await deps.sync.recordStoreCheck(result, now(deps), audit(deps), { repair: options.repair, notices: (occurrence) => [storeDriftNotice(deps, result, occurrence)] });
    } catch (error) {
      log.warn({ secret: item.secret, error: describeError(error) }, 'store check: could not record the result');
    }
  }
  for (const r of report.results) {
    if (r.found && r.found !== 'in-sync') {
      if (!options.repair) continue;
      deps.events.storeDrift(r.store, r.found, r.repaired);
      log.error(
        { secret: r.secret, store: r.store, found: r.found, storeCurrent: r.storeCurrent ?? null, rekeyCurrent: r.rekeyCurrent ?? null, repaired: r.repaired, ...(r.error ? { error: r.error } : {}) },
        r.found === 'not-live'
          ? 'the store served a version rekey took out of service as current'
          : "the store's current stage is not on rekey's current version; left as it is",
      );
    } else if (r.error) {
      log.warn({ secret: r.secret, store: r.store, error: r.error }, 'store check failed; trying again at the next check');
    }
  }
  return report;
}

/**
 * `store.drift` for a finding (written only with a drift it records): its id names the secret, the
 * store version holding the current stage (`none`) and the occurrence (SyncRepository.recordStoreCheck:
 * when the row was last in sync or repaired), so a finding left as it is (`unknown`) and found again
 * at every check makes one notice, a new wrong version another, and the same wrong version put back
 * after a repair another.
 */
function storeDriftNotice(deps: EngineDeps, r: StoreCheckResult, occurrence: string): Notice {
  const holder = r.storeCurrent?.storeVersionId.replace(/[^\w.-]/g, '_') ?? 'none';
  return notice(deps, 'store.drift', `${r.secretId}.${holder}.${occurrence}`, r.secret, {
    store: r.store,
    found: r.found ?? null,
    repaired: r.repaired,
    storeVersionId: r.storeCurrent?.storeVersionId ?? null,
    storeVersion: r.storeCurrent?.number ?? null,
    storeState: r.storeCurrent?.state ?? null,
    rekeyCurrent: r.rekeyCurrent ?? null,
    code: r.error ? errorCode(r.error) : null,
  });
}

/** A rotation ran, started or promoted while the store was listed: what was listed may be its doing. */
function moved(before: StoreCheckState, after: StoreCheckState): boolean {
  return after.rotating || after.current?.id !== before.current?.id || after.runChangedAt?.getTime() !== before.runChangedAt?.getTime();
}

async function compareAndRepair(deps: EngineDeps, log: Logger, item: Listed, state: StoreCheckState, repair: boolean): Promise<StoreCheckResult> {
  const { resolved } = item;
  const { policy, names } = resolved;
  const current = state.current;
  const result: StoreCheckResult = { secretId: state.secretId, secret: item.secret, store: names.store, repaired: false, ...(current ? { rekeyCurrent: current.number } : {}) };
  if (!item.versions) return { ...result, error: item.error ?? 'store.list failed' };
  const holder = item.versions.find((v) => v.stages.includes('current'));
  if (!holder) return { ...result, found: 'none' };
  if (current && holder.storeVersionId === current.storeVersionId) return { ...result, found: 'in-sync' };
  let known: VersionRecord | undefined;
  try {
    const matches = await deps.sync.versionsInStore(state.secretId, { storeVersionIds: [holder.storeVersionId], versionIds: holder.versionId ? [holder.versionId] : [] });
    known = matches.find((v) => v.storeVersionId === holder.storeVersionId) ?? matches[0];
  } catch (error) {
    return { ...result, error: describeError(error) };
  }
  result.storeCurrent = { storeVersionId: holder.storeVersionId, ...(known ? { number: known.number, state: known.state } : {}) };
  if (!known) return { ...result, found: 'unknown' };
  if (!NOT_LIVE.has(known.state) || known.id === current?.id) return { ...result, found: 'live' };
  result.found = 'not-live';
  // With no current version of rekey's (a leaked key taken down, nothing promoted since) there is nothing to give the stage back to.
  if (!current || !repair) return result;
  const { store } = resolved;
  // The version the store holds under the wrong version's store id (a stray value of the same rekey version included).
  const wrong = { ...storedRef(known, policy.consumer), storeVersionId: holder.storeVersionId };
  // The previous stage back to the version in its grace, as a rollback's give-back does: the store's own rule hands it to
  // the version current leaves (AWS moved AWSPREVIOUS off it when the late promotion moved AWSCURRENT, so it may not be listed now).
  const previous = state.previous?.storeVersionId ? storedRef(state.previous, policy.consumer) : undefined;
  try {
    await providerCall(deps, log, { provider: names.store, op: 'store.promote' }, policy.timeoutMs, (c) => store.promote(storedRef(current, policy.consumer), previous, { storeVersionId: holder.storeVersionId }, c));
    await providerCall(deps, log, { provider: names.store, op: 'store.destroy' }, policy.timeoutMs, (c) => store.destroy(wrong, c));
    result.repaired = true;
  } catch (error) {
    // REKEY_ERR_CONFLICT: the stage moved since the list (a rotation, a person): theirs wins; the next check looks again.
    result.error = describeError(error);
  }
  return result;
}
