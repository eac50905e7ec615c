/**
 * When each target's periodic job runs: the drift check and the usage check, one schedule
 * each. Per process (every replica checks on its own clock; repairs and usage actions are
 * idempotent), on a housekeeping job (`drift`, `usage`) that ticks every second and starts the
 * checks that are due. Each target runs at its own interval (`drift.interval` on its providers:
 * entry, default 30 s; `usage.interval`, only where set), jittered: the next check comes up to a
 * fifth of the interval (at most 5 s) early, never late, so replicas drift apart instead of
 * reading the target in step. Checks of one target never overlap; a slow target delays no other.
 */
import type { ProviderSpec, RekeyConfig } from './config/schema.js';
import { describeError } from './core/errors.js';
import type { Logger } from './core/logger.js';
import type { Db } from './db/client.js';
import type { ConfigResolver } from './resolver.js';

const MAX_JITTER_MS = 5000;
/** How long the list of bindings is trusted before it is read again. */
const BINDINGS_TTL_MS = 5000;

export interface TargetScheduleDeps {
  resolver: ConfigResolver;
  db: Db;
  log: Logger;
  /** For logs: `drift`, `usage`. */
  component: string;
  /** A target's interval from its providers: entry; undefined: the target is not checked. */
  interval(spec: ProviderSpec): number | undefined;
  /** Targets named by no applied config any more (a removed secret's) are checked this often; undefined: not at all. */
  orphanIntervalMs: number | undefined;
  /**
   * At most this many of a target's secrets per periodic check: a target bound to more is
   * checked a slice at a time, the next slice each interval, so a check costs the same
   * however large the fleet (each secret is then checked every ceil(bound / slice) intervals).
   * `checkNow` always covers every secret. @defaultValue unlimited
   */
  slice?: number;
  /**
   * One check of `target` for `secrets`; its failure is logged. `periodMs`: how often each of
   * these secrets is checked (the interval, times the slices the target's secrets take).
   */
  run(target: string, secrets: string[], intervalMs: number, periodMs: number): Promise<unknown>;
}

export class TargetSchedule {
  private readonly next = new Map<string, number>();
  private readonly running = new Map<string, Promise<void>>();
  /** Where each sliced target's next check starts in its list of secrets. */
  private readonly cursor = new Map<string, number>();
  private bindings: { at: number; byTarget: Map<string, string[]>; intervals: Map<string, number | undefined> } | undefined;
  private stopped = false;

  constructor(private readonly deps: TargetScheduleDeps) {}

  /** Starts every check that is due; returns without waiting for them. */
  async tick(): Promise<void> {
    if (this.stopped) return;
    const now = Date.now();
    const { byTarget, intervals } = await this.bindingsAt(now);
    for (const [target, secrets] of byTarget) {
      if (this.running.has(target)) continue;
      const interval = intervals.has(target) ? intervals.get(target) : this.deps.orphanIntervalMs;
      if (interval === undefined) continue;
      // A first check within a few seconds of start; a shortened interval (a new apply) takes effect at once.
      let due = this.next.get(target) ?? now + Math.random() * Math.min(interval, MAX_JITTER_MS);
      if (due > now + interval) due = this.nextAfter(now, interval);
      this.next.set(target, due);
      if (due > now) continue;
      this.next.set(target, this.nextAfter(now, interval));
      const run = this.deps
        .run(target, this.sliceOf(target, secrets), interval, interval * Math.max(1, Math.ceil(secrets.length / (this.deps.slice ?? Infinity))))
        .then(
          () => undefined,
          (error: unknown) => this.deps.log.warn({ component: this.deps.component, target, error: describeError(error) }, 'check failed; trying again next interval'),
        )
        .finally(() => this.running.delete(target));
      this.running.set(target, run);
    }
  }

  /** The secrets of the target's next periodic check: all of them, or the next slice. */
  private sliceOf(target: string, secrets: string[]): string[] {
    const size = this.deps.slice ?? Infinity;
    if (secrets.length <= size) return secrets;
    const start = (this.cursor.get(target) ?? 0) % secrets.length;
    this.cursor.set(target, start + size >= secrets.length ? 0 : start + size);
    return secrets.slice(start, start + size);
  }

  /** Up to a fifth of the interval (at most MAX_JITTER_MS) early, never late. */
  private nextAfter(now: number, interval: number): number {
    return now + interval - Math.random() * Math.min(interval / 5, MAX_JITTER_MS);
  }

  /** Runs `check` for every target of `secrets` (all when undefined) now, once, one target at a time; returns what each returned. */
  async checkNow<T>(secrets: readonly string[] | undefined, check: (target: string, secrets: string[]) => Promise<T>): Promise<T[]> {
    const { byTarget } = await this.bindingsAt(Date.now(), true);
    const filter = secrets && new Set(secrets);
    const reports: T[] = [];
    for (const [target, bound] of byTarget) {
      const chosen = filter ? bound.filter((s) => filter.has(s)) : bound;
      if (chosen.length) reports.push(await check(target, chosen));
    }
    return reports;
  }

  /** Stops starting checks and waits for those running. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running.values());
  }

  /**
   * Secrets by target (every secret of the applied config, and every removed one whose keys are
   * still live: it keeps its last bindings) and each target's interval, read again every few
   * seconds: an apply takes effect within BINDINGS_TTL_MS. Policies only, no provider instance
   * is built. The applied config's part is derived once per config revision (shared by every
   * schedule of the process): a read every few seconds costs the removed secrets' query, not a
   * walk of 100,000 secrets.
   */
  private async bindingsAt(now: number, fresh = false): Promise<{ byTarget: Map<string, string[]>; intervals: Map<string, number | undefined> }> {
    if (!fresh && this.bindings && now - this.bindings.at < BINDINGS_TTL_MS) return this.bindings;
    const config = await this.deps.resolver.config();
    const removed = await this.deps.db.secret.findMany({
      where: { removedAt: { not: null }, versions: { some: { state: { in: ['current', 'previous', 'pending'] } } } },
      select: { name: true },
    });
    const byTarget = new Map(appliedBindings(config));
    // The applied config's lists are shared: a target a removed secret keeps gets its own copy, once.
    const copied = new Set<string>();
    for (const { name } of removed) {
      try {
        if (Object.hasOwn(config.secrets, name)) continue;
        for (const target of (await this.deps.resolver.policy(name)).targets) {
          if (!copied.has(target)) byTarget.set(target, [...(byTarget.get(target) ?? [])]);
          copied.add(target);
          byTarget.get(target)!.push(name);
        }
      } catch (error) {
        this.deps.log.debug({ component: this.deps.component, secret: name, error: describeError(error) }, 'cannot resolve secret');
      }
    }
    const intervals = new Map(Object.entries(config.providers).map(([name, spec]) => [name, this.deps.interval(spec)]));
    this.bindings = { at: now, byTarget, intervals };
    return this.bindings;
  }
}

/** The applied config's secrets by target, in config order; computed once per config (revision). */
const applied = new WeakMap<RekeyConfig, ReadonlyMap<string, string[]>>();

function appliedBindings(config: RekeyConfig): ReadonlyMap<string, string[]> {
  let byTarget = applied.get(config);
  if (!byTarget) {
    const lists = new Map<string, string[]>();
    for (const name in config.secrets) {
      for (const target of config.secrets[name]!.targets) {
        const list = lists.get(target);
        if (list) list.push(name);
        else lists.set(target, [name]);
      }
    }
    applied.set(config, (byTarget = lists));
  }
  return byTarget;
}
