/**
 * What `rekey apply` would change: secrets and their schedules, and every other section of
 * the document (providers, leaks, events, env, and any section added later), entry by entry;
 * `delivery:` by authenticator and grant, `notifications:` by destination.
 */
import { CronExpressionParser } from 'cron-parser';
import type { LoadedConfig } from './load.js';
import { canonicalJson, hashDocument } from './load.js';

export interface StoredSecret {
  name: string;
  spec: unknown;
  specHash: string;
  removedAt: Date | null;
}

interface ScheduleText {
  secret: string;
  schedule: string;
}

/** An added or changed schedule, with its next three due times (ISO, UTC) so a wrong pattern shows before it runs. */
interface NextDue {
  next: string[];
}

/** What a secret still has live: its versions not yet revoked, and the targets holding one. */
export interface LiveKeys {
  /** `v3 current`, `v2 previous`. */
  versions: string[];
  targets: string[];
}

export interface Plan {
  secrets: {
    added: string[];
    changed: Array<{ name: string; fields: string[] }>;
    removed: string[];
    unchanged: number;
    /** Removed (or renamed) secrets whose keys stay live until `rekey decommission` (filled by apply from the database). */
    keptLive: Array<{ name: string } & LiveKeys>;
  };
  schedules: { added: Array<ScheduleText & NextDue>; changed: Array<{ secret: string; from: string; to: string } & NextDue>; removed: ScheduleText[] };
  /**
   * Every top-level section but `secrets:`, entry by entry (`providers` `edge`, `leaks` `github`):
   * a section is never left out, so removing `leaks:` shows as its receivers removed.
   * A section that is not a mapping is one entry named after itself.
   */
  sections: SectionDiff[];
}

export interface SectionDiff {
  section: string;
  added: string[];
  changed: string[];
  removed: string[];
}

type Doc = Record<string, Record<string, unknown> | undefined>;

/**
 * The managed secrets a document declares, each with its section as stored. A secret
 * with `clients:` is a family: one managed secret per client, `<family>/<client>`.
 */
export function managedSpecs(document: Record<string, unknown>): Record<string, Record<string, unknown>> {
  const managed: Record<string, Record<string, unknown>> = {};
  for (const [name, spec] of Object.entries((document.secrets ?? {}) as Doc)) {
    const { clients, ...rest } = spec ?? {};
    if (!Array.isArray(clients)) managed[name] = spec ?? {};
    else for (const client of clients as string[]) managed[`${name}/${client}`] = { ...rest, family: name, client };
  }
  return managed;
}

/** @param now where the due times shown for added and changed schedules start. @defaultValue the current time */
export function computePlan(loaded: LoadedConfig, stored: readonly StoredSecret[], previousDocument: Record<string, unknown> | undefined, now = new Date()): Plan {
  const desired = managedSpecs(loaded.document) as Doc;
  const active = new Map(stored.filter((s) => !s.removedAt).map((s) => [s.name, s]));
  const plan: Plan = {
    secrets: { added: [], changed: [], removed: [], unchanged: 0, keptLive: [] },
    schedules: { added: [], changed: [], removed: [] },
    sections: diffSections(previousDocument ?? {}, loaded.document),
  };
  // One computation per distinct schedule (a fleet shares a handful), and only when read: the text
  // plan shows 100 of each kind, --json every one (JSON.stringify reads the getter).
  const dueTimes = new Map<string, string[]>();
  for (const [name, spec] of Object.entries(desired)) {
    const before = active.get(name);
    const schedule = scheduleText(spec);
    const next = () => dueTimes.get(schedule!) ?? dueTimes.set(schedule!, nextDueTimes(spec, now)).get(schedule!)!;
    if (!before) {
      plan.secrets.added.push(name);
      if (schedule) plan.schedules.added.push(withNext({ secret: name, schedule }, next));
      continue;
    }
    if (before.specHash === hashDocument(spec)) {
      plan.secrets.unchanged += 1;
      continue;
    }
    const old = before.spec as Record<string, unknown>;
    // canonicalJson, not hashDocument: a field present on one side only is undefined on the other, which cannot be hashed.
    const fields = [...new Set([...Object.keys(old), ...Object.keys(spec ?? {})])].filter((k) => canonicalJson(old[k]) !== canonicalJson(spec?.[k])).sort();
    plan.secrets.changed.push({ name, fields });
    const then = scheduleText(old);
    if (then !== schedule) {
      if (!then) plan.schedules.added.push(withNext({ secret: name, schedule: schedule! }, next));
      else if (!schedule) plan.schedules.removed.push({ secret: name, schedule: then });
      else plan.schedules.changed.push(withNext({ secret: name, from: then, to: schedule }, next));
    }
  }
  for (const [name, before] of active) {
    if (Object.hasOwn(desired, name)) continue;
    plan.secrets.removed.push(name);
    const then = scheduleText(before.spec as Record<string, unknown>);
    if (then) plan.schedules.removed.push({ secret: name, schedule: then });
  }
  return plan;
}

