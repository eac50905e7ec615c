/**
 * GitGuardian never sends the leaked secret: its incidents carry `hmsl_hash`, the
 * HasMySecretLeaked hash, scrypt(secret, salt = SHA-256("GitGuardian"), N=2048, r=8,
 * p=1, 32 bytes) in hex (ggshield's hmsl/crypto.py). rekey keeps no values, so this index
 * computes that hash for the versions still in a store (pending, current, previous,
 * retired or compromised: the ones a leak can still hurt), reading each value back from
 * its store once, and remembers hash -> version id in memory. Values never outlive the
 * hashing; the index holds hashes and ids only. Versions already destroyed cannot be
 * matched, and need not be: they are dead.
 *
 * A version whose store cannot be read (down, throttled, too slow, refusing us) is neither
 * matched nor ruled out: until it is hashed, an incident that matches nothing else may be
 * about it, and {@link HmslIndex.find} says so (`complete: false`) rather than let it pass
 * as unknown.
 */
import { createHash, scrypt } from 'node:crypto';
import { RekeyError } from '../core/errors.js';
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

/** What {@link HmslIndex.find} found. */
export interface HmslMatch {
  /** The version with that hash, or null. */
  version: VersionRecord | null;
  /**
   * False when nothing matched and some live version could not be read from its store: the
   * hash may still be one of ours, so "unknown" is not an answer yet.
   */
  complete: boolean;
}

/** What one indexing pass left out: live versions whose store could not be read. */
interface Pass {
  unread: number;
}

export class HmslIndex {
  private readonly versionByHash = new Map<string, string>();
  private readonly indexed = new Set<string>(); // version ids hashed already
  private indexing: Promise<Pass> | undefined;

  constructor(
    private readonly runtime: Runtime,
    private readonly log: Logger,
  ) {}

  /**
   * The version whose value has this HMSL hash, indexing versions not seen yet first; whether
   * every live version could be read when none matched. Never throws for a store that cannot
   * be read (that is `complete: false`); throws for a database that cannot be.
   */
  async find(hash: string): Promise<HmslMatch> {
    const known = await this.lookup(hash);
    if (known) return { version: known, complete: true };
    const { unread } = await this.index();
    const version = await this.lookup(hash);
    return { version, complete: version !== null || unread === 0 };
  }

  private async lookup(hash: string): Promise<VersionRecord | null> {
    const versionId = this.versionByHash.get(hash);
    return versionId ? this.runtime.engine.deps.repo.getVersion(versionId) : null;
  }

  /** Hashes every live version not indexed yet (single flight). */
  private index(): Promise<Pass> {
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
  private async indexAll(): Promise<Pass> {
    const { repo, fingerprint } = this.runtime.engine.deps;
    const config = await this.runtime.resolver.config();
    const removed = await this.runtime.db.secret.findMany({
      where: { removedAt: { not: null }, versions: { some: { state: { in: [...LIVE] } } } },
      select: { name: true },
    });
    const names = [...Object.keys(config.secrets), ...removed.map((s) => s.name).filter((name) => !Object.hasOwn(config.secrets, name))];
    // Store instance name -> error code -> versions not read: logged by name and code only.
    const unreadable = new Map<string, Map<string, number>>();
    let unread = 0;
    for (const version of await repo.versionsOf(names, LIVE)) {
      if (this.indexed.has(version.id) || !version.storeVersionId) continue;
      let storeName = '?';
      try {
        const { store, names: instances } = await this.runtime.resolver.resolve(version.secret);
        storeName = instances.store;
        const value = await store.read({ storeVersionId: version.storeVersionId }, { signal: AbortSignal.timeout(READ_TIMEOUT_MS) });
        // The store must hold what was issued, or the hash would name the wrong version.
        if (fingerprint(value) !== version.fingerprint) continue;
        this.versionByHash.set(await hmslHash(value), version.id);
        this.indexed.add(version.id);
      } catch (error) {
        const code = error instanceof RekeyError ? error.code : 'unexpected';
        // Destroyed meanwhile: dead, nothing to match. Anything else (down, throttled, too slow,
        // refused, not resolvable): this version may be the one reported; it is tried again next time.
        if (code === 'REKEY_ERR_NOT_FOUND') continue;
        unread += 1;
        const byCode = unreadable.get(storeName) ?? new Map<string, number>();
        byCode.set(code, (byCode.get(code) ?? 0) + 1);
        unreadable.set(storeName, byCode);
      }
    }
    if (unread > 0) {
      const stores = [...unreadable].map(([store, byCode]) => ({ store, errors: Object.fromEntries(byCode) }));
      this.log.warn({ unread, stores }, 'hmsl index: live versions could not be read from their stores; an unmatched incident is answered 503');
    }
    return { unread };
  }
}
