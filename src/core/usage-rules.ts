/**
 * Per-key baselines and usage rules (issue 18), pure: what one window of one key's usage
 * means. The usage check (usage.ts) feeds it the window's figures and acts on its verdicts.
 *
 * Baseline: an exponentially weighted moving average of each metric per version, updated once
 * per window with a weight set by `halfLife` (default 1 h), starting at the first window in
 * which the version is used, and trusted only after `warmup` of windows after that one (default
 * two half-lives, which leave a quarter of the first window's weight in it). Daily cycles: a one-hour half-life follows the morning ramp
 * and the evening fall (a busy hour is rarely more than 2-3x the hour before it, while a leaked
 * key jumps by 10x or more within a window), so a spike factor of 5-10 tolerates the cycle; a
 * key idle at night has a floor (`minRate`) below which no rule fires, so its first morning
 * requests are no spike. A window that breaks a rule does not teach the baseline, so abuse
 * that persists is not learned as normal, except inside a rotation's overlap (clients moving to
 * the new key are its normal use once the old one is gone); a slow ramp by an attacker is what
 * the absolute ceilings are for.
 */

export const USAGE_METRICS = ['rate', 'sources', 'errorRate'] as const;
export type UsageMetric = (typeof USAGE_METRICS)[number];
export const USAGE_ACTIONS = ['observe', 'alert', 'throttle', 'revoke'] as const;
export type UsageAction = (typeof USAGE_ACTIONS)[number];

/** One rule of a secret's `usage:` (config/usage.ts documents the fields). */
export interface UsageRule {
  name: string;
  metric: UsageMetric;
  /** Absolute ceiling: requests/s, distinct sources per window, or error ratio (0..1). */
  above: number | undefined;
  /** Spike: the window's value over factor x the learned baseline (after warm-up). */
  factor: number | undefined;
  /** Below this request rate (requests/s) the rule never fires. */
  minRate: number;
  action: UsageAction;
  /** Consecutive anomalous windows before it acts: 2 for revoke, 1 otherwise, unless configured. */
  windows: number;
  /** After it acted, how long it stays quiet for the same version. */
  cooldownMs: number;
}

/** A secret's `retire:` (usage-retire.ts): usage-aware retirement of its previous versions. */
export interface RetirePolicy {
  /** A previous version unused this long is retired, grace or not; used within it, it is in use. */
  whenUnusedForMs: number;
  /** While in use, a previous version is held past its grace up to this long after it became previous (at least the grace). */
  maxGraceMs: number;
}

/** A secret's usage policy, as rekey.yaml states it (its own `usage:` or the top-level default). */
export interface UsagePolicy {
  halfLifeMs: number;
  warmupMs: number;
  rules: readonly UsageRule[];
}

/** One window of one version. */
export interface UsageWindow {
  /** Length of the window (between two reads), ms. */
  ms: number;
  requests: number;
  errors: number;
  /** Distinct sources in the window; undefined when the source cannot tell. */
  sources: number | undefined;
}

/** What rekey remembers of a version between windows (in the process that collects). */
export interface UsageBaseline {
  /** Learned averages per metric. */
  mean: Record<UsageMetric, number>;
  /** Whether a window in which the version was used has set the averages. */
  seeded: boolean;
  /** How long it has learned since that window, ms. */
  learnedMs: number;
  /** Consecutive anomalous windows per rule. */
  streak: Map<string, number>;
  /** Until when each rule stays quiet after acting. */
  quietUntil: Map<string, number>;
}

/** A rule that fired in a window (it may still wait for more windows, or be in its cool-down). */
export interface UsageVerdict {
  rule: UsageRule;
  value: number;
  /** The baseline it was compared with (spike rules), else null. */
  baseline: number | null;
  streak: number;
  /** Whether the action is due now: streak reached and not cooling down. */
  due: boolean;
}

export function newBaseline(): UsageBaseline {
  return { mean: { rate: 0, sources: 0, errorRate: 0 }, seeded: false, learnedMs: 0, streak: new Map(), quietUntil: new Map() };
}

export function metricsOf(window: UsageWindow): Record<UsageMetric, number | undefined> {
  const seconds = window.ms / 1000;
  return {
    rate: window.requests / seconds,
    sources: window.sources,
    errorRate: window.requests > 0 ? window.errors / window.requests : 0,
  };
}

/**
 * Judges one window against every rule, updates the streaks and (when nothing fired, or
 * `overlap`) the baseline, and returns the rules that fired. `now` is the window's end (ms).
 * `overlap`: the secret is inside a rotation's overlap, where clients moving between keys shift
 * traffic legitimately (throttle and revoke do not act): the window is learned whatever fired,
 * so the key's baseline after the overlap is where its clients moved to.
 */
export function judge(policy: UsagePolicy, baseline: UsageBaseline, window: UsageWindow, now: number, overlap = false): UsageVerdict[] {
  const metrics = metricsOf(window);
  const warm = baseline.learnedMs >= policy.warmupMs;
  const verdicts: UsageVerdict[] = [];
  for (const rule of policy.rules) {
    const value = metrics[rule.metric];
    const reference = rule.factor !== undefined ? (warm ? baseline.mean[rule.metric] : undefined) : null;
    const limit = rule.above ?? (reference !== undefined && reference !== null ? rule.factor! * reference : undefined);
    const fired = value !== undefined && limit !== undefined && metrics.rate! >= rule.minRate && value > limit;
    if (!fired) {
      baseline.streak.delete(rule.name);
      continue;
    }
    const streak = (baseline.streak.get(rule.name) ?? 0) + 1;
    baseline.streak.set(rule.name, streak);
    const due = streak >= rule.windows && now >= (baseline.quietUntil.get(rule.name) ?? 0);
    if (due) baseline.quietUntil.set(rule.name, now + rule.cooldownMs);
    verdicts.push({ rule, value, baseline: reference ?? null, streak, due });
  }
  if (!verdicts.length || overlap) learn(policy, baseline, metrics, window);
  return verdicts;
}

/**
 * Folds one quiet window into the averages. The first window in which the version is used sets
 * them: idle windows before it (a key deployed before its clients move to it) would teach a
 * baseline of zero, and that window does not count towards the warm-up (a long first window,
 * after a worker's start or a slow read, would pass it alone).
 */
function learn(policy: UsagePolicy, baseline: UsageBaseline, metrics: Record<UsageMetric, number | undefined>, window: UsageWindow): void {
  if (!baseline.seeded) {
    if (window.requests === 0) return;
    for (const metric of USAGE_METRICS) baseline.mean[metric] = metrics[metric] ?? 0;
    baseline.seeded = true;
    return;
  }
  const weight = 1 - Math.pow(0.5, window.ms / policy.halfLifeMs);
  for (const metric of USAGE_METRICS) {
    const value = metrics[metric];
    if (value !== undefined) baseline.mean[metric] += weight * (value - baseline.mean[metric]);
  }
  baseline.learnedMs += window.ms;
}