export function isEmpty(plan: Plan): boolean {
  const { secrets, sections } = plan;
  return !secrets.added.length && !secrets.changed.length && !secrets.removed.length && sections.every((s) => !s.added.length && !s.changed.length && !s.removed.length);
}

/** What removing an entry does, said in the plan: a leak receiver, a notification destination. */
function removedNote(section: string, name: string): string {
  if (section === 'leaks') return ' (its webhook will answer 404)';
  if (section === 'notifications' && name.startsWith('destinations.')) return ' (it receives no more notifications)';
  return '';
}

/** How many entries of one kind (secrets added, schedules changed, ...) the text plan lists; `--json` lists every one. */
export const PLAN_LINES = 100;

export function formatPlan(plan: Plan, file: string): string {
  const lines = [`Plan for ${file}:`];
  const listed = <T>(items: readonly T[], what: string, line: (item: T) => void) => {
    items.slice(0, PLAN_LINES).forEach(line);
    if (items.length > PLAN_LINES) lines.push(`  ... and ${items.length - PLAN_LINES} more ${what} (--json lists every one)`);
  };
  for (const { section, added, changed, removed } of plan.sections) {
    const entry = (name: string) => (name === section ? section : `${section}.${name}`);
    for (const name of added) lines.push(`  + ${entry(name)}`);
    for (const name of changed) lines.push(`  ~ ${entry(name)}`);
    for (const name of removed) lines.push(`  - ${entry(name)}${removedNote(section, name)}`);
  }
  listed(plan.secrets.added, 'secrets to add', (name) => lines.push(`  + secret ${name}`));
  listed(plan.secrets.changed, 'secrets to change', ({ name, fields }) => lines.push(`  ~ secret ${name} (${fields.join(', ')})`));
  listed(plan.secrets.removed, 'secrets to remove', (name) => {
    lines.push(`  - secret ${name} (no longer rotated; its history is kept)`);
    const keys = plan.secrets.keptLive.find((k) => k.name === name);
    if (keys) {
      lines.push(`    ! its keys stay live: ${keys.versions.join(', ')}, at ${keys.targets.join(', ') || 'no target'}`);
      lines.push(`    ! leaks and \`rekey revoke\` still reach them; \`rekey decommission ${name}\` retires and revokes them everywhere`);
    }
  });
  listed(plan.schedules.added, 'schedules to add', (s) => lines.push(`  + schedule ${s.secret}: ${s.schedule}`, dueLine(s)));
  listed(plan.schedules.changed, 'schedules to change', (s) => lines.push(`  ~ schedule ${s.secret}: ${s.from} -> ${s.to}`, dueLine(s)));
  listed(plan.schedules.removed, 'schedules to remove', (s) => lines.push(`  - schedule ${s.secret}: ${s.schedule}`));
  const { added, changed, removed, unchanged } = plan.secrets;
  lines.push(`Secrets: ${added.length} to add, ${changed.length} to change, ${removed.length} to remove, ${unchanged} unchanged.`);
  const other = plan.sections.filter((s) => s.added.length + s.changed.length + s.removed.length);
  lines.push(other.length ? `Other sections: ${other.map((s) => `${s.section} ${[s.added.length && `+${s.added.length}`, s.changed.length && `~${s.changed.length}`, s.removed.length && `-${s.removed.length}`].filter(Boolean).join(' ')}`).join(', ')}.` : 'Other sections: no changes.');
  return lines.join('\n');
}

