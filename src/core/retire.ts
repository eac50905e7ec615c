/**
 * Taking one version off its targets, its issuer and its store: the provider calls a
 * rollback (rotation.ts) and a retirement or revocation (takedown.ts) share. A retirement
 * makes them in that order, a revocation revokes beside the retirement at the targets; a
 * rollback destroys in the store first, on its own, then retires and revokes here. What
 * happens between them (state transitions, leak bookkeeping) stays with each caller,
 * and so does the decision that the version may be revoked at all (invariant 3).
 */
import { allOrFirstError } from './call.js';
import { type EngineDeps, issuedRef, providerCall, storedRef, versionRef } from './context.js';
import type { Logger } from './logger.js';
import type { AuditContext, VersionRecord } from './model.js';
import type { ResolvedSecret } from './resolved.js';

/**
 * Which targets a version is retired at.
 * - `deployed`: those with a delivery row for it. A row is written before every deploy
 *   call, so a pending version can be nowhere else (a rollback; protocol.test.ts asserts
 *   that no other target is called).
 * - `everywhere`: those and every target the config names now, whatever the rows say
 *   (a retirement or revocation of a version that was live: it goes wherever the config
 *   points; retire is idempotent, so a target that never had it answers success).
 */
export type RetireScope = 'deployed' | 'everywhere';

/**
 * Retires `version` at the targets `scope` names, skipping those whose delivery is
 * already `retired`, all at once. Each success is recorded as a `retired` delivery
 * before this returns; a target no longer configured is skipped with a warning and
 * keeps its row. Needs no value, so it works while the store is unreachable.
 * Idempotent: a retry calls only the targets not yet recorded as retired.
 *
 * `early` (scope `everywhere` only; the promotion's block of a leaked key, which no retry has
 * touched yet): the targets the config names are called beside the read of the rows, not after
 * it, so the key is refused a round trip sooner; one recorded retired already is called again
 * (retire is idempotent) and not recorded again. The call order per target and what is recorded
 * are unchanged: a success is recorded after its call, before this returns.
 * @throws the first failure once every call has settled, retryable only if every
 * failure was; the targets that succeeded stay recorded.
 */
export async function retireAtTargets(
  deps: EngineDeps,
  { targets, policy }: ResolvedSecret,
  version: VersionRecord,
  scope: RetireScope,
  ctx: AuditContext,
  log: Logger,
  { early = false }: { early?: boolean } = {},
): Promise<void> {
  /** Whether the target was called (false: no longer configured). */
  const retire = async (name: string): Promise<boolean> => {
    const target = targets.get(name);
    if (!target) {
      log.warn({ target: name }, 'target no longer configured; cannot retire there');
      return false;
    }
    await providerCall(deps, log, { provider: name, op: 'target.retire' }, policy.timeoutMs, (c) => target.retire(versionRef(version, policy.consumer), c));
    return true;
  };
  const started = new Map(early && scope === 'everywhere' ? policy.targets.map((name) => [name, retire(name)] as const) : []);
  for (const call of started.values()) call.catch(() => {}); // each is awaited below, once the rows are read
  try {
    const deliveries = await deps.repo.deliveries(version.id);
    const retired = new Set(deliveries.filter((d) => d.status === 'retired').map((d) => d.target));
    const names = new Set([...(scope === 'everywhere' ? policy.targets : []), ...deliveries.map((d) => d.target)]);
    await allOrFirstError(
      [...names]
        .filter((name) => !retired.has(name))
        .map(async (name) => {
          if (await (started.get(name) ?? retire(name))) await deps.repo.setDelivery(version.id, name, 'retired', ctx);
        }),
    );
  } finally {
    // No call outlives the step, those at targets recorded retired already included.
    await Promise.allSettled(started.values());
  }
}

/**
 * Revokes `version` at the issuer, if it was ever issued. Call it only after {@link retireAtTargets}
 * succeeded (a leaked version: beside it), and only for a version that never became current, was
 * succeeded by a verified version, or was reported leaked or explicitly revoked (invariant 3).
 * Idempotent ("already gone" is success); records nothing, so the caller's state transition follows.
 */
export async function revokeAtIssuer(deps: EngineDeps, { issuer, policy, names }: ResolvedSecret, version: VersionRecord, log: Logger): Promise<void> {
  if (version.fingerprint) await providerCall(deps, log, { provider: names.issuer, op: 'issuer.revoke' }, policy.timeoutMs, (c) => issuer.revoke(issuedRef(version, policy.consumer), c));
}

/**
 * Destroys `version` in the store, if it was ever stored, once it is revoked at the issuer (never
 * before: a failed revoke leaves the store alone). Idempotent. A rollback destroys in the store
 * first, on its own (rotation.ts), and does not call this; a takedown of the version the store
 * holds as current does not either: it stays there until a successor is promoted, which destroys
 * it then (some stores cannot drop their current version: AWS keeps `AWSCURRENT`), dead anyway.
 */
export async function destroyInStore(deps: EngineDeps, { store, policy, names }: ResolvedSecret, version: VersionRecord, log: Logger): Promise<void> {
  if (version.storeVersionId) await providerCall(deps, log, { provider: names.store, op: 'store.destroy' }, policy.timeoutMs, (c) => store.destroy(storedRef(version, policy.consumer), c));
}
