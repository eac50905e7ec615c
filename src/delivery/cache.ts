/**
 * What delivery requests need on every call, kept in memory by each server (issue 17): the
 * value of each secret's version that may be handed out (signing keys, granted values) and the
 * versions of each signing key that may sign, and the
 * live values authenticators verify credentials against (ProviderContext.liveValues). Without
 * it every request read PostgreSQL and a store two or three times.
 *
 * Entries are dropped when the change feed reports the secret rotated or revoked (every
 * process that commits a change publishes it), when a hand-out's check finds a version no
 * longer what the entry said (forgetVersions), and after `maxAgeMs` at most (pub/sub delivers
 * at most once). An entry read in the last 40% of its age is read again in the background and
 * replaced by the answer (dated from when that read started), so requests on a busy server
 * never wait for the periodic read; an entry left unread expires and the next request waits. The cache is never what keeps a revoked version from being handed out: the
 * hand-out journal (src/db/handouts.ts) re-checks every version a request relied on, in the
 * transaction that records it, so a stale entry costs one more attempt, never a leaked value.
 *
 * Callers asking for the same entry at once share one read; a failed read is not kept, nor an
 * answer that no version may be handed out.
 *
 * A caller whose credential matched none of the live values held asks for a recheck (see
 * ProviderContext.liveValues): the live values are read again at once, so a token signed with a
 * version promoted a moment ago passes even before its change event arrives (or if it is lost),
 * but at most once per RECHECK_INTERVAL_MS per secret and one read at a time, so bad credentials
 * cannot drive PostgreSQL and store reads; otherwise the held values are the answer.
 */
import type { Handable } from '../core/delivery.js';
import type { Call } from '../core/ports.js';
import type { LiveValue } from '../core/provider.js';

export interface CacheSources {
  current(secret: string, call: Call): Promise<Handable | undefined>;
  signing(secret: string, call: Call): Promise<readonly Handable[] | undefined>;
  live(secret: string, call: Call): Promise<LiveValue[]>;
}

interface Entry<T> {
  secret: string;
  answer: Promise<T>;
  expiresAt: number;
  /** Version ids the answer holds; undefined while it is read. */
  versions: ReadonlySet<string> | undefined;
  /** The read of its replacement under way (read-ahead or recheck): its answer, or the held one if it fails. */
  reloading: Promise<T> | undefined;
  /** When the recheck this entry's answer came from started (carried over by read-ahead); -Infinity when none. */
  recheckedAt: number;
}

/** An entry in use is read again once less than this share of its age is left. */
const REFRESH_AHEAD = 0.4;

/** Rechecks of one secret's live values start at least this far apart. */
const RECHECK_INTERVAL_MS = 1000;

export class DeliveryCache {
  private readonly entries = new Map<string, Entry<unknown>>();

  /** @param maxAgeMs the longest an entry is kept without news from the change feed. @defaultValue 5000 */
  constructor(
    private readonly sources: CacheSources,
    private readonly maxAgeMs = 5000,
  ) {}

  /** The version of `secret` that may be handed out and its value (CacheSources.current). */
  current(secret: string, call: Call): Promise<Handable | undefined> {
    return this.read(`current:${secret}`, secret, () => this.sources.current(secret, call), (h) => (h ? [h.version.id] : []));
  }

  /** The versions of signing key `secret` that may sign (CacheSources.signing). */
  signing(secret: string, call: Call): Promise<readonly Handable[] | undefined> {
    return this.read(`signing:${secret}`, secret, () => this.sources.signing(secret, call), (keys) => (keys ?? []).map((h) => h.version.id));
  }

  /** The live values of `secret`, current first (ProviderContext.liveValues, `recheck` included). */
  live(secret: string, call: Call, recheck = false): Promise<LiveValue[]> {
    return this.read(`live:${secret}`, secret, () => this.sources.live(secret, call), (values) => values.map((v) => v.versionId), recheck);
  }

  /** Drops what is held of `secret` (it rotated, or one of its versions was revoked). */
  forget(secret: string): void {
    for (const [key, entry] of this.entries) if (entry.secret === secret) this.entries.delete(key);
  }

  /** Drops every entry holding one of `versionIds` (or still being read: it may), and the rest of their secrets'. */
  forgetVersions(versionIds: readonly string[]): void {
    const secrets = new Set<string>();
    for (const entry of this.entries.values()) if (!entry.versions || versionIds.some((id) => entry.versions!.has(id))) secrets.add(entry.secret);
    for (const secret of secrets) this.forget(secret);
  }

  private read<T>(key: string, secret: string, load: () => Promise<T>, idsOf: (answer: T) => string[], recheck = false): Promise<T> {
    const now = Date.now();
    const held = this.entries.get(key) as Entry<T> | undefined;
    if (!held || held.expiresAt <= now) return this.install(key, secret, load(), now, idsOf, -Infinity).answer;
    // Still being read (that read is as fresh as a recheck), or a replacement already under way: its answer.
    if (!held.versions) return held.answer;
    if (held.reloading) return recheck ? held.reloading : held.answer;
    if (recheck && now - held.recheckedAt >= RECHECK_INTERVAL_MS) return this.reload(key, held, load, idsOf, now);
    // Read again ahead of expiry while the entry is in use, so a busy server never waits for it.
    if (held.expiresAt - now < this.maxAgeMs * REFRESH_AHEAD) void this.reload(key, held, load, idsOf, held.recheckedAt);
    return held.answer;
  }

  /**
   * Reads `held` again; the answer replaces it unless it was dropped or replaced meanwhile (the
   * change feed's news is newer). If the read fails, the held entry stays until its expiry (the
   * read after it waits, and fails or succeeds then) and is the answer.
   */
  private reload<T>(key: string, held: Entry<T>, load: () => Promise<T>, idsOf: (answer: T) => string[], recheckedAt: number): Promise<T> {
    const started = Date.now();
    held.reloading = load().then(
      (answer) => {
        if (this.entries.get(key) === held) {
          if (answer === undefined) this.entries.delete(key);
          else this.install(key, held.secret, Promise.resolve(answer), started, idsOf, recheckedAt);
        }
        return answer;
      },
      () => held.answer,
    );
    return held.reloading;
  }

  private install<T>(key: string, secret: string, answer: Promise<T>, readAt: number, idsOf: (answer: T) => string[], recheckedAt: number): Entry<T> {
    const entry: Entry<T> = { secret, answer, expiresAt: readAt + this.maxAgeMs, versions: undefined, reloading: undefined, recheckedAt };
    this.entries.set(key, entry);
    const drop = () => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    };
    // "No version may be handed out" is not kept: the replacement's promotion must be seen at
    // once, even by a server that misses its change event.
    entry.answer.then((answer) => (answer === undefined ? drop() : (entry.versions = new Set(idsOf(answer)))), drop);
    return entry;
  }
}
