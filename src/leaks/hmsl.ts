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
 *
 * The receiver warms the index in the background when it starts, after every promotion and
 * once a minute (src/leaks/routes.ts), so an incident rarely waits for a store. One that does
 * (the first after a start, a version never read) is answered as soon as its version is
 * hashed: reads run 16 at a time, current versions first.
 */
import { createHash, scrypt } from 'node:crypto';
import { forEachBounded } from '../core/bounded.js';
import { RekeyError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { VersionRecord, VersionState } from '../core/model.js';
import type { SecretValue } from '../core/secret-value.js';
import type { Runtime } from '../runtime.js';

const PEPPER = createHash('sha256').update('GitGuardian').digest();
/** The states whose versions are still in a store, in the order they are read: a leak is likeliest to name a version in use. */
const LIVE: readonly VersionState[] = ['current', 'pending', 'previous', 'retired', 'compromised'];
const READ_TIMEOUT_MS = 10_000;
/** Store reads at once: a few hundred versions on a remote secret manager in seconds, not minutes, without a burst its rate limit refuses. */
const READ_PARALLEL = 16;

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

/** What started an indexing pass (logged with it): the receiver starting, a promotion, the minutely refresh, an incident. */
export type PassReason = 'start' | 'promotion' | 'minutely' | 'incident';

/** What one indexing pass left out: live versions whose store could not be read. */
interface Pass {
  unread: number;
}

export class HmslIndex {
  private readonly versionByHash = new Map<string, string>();
  private readonly indexed = new Set<string>(); // version ids hashed already
  private indexing: Promise<Pass> | undefined;
  /** Incidents waiting for a hash the pass in flight may produce, woken as soon as it does. */
  private readonly waiting = new Map<string, Set<() => void>>();

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
    let wake!: () => void;
    const hashed = new Promise<true>((resolve) => (wake = () => resolve(true)));
    const waiters = this.waiting.get(hash) ?? new Set();
    this.waiting.set(hash, waiters.add(wake));
    try {
      const pass = this.fresh('incident');
      // Answered as soon as the version is hashed, not when the whole pass is done.
      if (await Promise.race([hashed, pass.then(() => false)])) {
        const version = await this.lookup(hash);
        if (version) return { version, complete: true };
      }
      const { unread } = await pass;
      const version = await this.lookup(hash);
      return { version, complete: version !== null || unread === 0 };
    } finally {
      waiters.delete(wake);
      if (!waiters.size) this.waiting.delete(hash);
    }
  }

  /**
   * Hashes what is live and not hashed yet, in the background (server start, a promotion, a
   * minute gone by). Resolves when done; rejects only when the database cannot be read.
   */
  async refresh(reason: Exclude<PassReason, 'incident'>): Promise<void> {
    await this.fresh(reason);
  }

  private async lookup(hash: string): Promise<VersionRecord | null> {
    const versionId = this.versionByHash.get(hash);
    return versionId ? this.runtime.engine.deps.repo.getVersion(versionId) : null;
  }

  /**
   * A pass that has seen every version live now: the one in flight, unless it read every version
   * it listed (a version written since may be missing from its list: one more pass, which lists
   * again and reads only what is new). One that could not read some version is not run again
   * at once: a store that is down would only make the caller wait twice as long.
   */
  private async fresh(reason: PassReason): Promise<Pass> {
    const inFlight = this.indexing;
    if (!inFlight) return this.index(reason);
    const pass = await inFlight;
    return pass.unread > 0 ? pass : this.index(reason);
  }

  /** Hashes every live version not indexed yet (single flight). */
  private index(reason: PassReason): Promise<Pass> {
    this.indexing ??= this.indexAll(reason).finally(() => (this.indexing = undefined));
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
  private async indexAll(reason: PassReason): Promise<Pass> {
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
    let hashed = 0;
    const live = await repo.versionsOf(names, LIVE);
    const toRead = live
      .filter((version) => !this.indexed.has(version.id) && version.storeVersionId)
      .sort((a, b) => LIVE.indexOf(a.state) - LIVE.indexOf(b.state));
    await forEachBounded(toRead, READ_PARALLEL, async (version) => {
      let storeName = '?';
      try {
        const { store, names: instances } = await this.runtime.resolver.resolve(version.secret);
        storeName = instances.store;
        const value = await store.read({ storeVersionId: version.storeVersionId! }, { signal: AbortSignal.timeout(READ_TIMEOUT_MS) });
        // The store must hold what was issued, or the hash would name the wrong version.
        if (fingerprint(value) !== version.fingerprint) return;
        const hash = await hmslHash(value);
        this.versionByHash.set(hash, version.id);
        this.indexed.add(version.id);
        hashed += 1;
        for (const wake of this.waiting.get(hash) ?? []) wake();
      } catch (error) {
        const code = error instanceof RekeyError ? error.code : 'unexpected';
        // Destroyed meanwhile: dead, nothing to match. Anything else (down, throttled, too slow,
        // refused, not resolvable): this version may be the one reported; it is tried again next time.
        if (code === 'REKEY_ERR_NOT_FOUND') return;
        unread += 1;
        const byCode = unreadable.get(storeName) ?? new Map<string, number>();
        byCode.set(code, (byCode.get(code) ?? 0) + 1);
        unreadable.set(storeName, byCode);
      }
    });
    if (unread > 0) {
      const stores = [...unreadable].map(([store, byCode]) => ({ store, errors: Object.fromEntries(byCode) }));
      this.log.warn({ unread, stores }, 'hmsl index: live versions could not be read from their stores; an unmatched incident is answered 503');
    }
    this.log.debug({ reason, live: live.length, hashed, unread }, 'hmsl index: pass done');
    return { unread };
  }
}
