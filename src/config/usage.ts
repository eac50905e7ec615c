/**
 * Usage rules in rekey.yaml (docs/usage.md): `usage:` on a secret, or at the top level as the
 * default of every secret without its own; and `usage: { interval }` on a target's providers:
 * entry, which turns its usage collection on.
 */
import { z } from 'zod';
import type { AnyProviderModule } from '../core/provider.js';
import { USAGE_ACTIONS, USAGE_METRICS, type UsagePolicy } from '../core/usage-rules.js';
import { durationSchema, optionalDurationSchema } from './duration.js';

/** The default warm-up, in half-lives: the first window's weight left in the baseline is 0.5^2, a quarter. */
export const WARMUP_HALF_LIVES = 2;

const rule = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a rule name is 1-63 characters of a-z 0-9 -').describe('Names the rule in audit events, alerts and leak reports'),
    metric: z.enum(USAGE_METRICS).describe('rate: requests/s; sources: distinct source networks per window; errorRate: errors/requests in the window (0..1)'),
    above: z.number().positive().optional().describe('Absolute ceiling of the metric'),
    factor: z.number().gt(1).optional().describe("Spike: the metric above factor x the key's learned baseline (only after the warm-up)"),
    minRate: z.number().min(0).default(0).describe('Below this request rate (requests/s) the rule never fires'),
    action: z.enum(USAGE_ACTIONS).default('observe').describe('observe: audit what would have happened; alert: a usage.anomaly notice; throttle: the gateway rate-limits the key; revoke: the leak path'),
    windows: z.number().int().min(1).max(100).optional().describe('Consecutive anomalous windows before acting (default: 2 for revoke, 1 otherwise)'),
    cooldown: durationSchema('10m').describe('After acting, the rule stays quiet this long for the same key'),
  })
  .strict()
  .refine((r) => (r.above === undefined) !== (r.factor === undefined), { message: 'give exactly one of above (a ceiling) and factor (a spike over the baseline)' });

export const usagePolicySchema = z
  .object({
    baseline: z
      .object({
        halfLife: durationSchema('1h').describe('Half-life of the learned average (EWMA) of each metric'),
        warmup: optionalDurationSchema().describe('How long a key is learned, from its first use, before spike rules (factor) apply; default: two half-lives (the first window then weighs a quarter)'),
      })
      .strict()
      .prefault({}),
    rules: z
      .array(rule)
      .min(1)
      .refine((rules) => new Set(rules.map((r) => r.name)).size === rules.length, 'two rules have the same name'),
  })
  .strict()
  .transform(
    (u): UsagePolicy => ({
      halfLifeMs: u.baseline.halfLife,
      warmupMs: u.baseline.warmup ?? WARMUP_HALF_LIVES * u.baseline.halfLife,
      rules: u.rules.map((r) => ({
        name: r.name,
        metric: r.metric,
        above: r.above,
        factor: r.factor,
        minRate: r.minRate,
        action: r.action,
        windows: r.windows ?? (r.action === 'revoke' ? 2 : 1),
        cooldownMs: r.cooldown,
      })),
    }),
  );

/** rekey's own usage settings on a target's providers: entry. */
export const usageCollectionSchema = z
  .object({
    interval: durationSchema('10s').describe('How often the target\'s usage counters are read (one window); only targets that are usage sources'),
  })
  .strict();

/** `retire:` on a secret, or at the top level as the default (docs/usage.md, usage-aware retirement). */
export const retireSchema = z
  .object({
    whenUnusedFor: durationSchema('10m').describe('A previous version nobody has used for this long is retired, before its grace ends or after; used within it, it is in use'),
    maxGrace: optionalDurationSchema()
      .describe('While in use, a previous version is held past its grace up to this long after it became previous (at least grace:); default: the grace (no holding)'),
  })
  .strict();

/**
 * `usage: { interval }` on a providers: entry whose targets cannot report usage (nginx, a
 * Kubernetes Secret; HAProxy without stickTables:). Refused rather than collected as nothing.
 */
export function usageSourceIssues(module: AnyProviderModule, config: unknown, at: Array<string | number>): Array<{ path: Array<string | number>; message: string }> {
  const source = typeof module.usageSource === 'function' ? module.usageSource(config) : module.usageSource;
  if (source === true) return [];
  return [{ path: at, message: source ? `${module.type} reports usage only with ${source}` : `${module.type} targets are not usage sources (docs/usage.md lists them): remove usage:` }];
}

/**
 * A `throttle` rule where it cannot act: `targets` are the secret's usage-collecting targets whose
 * provider cannot throttle (Kong, AWS API Gateway). Refused rather than run as a silent alert.
 */
export function throttleIssues(usage: UsagePolicy | undefined, at: Array<string | number>, secret: string, targets: readonly string[]): Array<{ path: Array<string | number>; message: string }> {
  if (!usage || !targets.length) return [];
  return usage.rules.flatMap((rule, i) =>
    rule.action === 'throttle'
      ? [{ path: [...at, 'rules', i, 'action'], message: `rule "${rule.name}" throttles, but ${secret}'s target${targets.length > 1 ? 's' : ''} ${targets.join(', ')} cannot throttle a key: use alert or revoke${at[0] === 'usage' ? `, or give ${secret} its own usage:` : ''}` }]
      : [],
  );
}
