/**
 * GitGuardian never sends the leaked secret: its incidents carry `hmsl_hash`, the
 * HasMySecretLeaked hash, scrypt(secret, salt = SHA-256("GitGuardian"), N=2048, r=8,
 * p=1, 32 bytes) in hex (ggshield's hmsl/crypto.py). rekey keeps no values, so this index
 * computes that hash for the versions still in a store (pending, current, previous,
 * retired or compromised: the ones a leak can still hurt), reading each value back from
 * its store once, and remembers hash -> version id in memory. Values never outlive the
 * hashing; the index holds hashes and ids only. Versions already destroyed cannot be
 * matched, and need not be: they are dead.
 */
import { createHash, scrypt } from 'node:crypto';
import { describeError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { VersionRecord } from '../core/model.js';
import type { SecretValue } from '../core/secret-value.js';
import type { Runtime } from '../runtime.js';

const PEPPER = createHash('sha256').update('GitGuardian').digest();
const LIVE = ['pending', 'current', 'previous', 'retired', 'compromised'] as const;
const READ_TIMEOUT_MS = 10_000;

/** GitGuardian's HasMySecretLeaked hash of a value (64 hex chars). */
export function hmslHash(value: SecretValue | string): Promise<string> {
  const text = typeof value === 'string' ? value : value.reveal();
  return new Promise((resolve, reject) =>
    scrypt(text, PEPPER, 32, { N: 2048, r: 8, p: 1 }, (error, key) => (error ? reject(error) : resolve(key.toString('hex')))),
  );
}

export class HmslIndex {
  private readonly versionByHash = new Map<string, string>();
  private readonly indexed = new Set<string>(); // version ids hashed already
  private indexing: Promise<void> | undefined;

  constructor(
    private readonly runtime: Runtime,
    private readonly log: Logger,
  ) {}

  /** The version whose value has this HMSL hash, indexing versions not seen yet first. */
  async find(hash: string): Promise<VersionRecord | null> {
    let found = await this.lookup(hash);
    if (!found) {
      await this.index();
      found = await this.lookup(hash);
    }
    return found;
  }

  private async lookup(hash: string): Promise<VersionRecord | null> {
    const versionId = this.versionByHash.get(hash);
    return versionId ? this.runtime.engine.deps.repo.getVersion(versionId) : null;
  }

  /** Hashes every live version not indexed yet (single flight). */
  private index(): Promise<void> {
    this.indexing ??= this.indexAll().finally(() => (this.indexing = undefined));
    return this.indexing;
  }

  /**
   * One query for the live versions of every configured secret, and of every secret removed
   * from the config whose versions are still live (it keeps the bindings of the revision it was
   * last applied in, so its keys stay at the targets and a leak of one must still reach them);
   * store reads only for those not hashed yet. An incident that matches nothing (most of a
   * GitGuardian workspace's incidents are about other secrets) costs those queries, not a query
   * per secret.
   */
  private async indexAll(): Promise<void> {
    const { repo, fingerprint } = this.runtime.engine.deps;
    const config = await this.runtime.resolver.config();
    const removed = await this.runtime.db.secret.findMany({
      where: { removedAt: { not: null }, versions: { some: { state: { in: [...LIVE] } } } },
      select: { name: true },
    });
    const names = [...Object.keys(config.secrets), ...removed.map((s) => s.name).filter((name) => !Object.hasOwn(config.secrets, name))];
    for (const version of await repo.versionsOf(names, LIVE)) {
      if (this.indexed.has(version.id) || !version.storeVersionId) continue;
      try {
        const { store } = await this.runtime.resolver.resolve(version.secret);
        const value = await store.read({ storeVersionId: version.storeVersionId }, { signal: AbortSignal.timeout(READ_TIMEOUT_MS) });
        // The store must hold what was issued, or the hash would name the wrong version.
        if (fingerprint(value) !== version.fingerprint) continue;
        this.versionByHash.set(await hmslHash(value), version.id);
        this.indexed.add(version.id);
      } catch (error) {
        // Destroyed meanwhile, or the store is down: this version is tried again next time.
        this.log.debug({ secret: version.secret, version: version.number, error: describeError(error) }, 'hmsl index: could not read a version');
      }
    }
  }
}
