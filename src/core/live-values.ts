/**
 * The values of a managed secret that verifiers must accept now (ProviderContext.liveValues):
 * the current version first, then the previous one while its grace lasts. Pending,
 * compromised, retired and revoked versions are never returned, nor a leaked current version
 * waiting for its replacement (compromisedAt set), so a leaked shared secret stops verifying
 * the moment the leak is recorded.
 */
import { RekeyError } from './errors.js';
import type { Fingerprinter } from './fingerprint.js';
import type { StateRepository, VersionRecord } from './model.js';
import type { Call } from './ports.js';
import type { ProviderResolver } from './resolved.js';
import type { SecretValue } from './secret-value.js';

export async function liveValues(repo: StateRepository, providers: ProviderResolver, secret: string, call: Call): Promise<SecretValue[]> {
  const record = await repo.getSecret(secret);
  if (!record || record.removedAt) throw new RekeyError('REKEY_ERR_UNKNOWN', `${secret} is not a managed secret`);
  const now = Date.now();
  const versions = (await repo.versions(record.id, ['current', 'previous']))
    .filter((v) => isLive(v, now))
    .sort((a, b) => (a.state === 'current' ? -1 : b.state === 'current' ? 1 : b.number - a.number));
  if (!versions.length) return [];
  const { store } = await providers.resolve(secret);
  return Promise.all(versions.map((v) => store.read({ storeVersionId: v.storeVersionId! }, call)));
}

/** Whether verifiers must accept `version` at `now`: current, or previous within its grace; stored; never leaked. */
function isLive(version: VersionRecord, now: number): boolean {
  if (!version.storeVersionId || version.compromisedAt) return false;
  return version.state === 'current' || (version.state === 'previous' && !!version.graceEndsAt && version.graceEndsAt.getTime() > now);
}

/**
 * The managed secret one of whose live versions (as liveValues counts them) is `value`, found
 * by its fingerprint: no value is read or compared. Undefined when none is, including a
 * compromised, retired or revoked version, or one of a secret removed from the config.
 */
export async function liveSecretOf(repo: StateRepository, fingerprint: Fingerprinter, value: SecretValue): Promise<string | undefined> {
  const version = await repo.findVersionByFingerprint(fingerprint(value));
  if (!version || !isLive(version, Date.now())) return undefined;
  const record = await repo.getSecret(version.secret);
  return record && !record.removedAt ? version.secret : undefined;
}
