/**
 * rekey.yaml's schema. The outer shape is fixed here; each provider entry and each
 * secret's store/issuer/target parameters are checked against the provider module's
 * own schemas, so errors point at the exact field (`secrets.payments.store.name`).
 */
import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { durationSchema } from './duration.js';
import { humanDuration } from '../core/duration.js';
import type { SecretPolicy } from '../core/model.js';
import type { RetirePolicy } from '../core/usage-rules.js';
import type { AnyProviderModule, Role } from '../core/provider.js';
import { type DeliveryConfig, deliverySchema, validateDelivery } from './delivery.js';
import { envIssues, envSchema } from './environment.js';
import { eventsConfig, type EventsConfig } from './events.js';
import { type LeaksConfig, leaksSchema } from './leaks.js';
import { type NotificationsConfig, notificationsSchema } from './notifications.js';
import { type DashboardConfig, dashboardSchema } from './dashboard.js';
import { retireSchema, throttleIssues, usageCollectionSchema, usagePolicySchema, usageSourceIssues } from './usage.js';

const NAME = /^[a-z0-9][a-z0-9._/-]{0,127}$/;
const nameMessage = 'names are 1-128 characters of a-z 0-9 . _ / -, starting with a letter or digit, with no empty, . or .. part between slashes';
/**
 * A provider's or secret's name. Its `/`-separated parts are path segments where it is in a URL
 * (GET /v1/secrets/{name} as the client and the agent send it), so none may be empty, `.` or
 * `..`: a URL resolves those, and `a/../token` would reach another route with the caller's credential.
 */
const validName = (name: string) => NAME.test(name) && name.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
const CLIENT = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Names every JavaScript object already answers to (constructor, toString, __proto__, ...). */
const RESERVED = new Set([...Object.getOwnPropertyNames(Object.prototype), '__proto__', 'prototype']);

/** `record[key]` when the record itself has it (a name from the config), never what every object inherits. */
export function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

const schedule = z
  .object({
    cron: z.string().describe('Cron pattern (5 fields, or 6 with seconds first)'),
    timezone: z.string().default('UTC').describe('IANA time zone the pattern is read in'),
  })
  .strict()
  .superRefine((value, ctx) => {
    for (const issue of scheduleIssues(value.cron, value.timezone)) ctx.addIssue({ code: 'custom', ...issue });
  });

/** Checked once per distinct pattern and zone: a fleet of 100,000 secrets shares a handful (cron-parser and Intl cost a millisecond each). */
const checkedSchedules = new Map<string, Array<{ path: string[]; message: string }>>();

function scheduleIssues(cron: string, timezone: string): Array<{ path: string[]; message: string }> {
  const key = `${cron}\u0000${timezone}`;
  let issues = checkedSchedules.get(key);
  if (!issues) {
    if (checkedSchedules.size >= 10_000) checkedSchedules.clear();
    checkedSchedules.set(key, (issues = checkSchedule(cron, timezone)));
  }
  return issues;
}

function checkSchedule(cron: string, timezone: string): Array<{ path: string[]; message: string }> {
  try {
    new Intl.DateTimeFormat('en', { timeZone: timezone });
  } catch {
    return [{ path: ['timezone'], message: `unknown time zone "${timezone}"` }];
  }
  // cron-parser pads a short pattern ("0 3 * *" becomes "* 0 3 * *", every minute of the 3rd): refuse it instead.
  const fields = cron.trim().split(/\s+/).filter(Boolean).length;
  if (fields !== 5 && fields !== 6) {
    return [{ path: ['cron'], message: `cron pattern "${cron}" has ${fields} field(s): give 5 (minute hour day-of-month month day-of-week) or 6 with seconds first` }];
  }
  try {
    CronExpressionParser.parse(cron, { tz: timezone });
  } catch (error) {
    return [{ path: ['cron'], message: `invalid cron pattern "${cron}": ${(error as Error).message}` }];
  }
  return [];
}

/** A reference to a provider instance plus that role's parameters, checked later by the module. */
const binding = z.object({ provider: z.string().describe('Name of an entry under providers:') }).loose();
const inlineIssuer = z.object({ type: z.string().describe('Provider type, for issuers that need no providers: entry') }).loose();