/** `    next: Mon 2026-12-07 03:00, Mon 2026-12-14 03:00, ... (Europe/Paris)`: wall-clock times in the schedule's zone. */
function dueLine(s: { schedule?: string; to?: string; next: string[] }): string {
  const timezone = (s.to ?? s.schedule ?? '').replace(/^".*" /, '');
  const format = new Intl.DateTimeFormat('en-GB', { timeZone: timezone, weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  const wall = (iso: string) => {
    const p = Object.fromEntries(format.formatToParts(new Date(iso)).map((part) => [part.type, part.value]));
    return `${p.weekday} ${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}${p.second === '00' ? '' : `:${p.second}`}`;
  };
  return `    next: ${s.next.map(wall).join(', ')} (${timezone})`;
}

/** `entry` with `next` (enumerable, so in --json) computed when read. */
function withNext<T extends object>(entry: T, next: () => string[]): T & { next: string[] } {
  return Object.defineProperty(entry, 'next', { get: next, enumerable: true }) as T & { next: string[] };
}

/** The next three due times of a secret's schedule after `from`, as BullMQ's scheduler computes them (cron-parser). */
function nextDueTimes(spec: Record<string, unknown> | undefined, from: Date): string[] {
  const schedule = spec?.schedule as { cron: string; timezone?: string };
  const times = CronExpressionParser.parse(schedule.cron, { tz: schedule.timezone ?? 'UTC', currentDate: from });
  return [times.next(), times.next(), times.next()].map((d) => d.toISOString()!);
}

function scheduleText(spec: Record<string, unknown> | undefined): string | undefined {
  const schedule = spec?.schedule as { cron?: string; timezone?: string } | undefined;
  return schedule?.cron ? `"${schedule.cron}" ${schedule.timezone ?? 'UTC'}` : undefined;
}

function diffSections(before: Record<string, unknown>, after: Record<string, unknown>): SectionDiff[] {
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((k) => k !== 'secrets').sort();
  return names.map((section) => {
    const [then, now] = [before[section], after[section]];
    if (!isMapping(then) && !isMapping(now)) return { section, ...diffKeys(then === undefined ? {} : { [section]: then }, now === undefined ? {} : { [section]: now }) };
    if (section === 'delivery' || section === 'notifications') return { section, ...diffKeys(entries(then), entries(now)) };
    return { section, ...diffKeys(isMapping(then) ? then : {}, isMapping(now) ? now : {}) };
  });
}

/** Named entries one by one: `delivery.authenticators.<name>`, `delivery.grants.<name>`, `notifications.destinations.<name>`. */
const NAMED = new Set(['authenticators', 'grants', 'destinations']);

/** `delivery:` and `notifications:` entry by entry: `issuer`, `authenticators.<name>`, `grants.<name>`, `destinations.<name>`. */
function entries(section: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(isMapping(section) ? section : {})) {
    if (!NAMED.has(key)) out[key] = value;
    else for (const [name, entry] of Object.entries(isMapping(value) ? value : {})) out[`${key}.${name}`] = entry;
  }
  return out;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return !!value && typeof value === 'object' && !Array.isArray(value);
}

function diffKeys(before: Record<string, unknown>, after: Record<string, unknown>): Omit<SectionDiff, 'section'> {
  const added = Object.keys(after).filter((k) => !Object.hasOwn(before, k));
  const removed = Object.keys(before).filter((k) => !Object.hasOwn(after, k));
  // canonicalJson, not hashDocument: an entry may be a bare scalar or null.
  const changed = Object.keys(after).filter((k) => Object.hasOwn(before, k) && canonicalJson(before[k]) !== canonicalJson(after[k]));
  return { added, changed, removed };
}

/** Every section of two documents entry by entry, secrets included: what one config revision changed from another. */
export function diffDocuments(before: Record<string, unknown>, after: Record<string, unknown>): SectionDiff[] {
  const secrets = (doc: Record<string, unknown>) => (isMapping(doc.secrets) ? doc.secrets : {});
  // Sorted: stored documents (jsonb) do not keep their keys' order.
  return [{ section: 'secrets', ...diffKeys(secrets(before), secrets(after)) }, ...diffSections(before, after)].map((d) => ({
    section: d.section,
    added: d.added.sort(),
    changed: d.changed.sort(),
    removed: d.removed.sort(),
  }));
}
