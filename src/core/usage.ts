/**
 * The usage check (issue 18): reads one target's usage counters (Target.readUsage), turns the
 * difference since the previous read into one window per live version, records each version's
 * last use, judges the window against the secret's usage rules (usage-rules.ts) and acts:
 *
 * - every due rule: audit `usage.anomaly` (rule, metric, value, limit, action, what was done);
 * - `observe`: nothing else (the event says what would have fired);
 * - `alert`: a `usage.anomaly` notice (so do `throttle` and `revoke`);
 * - `throttle`: Target.throttle at this target; released once the cool-down has passed and the
 *   rule no longer fires;
 * - `revoke`: the leak path with source `usage` and the rule in the delivery id.
 *
 * Throttle and revoke never act while the secret is inside a rotation's overlap (a pending,
 * previous or compromised version): clients moving keys is legitimate traffic either would cut,
 * and a source counting per consumer, as Kong does, shows the old key's traffic on the new.
 * Their notice still goes out (it cuts nothing).
 *
 * Baselines and the previous read live in this process (one UsageMonitor per worker): a
 * restart learns again (spike rules wait for the warm-up; ceilings apply at once). Replicas each
 * judge on their own; actions are idempotent (throttle sets a value, leak reports dedupe on the
 * delivery id, notices on their id). Which keys are throttled is read from the audit log at each
 * check (UsageRepository.throttled), not kept in the process that throttled them: a throttle
 * outlives that process's restart and is lifted by whichever worker checks the target next.
 */
import { audit, type EngineDeps, now, providerCall, versionRef } from './context.js';
import { describeError } from './errors.js';
import type { AuditContext, SecretPolicy, VersionRecord } from './model.js';
import { notice, type Notice } from './notify.js';
import { shortFingerprint } from './fingerprint.js';
import type { JsonObject, Target, UsageReading } from './ports.js';
import { reportLeak } from './leak.js';
import { type Observed, type RetireCandidate, reviewPrevious } from './usage-retire.js';
import { judge, newBaseline, type UsageBaseline, type UsagePolicy, type UsageVerdict, type UsageWindow } from './usage-rules.js';

/** PostgreSQL behind an interface, for the usage check. */
export interface UsageRepository {
  /** Moves each version's last use forward to `at` (never back). Not audited: bookkeeping. */
  recordUse(versionIds: readonly string[], at: Date): Promise<void>;
  /**
   * The versions of `versionIds` throttled at `target` now, by whichever process, with when each
   * throttle may be lifted: those whose newest `usage.anomaly` that throttled at the target is
   * newer than their newest `usage.released` there.
   */
  throttled(target: string, versionIds: readonly string[]): Promise<Map<string, number>>;
  /** Writes the audit event `usage.anomaly` (or `usage.released`) in the secret's chain, and `notices` to the notification outbox in the same transaction. */
  recordUsageEvent(event: { action: 'usage.anomaly' | 'usage.released'; secret: string; versionId: string; data: JsonObject }, audit: AuditContext, notices?: readonly Notice[]): Promise<void>;
}

interface Watched {
  version: VersionRecord;
  usage: UsagePolicy | undefined;
  consumer: string;
  target: Target;
}

export class UsageMonitor {
  readonly #previous = new Map<string, UsageReading>();
  readonly #baselines = new Map<string, UsageBaseline>();
  /** Per baseline: the throttle and revoke rules a rotation's overlap held back (they did not act, so their cool-down lasts only as long as it). */
  readonly #heldBack = new Map<string, Set<string>>();
  /** Per target: what this process has read of it (usage-aware retirement judges only over that). */
  readonly #observed = new Map<string, Observed>();

  constructor(
    private readonly deps: EngineDeps,
    private readonly repo: UsageRepository,
  ) {}

  /** One usage check of `target` for `secrets` (the others are left alone). Never throws: a failure is logged. */
  async check(target: string, secrets: readonly string[], windowMs: number): Promise<void> {
    const log = this.deps.log.child({ component: 'usage', target });
    try {
      await this.#check(target, secrets, windowMs);
    } catch (error) {
      log.warn({ error: describeError(error) }, 'usage check failed; reading again next interval');
    }
  }