const secret = z
  .object({
    description: z.string().optional(),
    clients: z
      .array(z.string().regex(CLIENT, 'client names are 1-63 characters of a-z 0-9 _ -, starting with a letter or digit'))
      .min(1)
      .refine((list) => new Set(list).size === list.length, 'a client is listed twice')
      .optional()
      .describe('Per-client keys: each client gets its own key, rotated and revocable alone, managed as <secret>/<client>'),
    store: binding.describe('Where the values live'),
    issuer: z.union([inlineIssuer, binding]).describe('What mints and revokes values'),
    targets: z.array(z.union([z.string(), binding])).default([]).describe('What must accept or use the value'),
    schedule: schedule.optional().describe('When to rotate; omit for manual and event-driven rotation only'),
    grace: durationSchema('24h').describe('How long the previous version stays accepted after a rotation'),
    onLeak: z.enum(['rotate-then-revoke', 'block-first']).default('rotate-then-revoke'),
    leakDeadline: durationSchema('30s').describe('rotate-then-revoke: block the leaked key anyway after this long'),
    timeout: durationSchema('30s').describe('Timeout of each provider call'),
    usage: usagePolicySchema.optional().describe('Usage rules for this secret\'s keys (docs/usage.md); default: the top-level usage:'),
    retire: retireSchema.optional().describe('Usage-aware retirement of previous versions (docs/usage.md); every target must collect usage; default: the top-level retire:'),
    retry: z
      .object({
        attempts: z.number().int().min(1).max(50).default(5),
        backoff: durationSchema('2s').describe('First retry delay; doubles each attempt'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/** rekey's own settings on a target's `providers:` entry (not the provider's: stripped before its schema sees the entry). */
export const driftSchema = z
  .object({
    interval: durationSchema('30s').describe('How often the drift check compares this target with the desired state and repairs it (jittered, never later)'),
  })
  .strict()
  .prefault({});

export const documentSchema = z
  .object({
    providers: z.record(z.string(), z.object({ type: z.string() }).loose()).default({}),
    secrets: z.record(z.string(), secret).default({}),
    events: eventsConfig.optional().describe('Receivers that turn cloud events into rotations (docs/cloud-stores.md)'),
    leaks: leaksSchema.optional().describe('Leak receivers of `rekey server` (docs/leaks.md)'),
    delivery: deliverySchema.optional().describe('Just-in-time delivery: authenticators and token grants of `rekey server` (docs/delivery.md)'),
    usage: usagePolicySchema.optional().describe('Usage rules of every secret without its own usage: (docs/usage.md)'),
    retire: retireSchema.optional().describe('Usage-aware retirement for every secret without its own retire: whose targets all collect usage (docs/usage.md)'),
    notifications: notificationsSchema.optional().describe('Alerts for a person: signed webhook and Slack destinations, and the events each receives (docs/notifications.md)'),
    dashboard: dashboardSchema.optional().describe('The dashboard of `rekey server`: sign-in with an OpenID Connect provider (docs/dashboard.md)'),
    env: envSchema.prefault({}).describe('Which environment variables ${env:NAME} references may read (never rekey\'s own)'),
  })
  .strict();

export type SecretDocument = z.input<typeof secret>;

/** One role binding after validation: which instance, with which parameters. */
export interface RoleRef {
  /** Provider instance name (its key under providers:), or `@<type>` for an inline issuer. */
  instance: string;
  params: unknown;
}

export interface SecretSpec extends SecretPolicy {
  description: string | undefined;
  /** Per-client keys: the family (`clients:` secret) this one belongs to, and its client. */
  family: string | undefined;
  client: string | undefined;
  store: RoleRef;
  issuer: RoleRef;
  /** Parameters per target instance, in config order (policy.targets holds the names). */
  targetParams: ReadonlyMap<string, unknown>;
  /** Targets that receive the JWKS of the live versions' public keys instead of the value. */
  publishJwks: ReadonlySet<string>;
  schedule: { cron: string; timezone: string } | undefined;
}

export interface ProviderSpec {
  type: string;
  config: unknown;
  /** For a target: how often the drift check runs, in ms. @defaultValue 30000 */
  driftIntervalMs: number;
  /** For a target that is a usage source: how often its usage is read (`usage.interval`), in ms; undefined: not collected. */
  usageIntervalMs?: number | undefined;
}

export interface RekeyConfig {
  providers: Readonly<Record<string, ProviderSpec>>;
  secrets: Readonly<Record<string, SecretSpec>>;
  events?: EventsConfig | undefined;
  leaks?: LeaksConfig | undefined;
  delivery?: DeliveryConfig | undefined;
  notifications?: NotificationsConfig | undefined;
  dashboard?: DashboardConfig | undefined;
}

interface Issue {
  path: Array<string | number>;
  message: string;
}

/**
 * Validates a parsed document against the provider modules it names (`known`: every type the
 * registry lists, for the message about an unknown one); returns the config or every issue found.
 */
export function validate(document: unknown, modules: readonly AnyProviderModule[], known: readonly string[]): { config: RekeyConfig } | { issues: Issue[] } {
  const outer = documentSchema.safeParse(document ?? {});
  if (!outer.success) return { issues: outer.error.issues.map((i) => ({ path: i.path as Array<string | number>, message: i.message })) };
  const issues: Issue[] = [...reservedNames(document), ...envIssues(document, outer.data.env.allow)];
  const byType = new Map(modules.map((m) => [m.type, m]));
  const knownTypes = [...known].sort().join(', ');
  const providers: Record<string, ProviderSpec> = {};

  const check = <T>(schema: z.ZodType<T>, value: unknown, path: Array<string | number>): T | undefined => {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    issues.push(...result.error.issues.map((i) => ({ path: [...path, ...(i.path as Array<string | number>)], message: i.message })));
    return undefined;
  };

  for (const [name, entry] of Object.entries(outer.data.providers)) {
    if (!validName(name)) issues.push({ path: ['providers', name], message: nameMessage });
    const module = byType.get(entry.type);
    if (!module) {
      issues.push({ path: ['providers', name, 'type'], message: `unknown provider type "${entry.type}" (known: ${knownTypes})` });
      continue;
    }
    const { type: _type, drift, usage, ...rest } = entry;
    const config: unknown = check(module.config, rest, ['providers', name]);
    const driftSettings = check(driftSchema, drift, ['providers', name, 'drift']);
    const usageSettings = usage === undefined ? undefined : check(usageCollectionSchema, usage, ['providers', name, 'usage']);
    if (usageSettings && config !== undefined) issues.push(...usageSourceIssues(module, config, ['providers', name, 'usage']));
    if (config !== undefined && driftSettings) providers[name] = { type: module.type, config, driftIntervalMs: driftSettings.interval, usageIntervalMs: usageSettings?.interval };
  }

  const role = (raw: Record<string, unknown>, wanted: Role, path: Array<string | number>): RoleRef | undefined => {
    const { provider, type, ...params } = raw as { provider?: string; type?: string };
    let module: AnyProviderModule | undefined;
    let instance: string;
    if (typeof provider === 'string') {
      const entry = own(outer.data.providers, provider);
      if (!entry) {
        issues.push({ path: [...path, 'provider'], message: `no provider named "${provider}" under providers:` });
        return undefined;
      }
      module = byType.get(entry.type);
      instance = provider;
      if (!module) return undefined; // reported above
    } else {
      module = byType.get(type ?? '');
      instance = `@${type}`;
      if (!module) {
        issues.push({ path: [...path, 'type'], message: `unknown provider type "${type}" (known: ${knownTypes})` });
        return undefined;
      }
      if (module.config.safeParse({}).success) providers[instance] ??= { type: module.type, config: module.config.parse({}), driftIntervalMs: driftSchema.parse(undefined).interval };
      else issues.push({ path: [...path, 'type'], message: `${module.type} needs a providers: entry; reference it with provider:` });
    }
    const schema = module.bindings[wanted];
    if (!schema) {
      const roles = (Object.keys(module.bindings) as Role[]).join(', ');
      issues.push({ path, message: `provider "${instance}" (${module.type}) cannot be used as ${wanted === 'authenticator' ? 'an' : 'a'} ${wanted}; it is a ${roles}` });
      return undefined;
    }
    const parsed: unknown = check(schema, params, path);
    return parsed === undefined ? undefined : shared({ instance, params: parsed });
  };

  // A fleet repeats a handful of bindings, schedules and retry settings: each distinct one is kept once (docs/scale.md).
  const interned = new Map<string, unknown>();
  const shared = <T>(value: T): T => {
    const key = JSON.stringify(value, (_, v: unknown) => (v instanceof Map ? { map: [...v] } : v instanceof Set ? { set: [...v] } : v));
    const found = interned.get(key) as T | undefined;
    if (found !== undefined) return found;
    interned.set(key, value);
    return value;
  };
  const secrets: Record<string, SecretSpec> = {};
  for (const [name, raw] of Object.entries(outer.data.secrets)) {
    const path = ['secrets', name];
    if (!validName(name)) issues.push({ path, message: nameMessage });
    const store = role(raw.store, 'store', [...path, 'store']);
    const issuer = role(raw.issuer, 'issuer', [...path, 'issuer']);
    const targetParams = new Map<string, unknown>();
    const publishJwks = new Set<string>();
    raw.targets.forEach((t, i) => {
      // `publish: jwks` is rekey's, not the provider's: the target gets public keys, never the value.
      const { publish, ...entry } = (typeof t === 'string' ? { provider: t } : t) as Record<string, unknown>;
      if (publish !== undefined && publish !== 'jwks') issues.push({ path: [...path, 'targets', i, 'publish'], message: 'the only publish mode is jwks' });
      const ref = role(entry, 'target', [...path, 'targets', i]);
      if (!ref) return;
      if (targetParams.has(ref.instance)) issues.push({ path: [...path, 'targets', i], message: `target "${ref.instance}" is listed twice` });
      targetParams.set(ref.instance, ref.params);
      if (publish === 'jwks') publishJwks.add(ref.instance);
    });
    if (!store || !issuer) continue;
    const bound = shared({ targets: [...targetParams.keys()], targetParams, publishJwks });
    const retire = retirePolicy(raw, outer.data.retire, [...targetParams.keys()], providers, (type) => byType.get(type)?.usagePerKey !== false, path, issues);
    const unthrottled = [...targetParams.keys()].filter((t) => providers[t]?.usageIntervalMs !== undefined && !byType.get(providers[t].type)?.throttles);
    issues.push(...throttleIssues(raw.usage ?? outer.data.usage, raw.usage ? [...path, 'usage'] : ['usage'], name, unthrottled.map((t) => `${t} (${providers[t]!.type})`)));
    for (const client of raw.clients ?? [undefined]) {
      const managed = client ? `${name}/${client}` : name;
      if (own(secrets, managed) || (client && own(outer.data.secrets, managed))) {
        issues.push({ path, message: `${managed} is declared twice (a client of ${name} and a secret of its own)` });
        continue;
      }
      secrets[managed] = {
      name: managed,
      consumer: client ?? name,
      family: client ? name : undefined,
      client,
      description: raw.description,
      store,
      issuer,
      targets: bound.targets,
      targetParams: bound.targetParams,
      publishJwks: bound.publishJwks,
      schedule: raw.schedule && shared(raw.schedule),
      graceMs: raw.grace,
      onLeak: raw.onLeak,
      leakDeadlineMs: raw.leakDeadline,
      timeoutMs: raw.timeout,
      retry: shared({ attempts: raw.retry.attempts, backoffMs: raw.retry.backoff }),
      usage: raw.usage ?? outer.data.usage,
      retire,
      };
    }
  }
  const delivery = outer.data.delivery && validateDelivery(outer.data.delivery, (raw, path) => role(raw, 'authenticator', path), secrets);
  if (delivery) issues.push(...delivery.issues);
  return issues.length ? { issues } : { config: { providers, secrets, events: outer.data.events, leaks: outer.data.leaks, delivery: delivery?.delivery, notifications: outer.data.notifications, dashboard: outer.data.dashboard } };
}

/**
 * Targets with `publish: jwks` of a secret whose issuer publishes no public keys (its module's
 * `signsJwt`): the secret could not be resolved at all (src/jwks/target.ts refuses it), so it would
 * neither rotate nor have a leak taken down. Checked when a file is applied (load.ts parseConfig),
 * not when a stored revision is read again.
 */
export function publishJwksIssues(config: RekeyConfig, signsJwt: (type: string) => boolean): Issue[] {
  const issues = new Map<string, Issue>();
  for (const spec of Object.values(config.secrets)) {
    const type = own(config.providers, spec.issuer.instance)?.type;
    if (type === undefined || signsJwt(type)) continue;
    const declared = spec.family ?? spec.name;
    spec.targets.forEach((target, i) => {
      if (!spec.publishJwks.has(target)) return;
      const path = ['secrets', declared, 'targets', i, 'publish'];
      issues.set(path.join('.'), { path, message: `the issuer of ${declared} (${type}) publishes no public keys: publish: jwks needs one that does (jwt-signing-key)` });
    });
  }
  return [...issues.values()];
}

/**
 * Managed secrets whose stores, issuers or targets on one provider instance would change the same
 * thing upstream (their module's `storeOwns` / `issuerOwns` / `targetOwns`): each rotation would overwrite what the
 * other's clients use. Checked when a file is applied (load.ts parseConfig), not when a stored
 * revision is read again.
 */
export function sharedResourceIssues(config: RekeyConfig, owns: (type: string, role: 'store' | 'issuer' | 'target', params: unknown, spec: SecretSpec) => string[]): Issue[] {
  const owners = new Map<string, string>();
  const issues = new Map<string, Issue>();
  for (const spec of Object.values(config.secrets)) {
    for (const { role, instance, params, path } of bindingsOf(spec)) {
      const type = own(config.providers, instance)?.type;
      for (const name of type === undefined ? [] : owns(type, role, params, spec)) {
        const key = `${role}\0${instance}\0${name}`;
        const other = owners.get(key);
        if (other === undefined) {
          owners.set(key, spec.name);
          continue;
        }
        if (!issues.has(path.join('.'))) issues.set(path.join('.'), { path, message: `it would change ${name} on ${instance}, as the ${role} of ${other} does: two secrets would undo each other's rotations` });
      }
    }
  }
  return [...issues.values()];
}

/** A managed secret's store, issuer and target bindings, each with its path in the file. */
function bindingsOf(spec: SecretSpec): Array<{ role: 'store' | 'issuer' | 'target'; instance: string; params: unknown; path: Array<string | number> }> {
  const declared = spec.family ?? spec.name;
  return [
    { role: 'store', ...spec.store, path: ['secrets', declared, 'store'] },
    { role: 'issuer', ...spec.issuer, path: ['secrets', declared, 'issuer'] },
    ...spec.targets.map((instance, i) => ({ role: 'target' as const, instance, params: spec.targetParams.get(instance), path: ['secrets', declared, 'targets', i] })),
  ];
}

/**
 * Bindings their module cannot serve for a managed secret (its `storeProblem` / `issuerProblem` /
 * `targetProblem`, e.g. a client of a secret named by full ARN): every rotation would fail.
 * Checked when a file is applied (load.ts parseConfig), not when a stored revision is read again.
 */
export function bindingProblemIssues(
  config: RekeyConfig,
  problem: (type: string, role: 'store' | 'issuer' | 'target', params: unknown, spec: SecretSpec, instanceConfig: unknown) => string | undefined,
): Issue[] {
  const issues = new Map<string, Issue>();
  for (const spec of Object.values(config.secrets)) {
    for (const { role, instance, params, path } of bindingsOf(spec)) {
      const entry = own(config.providers, instance);
      const found = entry === undefined ? undefined : problem(entry.type, role, params, spec, entry.config);
      if (found !== undefined && !issues.has(path.join('.'))) issues.set(path.join('.'), { path, message: found });
    }
  }
  return [...issues.values()];
}

/**
 * A secret's own `retire:` with a target whose usage is not counted per key (its module's
 * `usagePerKey: false`): the previous key would report its successor's traffic, so it would be
 * held to maxGrace at every rotation and never retired early. Checked when a file is applied
 * (load.ts parseConfig); a stored revision still loads, without the policy.
 */
export function perKeyRetireIssues(config: RekeyConfig, document: Record<string, unknown>, perKey: (type: string) => boolean): Issue[] {
  const declared = (document.secrets ?? {}) as Record<string, { retire?: unknown } | undefined>;
  const issues = new Map<string, Issue>();
  for (const spec of Object.values(config.secrets)) {
    const name = spec.family ?? spec.name;
    if (issues.has(name) || own(declared, name)?.retire === undefined) continue;
    const shared = spec.targets.filter((t) => {
      const type = own(config.providers, t)?.type;
      return type !== undefined && !perKey(type);
    });
    if (shared.length) {
      issues.set(name, { path: ['secrets', name, 'retire'], message: `retire: needs usage counted per key on every target; not on ${shared.map((t) => `${t} (${config.providers[t]!.type})`).join(', ')}` });
    }
  }
  return [...issues.values()];
}

type RetireDocument = z.output<typeof retireSchema>;

/**
 * A secret's usage-aware retirement: its own `retire:`, checked (every target collects usage per
 * key, `whenUnusedFor` spans at least two of their windows, `maxGrace` is at least the grace), or
 * the top-level default where it fits (every target collects usage per key).
 */
function retirePolicy(
  raw: { retire?: RetireDocument | undefined; grace: number },
  fallback: RetireDocument | undefined,
  targets: readonly string[],
  providers: Readonly<Record<string, ProviderSpec>>,
  perKey: (type: string) => boolean,
  path: Array<string | number>,
  issues: Issue[],
): RetirePolicy | undefined {
  const own = raw.retire;
  const chosen = own ?? fallback;
  if (!chosen) return undefined;
  const intervals = targets.map((t) => providers[t]?.usageIntervalMs);
  const blind = targets.filter((_, i) => intervals[i] === undefined);
  if (!targets.length || blind.length) {
    if (own) issues.push({ path: [...path, 'retire'], message: `retire: needs usage collection on every target (usage: on its providers: entry); ${targets.length ? `not on ${blind.join(', ')}` : 'this secret has no targets'}` });
    return undefined;
  }
  // A previous key that reports its successor's traffic would always look used: held to maxGrace, never retired early.
  // Passed over here, so a revision applied before this was refused still loads; apply refuses it (perKeyRetireIssues).
  if (targets.some((t) => !perKey(providers[t]!.type))) return undefined;
  const at = own ? [...path, 'retire'] : ['retire'];
  const window = Math.max(...(intervals as number[]));
  const maxGraceMs = chosen.maxGrace ?? raw.grace;
  let valid = true;
  if (chosen.whenUnusedFor < 2 * window) {
    issues.push({ path: [...at, 'whenUnusedFor'], message: `whenUnusedFor must span at least two usage windows of ${path.at(-1)}'s targets (${humanDuration(2 * window)})` });
    valid = false;
  }
  if (maxGraceMs < raw.grace) {
    issues.push({ path: [...at, 'maxGrace'], message: `maxGrace must be at least the grace of ${path.at(-1)} (${humanDuration(raw.grace)})` });
    valid = false;
  }
  return valid ? { whenUnusedForMs: chosen.whenUnusedFor, maxGraceMs } : undefined;
}

/**
 * Secret, provider and client names that collide with what every object has: the parsers drop
 * a `__proto__` key without a word and a lookup of `constructor` finds a function, so a secret
 * the plan shows as added could silently not exist. Checked on the document as written.
 */
function reservedNames(document: unknown): Issue[] {
  const issues: Issue[] = [];
  const refuse = (path: Array<string | number>, name: string, what: string) =>
    issues.push({ path, message: `"${name}" cannot name a ${what}: every JavaScript object already has a property of that name (constructor, toString, __proto__, ...)` });
  const sections = isRecord(document) ? document : {};
  for (const [section, what] of [['providers', 'provider'], ['secrets', 'secret']] as const) {
    const record = sections[section];
    if (!isRecord(record)) continue;
    for (const name of Object.keys(record)) {
      if (RESERVED.has(name)) refuse([section, name], name, what);
      const clients = section === 'secrets' && isRecord(record[name]) ? record[name].clients : undefined;
      if (Array.isArray(clients)) clients.forEach((client, i) => typeof client === 'string' && RESERVED.has(client) && refuse([section, name, 'clients', i], client, 'client'));
    }
  }
  return issues;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
