/**
 * The values of a managed secret that verifiers must accept now (ProviderContext.liveValues):
 * the current version first, then the previous one while its grace lasts. Pending,
 * compromised, retired and revoked versions are never returned, nor a leaked current version
 * waiting for its replacement (compromisedAt set), so a leaked shared secret stops verifying
 * the moment the leak is recorded.
 */
import { describeError, RekeyError } from './errors.js';
import type { Handable } from './delivery.js';
import type { Fingerprinter } from './fingerprint.js';
import type { Logger } from './logger.js';
import type { StateRepository, VersionRecord } from './model.js';
import type { Call } from './ports.js';
import type { LiveValue } from './provider.js';
import type { ProviderResolver } from './resolved.js';
import type { SecretValue } from './secret-value.js';

/**
 * The live values, current first. A version whose value cannot be read (a store that is
 * down for it, a value sealed under another key) is left out and logged when another can be
 * read, so one unreadable previous version does not refuse every credential.
 * @throws the first version's read error when none can be read; RekeyError REKEY_ERR_UNKNOWN when the secret is not managed.
 */
export async function liveValues(repo: StateRepository, providers: ProviderResolver, log: Logger, secret: string, call: Call): Promise<LiveValue[]> {
  const record = await repo.getSecret(secret);
  if (!record || record.removedAt) throw new RekeyError('REKEY_ERR_UNKNOWN', `${secret} is not a managed secret`);
  return (await liveVersions(repo, providers, log, record, call)).map(({ version, value }) => ({ versionId: version.id, value }));
}

/**
 * The versions of a signing key that may sign a token (token-exchange.ts signerAt picks one):
 * its live versions with their values, current first, then the previous ones newest first;
 * undefined when there is no current one that is stored and not leaked (or the secret left the
 * config). An unreadable previous version is left out, as liveValues does.
 */
export async function signingKeys(repo: StateRepository, providers: ProviderResolver, log: Logger, secret: string, call: Call): Promise<Handable[] | undefined> {
  const record = await repo.getSecret(secret);
  if (!record || record.removedAt) return undefined;
  const keys = await liveVersions(repo, providers, log, record, call);
  return keys[0]?.version.state === 'current' ? keys : undefined;
}

async function liveVersions(repo: StateRepository, providers: ProviderResolver, log: Logger, record: { id: string; name: string }, call: Call): Promise<Handable[]> {
  const now = Date.now();
  const versions = (await repo.versions(record.id, ['current', 'previous']))
    .filter((v) => isLive(v, now))
    .sort((a, b) => (a.state === 'current' ? -1 : b.state === 'current' ? 1 : b.number - a.number));
  if (!versions.length) return [];
  const { store } = await providers.resolve(record.name);
  const read = await Promise.allSettled(versions.map((v) => store.read({ storeVersionId: v.storeVersionId! }, call)));
  const found: Handable[] = [];
  for (const [i, outcome] of read.entries()) {
    if (outcome.status === 'fulfilled') found.push({ version: versions[i]!, value: outcome.value });
  }
  const failed = read.find((outcome) => outcome.status === 'rejected');
  if (!failed) return found;
  if (!found.length) throw failed.reason;
  for (const [i, outcome] of read.entries()) {
    if (outcome.status === 'rejected') log.warn({ secret: record.name, version: versions[i]!.number, error: describeError(outcome.reason) }, 'live version unreadable: left out of verification and signing');
  }
  return found;
}

/** Whether verifiers must accept `version` at `now`: current, or previous within its grace; stored; never leaked. */
export function isLive(version: VersionRecord, now: number): boolean {
  if (!version.storeVersionId || version.compromisedAt) return false;
  return version.state === 'current' || (version.state === 'previous' && !!version.graceEndsAt && version.graceEndsAt.getTime() > now);
}

/**
 * The live version (as liveValues counts them) that `value` is, found by its fingerprint: no
 * value is read or compared. Undefined when none is, including a compromised, retired or
 * revoked version, or one of a secret removed from the config.
 */
export async function liveVersionOf(repo: StateRepository, fingerprint: Fingerprinter, value: SecretValue): Promise<VersionRecord | undefined> {
  const version = await repo.findVersionByFingerprint(fingerprint(value));
  if (!version || !isLive(version, Date.now())) return undefined;
  const record = await repo.getSecret(version.secret);
  return record && !record.removedAt ? version : undefined;
}

/**
 * The version of `secret` that may be handed out (current, stored, not compromised; the secret
 * still in the config) with its value read from its store; undefined when there is none.
 */
export async function handableVersion(repo: StateRepository, providers: ProviderResolver, secret: string, call: Call): Promise<Handable | undefined> {
  const record = await repo.getSecret(secret);
  const version = record && !record.removedAt ? await repo.currentVersion(record.id) : null;
  if (!version?.storeVersionId || version.compromisedAt) return undefined;
  const { store } = await providers.resolve(secret);
  return { version, value: await store.read({ storeVersionId: version.storeVersionId }, call) };
}