  async #check(target: string, secrets: readonly string[], windowMs: number): Promise<void> {
    const log = this.deps.log.child({ component: 'usage', target });
    const watched = new Map<string, Watched>();
    let source: { target: Target; timeoutMs: number } | undefined;
    const policies = new Map<string, { usage: UsagePolicy | undefined; consumer: string; bound: Target; policy: SecretPolicy }>();
    for (const secret of secrets) {
      const resolved = await this.deps.providers.resolve(secret);
      const bound = resolved.targets.get(target);
      if (!bound?.readUsage) continue;
      source ??= { target: bound, timeoutMs: resolved.policy.timeoutMs };
      policies.set(secret, { usage: resolved.policy.usage, consumer: resolved.policy.consumer, bound, policy: resolved.policy });
    }
    if (!source) return;
    const reader = source.target;
    // Any binding reads the whole table: one read per target and interval.
    const reading = await providerCall(this.deps, log, { provider: target, op: 'target.readUsage' }, source.timeoutMs, (c) => reader.readUsage!(windowMs, c));
    const previous = this.#previous.get(target);
    // A source's first read (a new config revision's instance) may have missed the uses since the
    // previous read: what this process has observed of the target starts again with it.
    const since = (!reading.first && this.#observed.get(target)?.since) || reading.at.getTime();
    if (!previous || reading.first) {
      this.#previous.set(target, reading);
      return void this.#observed.set(target, { since, last: since });
    }
    // Taken before the versions are read: every use it covers is in them (or in this reading).
    const observed = new Map([...this.#observed, [target, { since, last: reading.at.getTime() }]]);
    const versions = await this.deps.repo.versionsOf([...policies.keys()], ['pending', 'current', 'previous']);
    // Secrets inside a rotation's overlap: their keys' windows are learned whatever fired (usage-rules.ts).
    const overlapping = new Set(versions.filter((v) => v.state !== 'current').map((v) => v.secret));
    for (const version of versions) {
      const p = policies.get(version.secret)!;
      if (version.fingerprint) watched.set(version.fingerprint, { version, usage: p.usage, consumer: p.consumer, target: p.bound });
    }
    // This target's throttles as the audit log has them (set by this process or another, before a
    // restart or since), whatever the rules say now: a key throttled under a rule since removed must still be lifted.
    const throttled = [...watched.values()].some((w) => w.target.throttle !== undefined)
      ? await this.repo.throttled(target, [...watched.values()].map((w) => w.version.id))
      : new Map<string, number>();
    const before = new Map(previous.counters.map((c) => [c.fingerprint, c]));
    // From the previous read's start: never shorter than any counter's real window (a rate is never overstated).
    const ms = Math.max(1, reading.at.getTime() - (previous.startedAt ?? previous.at).getTime());
    const used: string[] = [];
    const windows = new Map<string, UsageWindow>();
    for (const counter of reading.counters) {
      if (!watched.has(counter.fingerprint)) continue;
      const last = before.get(counter.fingerprint);
      // A counter that went down was reset (expired entry, restarted gateway): it counts from zero.
      const reset = !last || counter.requests < last.requests;
      const window = { ms, requests: counter.requests - (reset ? 0 : last.requests), errors: Math.max(0, counter.errors - (reset ? 0 : last.errors)), sources: counter.sources };
      windows.set(counter.fingerprint, window);
      if (window.requests > 0) used.push(watched.get(counter.fingerprint)!.version.id);
    }
    if (used.length) await this.repo.recordUse(used, reading.at);
    // Only now: a check that fails before its uses are recorded keeps the read before it, so the
    // next window covers them (the counters are cumulative) instead of marking them observed unused.
    this.#previous.set(target, reading);
    this.#observed.set(target, { since, last: reading.at.getTime() });
    for (const [fingerprint, w] of watched) {
      if (!w.usage) {
        await this.#maybeRelease(target, w, [], reading.at.getTime(), throttled); // no rule any more: nothing keeps a throttle on
        continue;
      }
      const window = windows.get(fingerprint) ?? { ms, requests: 0, errors: 0, sources: 0 };
      const key = `${target}\n${w.version.id}`;
      const baseline = this.#baselines.get(key) ?? newBaseline();
      this.#baselines.set(key, baseline);
      const held = this.#heldBack.get(key);
      if (held && !(await this.#inOverlap(w.version.secret))) {
        // The overlap is over: what it held back never acted, so no cool-down keeps it quiet now.
        for (const rule of held) baseline.quietUntil.delete(rule);
        this.#heldBack.delete(key);
      }
      const verdicts = judge(w.usage, baseline, window, reading.at.getTime(), overlapping.has(w.version.secret));
      for (const verdict of verdicts.filter((v) => v.due)) {
        if (await this.#act(target, w, verdict, { end: reading.at, ms: window.ms }, throttled, log)) {
          this.#heldBack.set(key, (this.#heldBack.get(key) ?? new Set()).add(verdict.rule.name));
        }
      }
      await this.#maybeRelease(target, w, verdicts, reading.at.getTime(), throttled);
    }
    const candidates: RetireCandidate[] = versions
      .filter((v) => v.state === 'previous')
      .map((v) => ({ version: v, policy: policies.get(v.secret)!.policy, current: versions.find((c) => c.secretId === v.secretId && c.state === 'current'), usedNow: used.includes(v.id) }));
    await reviewPrevious(this.deps, candidates, observed, windowMs, log);
    this.#forget(target, new Set([...watched.values()].map((w) => w.version.id)));
  }

  /** Whether `secret` is inside a rotation's overlap (a pending, previous or compromised version), where throttle and revoke do not act. */
  async #inOverlap(secret: string): Promise<boolean> {
    return (await this.deps.repo.versionsOf([secret], ['pending', 'previous', 'compromised'])).length > 0;
  }

  /**
   * Acts on a verdict; a throttle set is added to `throttled` (by version id, when it may be lifted).
   * Returns true when a rotation's overlap held a throttle or revoke back.
   */
  async #act(target: string, w: Watched, verdict: UsageVerdict, window: { end: Date; ms: number }, throttled: Map<string, number>, log: EngineDeps['log']): Promise<boolean> {
    const { rule } = verdict;
    const { version } = w;
    let done = rule.action === 'observe' ? 'observed' : 'alerted';
    let releasableAt: number | undefined;
    const cuts = rule.action === 'throttle' || rule.action === 'revoke';
    const heldBack = cuts && (await this.#inOverlap(version.secret));
    if (heldBack) {
      done = `${rule.action === 'throttle' ? 'not-throttled' : 'not-revoked'}: inside a rotation overlap`;
    } else if (rule.action === 'throttle') {
      if (w.target.throttle) {
        await providerCall(this.deps, log, { provider: target, op: 'target.throttle' }, 30_000, (c) => w.target.throttle!(versionRef(version, w.consumer), true, c));
        releasableAt = now(this.deps).getTime() + rule.cooldownMs;
        throttled.set(version.id, releasableAt);
        done = 'throttled';
      } else done = 'not-throttled: the target cannot throttle';
    } else if (rule.action === 'revoke') {
      await reportLeak(this.deps, { source: 'usage', deliveryId: `${rule.name}:${version.id}`, fingerprint: version.fingerprint!, receivedAt: now(this.deps) });
      done = 'revoked';
    }
    const data = {
      target,
      rule: rule.name,
      metric: rule.metric,
      value: round(verdict.value),
      limit: rule.above ?? round(rule.factor! * verdict.baseline!),
      baseline: verdict.baseline === null ? null : round(verdict.baseline),
      windows: verdict.streak,
      windowEnd: window.end.toISOString(),
      windowMs: window.ms,
      action: rule.action,
      done,
      version: version.number,
      fingerprint: shortFingerprint(version.fingerprint),
      // Read back by every worker's check (UsageRepository.throttled): when the throttle may be lifted.
      ...(releasableAt === undefined ? {} : { releasableAt: new Date(releasableAt).toISOString() }),
    };
    const period = Math.floor(now(this.deps).getTime() / Math.max(rule.cooldownMs, 1000));
    const notices = rule.action === 'observe' ? [] : [notice(this.deps, 'usage.anomaly', `${rule.name}.${version.id}.${period}`, version.secret, data)];
    await this.repo.recordUsageEvent({ action: 'usage.anomaly', secret: version.secret, versionId: version.id, data }, audit(this.deps), notices);
    log.warn({ secret: version.secret, versionId: version.id, rule: rule.name, action: rule.action, done }, 'usage anomaly');
    return heldBack;
  }

  /** Lifts a throttle of `throttled` (by version id, when it may be lifted) once its cool-down has passed and no throttle rule fires any more. */
  async #maybeRelease(target: string, w: Watched, verdicts: UsageVerdict[], at: number, throttled: Map<string, number>): Promise<void> {
    const until = throttled.get(w.version.id);
    if (until === undefined || at < until || verdicts.some((v) => v.rule.action === 'throttle') || !w.target.throttle) return;
    const log = this.deps.log.child({ component: 'usage', target });
    await providerCall(this.deps, log, { provider: target, op: 'target.throttle' }, 30_000, (c) => w.target.throttle!(versionRef(w.version, w.consumer), false, c));
    throttled.delete(w.version.id);
    await this.repo.recordUsageEvent({ action: 'usage.released', secret: w.version.secret, versionId: w.version.id, data: { target, version: w.version.number } }, audit(this.deps));
  }

  /** Drops the baselines this target kept for versions no longer live. */
  #forget(target: string, live: Set<string>): void {
    for (const key of this.#baselines.keys()) {
      const [of, id] = key.split('\n');
      if (of === target && !live.has(id!)) {
        this.#baselines.delete(key);
        this.#heldBack.delete(key);
      }
    }
  }
}

const round = (n: number) => Math.round(n * 1000) / 1000;
