/**
 * Decommissioning a secret removed from the config. Removing a secret only stops its
 * rotation: its keys stay live where they were deployed (consumers may still use them), and
 * it keeps the provider bindings of the revision it was last applied in, so leak reports and
 * `rekey revoke` still reach them. `rekey decommission NAME` retires and revokes every live
 * key of it: at every target, at the issuer and in the store, as a retirement after grace
 * would (takedown.ts). Its versions, runs and audit events are kept.
 */
import { audit, type EngineDeps, retirementDue, now } from './context.js';
import { RekeyError } from './errors.js';
import { planDecommission } from './lifecycle.js';
import type { VersionRecord } from './model.js';

/**
 * Ends the grace of every live version of a removed secret and queues their retirements.
 * Idempotent: a second call queues what is left. The secret has no current version after.
 * @returns the versions being taken down.
 * @throws RekeyError REKEY_ERR_UNKNOWN for an unknown secret, REKEY_ERR_CONFIG for one still in
 * the applied config, REKEY_ERR_CONFLICT while a rotation of it is running.
 */
export async function decommission(deps: EngineDeps, name: string): Promise<VersionRecord[]> {
  const secret = await deps.repo.getSecret(name);
  if (!secret) throw new RekeyError('REKEY_ERR_UNKNOWN', `no managed secret named ${name}`);
  if (!secret.removedAt) throw new RekeyError('REKEY_ERR_CONFIG', `${name} is still in the applied config: remove it from rekey.yaml and apply, then decommission it`);
  const policy = await deps.providers.policy(name);
  const versions = await deps.repo.decommission(secret.id, planDecommission, audit(deps));
  for (const version of versions) await deps.queue.scheduleRetirement(version.id, retirementDue(version.graceEndsAt ?? now(deps)), policy.retry);
  deps.log.warn({ secret: name, versions: versions.map((v) => v.number) }, 'secret decommissioned: its keys are being retired and revoked everywhere');
  return versions;
}
