/** What `rekey apply` would change: secrets, schedules and providers, added / changed / removed. */
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

export interface Plan {
  secrets: { added: string[]; changed: Array<{ name: string; fields: string[] }>; removed: string[]; unchanged: number };
  schedules: { added: ScheduleText[]; changed: Array<{ secret: string; from: string; to: string }>; removed: ScheduleText[] };
  providers: { added: string[]; changed: string[]; removed: string[] };
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

export function computePlan(loaded: LoadedConfig, stored: readonly StoredSecret[], previousDocument: Record<string, unknown> | undefined): Plan {
  const desired = managedSpecs(loaded.document) as Doc;
  const active = new Map(stored.filter((s) => !s.removedAt).map((s) => [s.name, s]));
  const plan: Plan = {
    secrets: { added: [], changed: [], removed: [], unchanged: 0 },
    schedules: { added: [], changed: [], removed: [] },
    providers: diffKeys((previousDocument?.providers ?? {}) as Doc, (loaded.document.providers ?? {}) as Doc),
  };
  for (const [name, spec] of Object.entries(desired)) {
    const before = active.get(name);
    const now = scheduleText(spec);
    if (!before) {
      plan.secrets.added.push(name);
      if (now) plan.schedules.added.push({ secret: name, schedule: now });
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
    if (then !== now) {
      if (!then) plan.schedules.added.push({ secret: name, schedule: now! });
      else if (!now) plan.schedules.removed.push({ secret: name, schedule: then });
      else plan.schedules.changed.push({ secret: name, from: then, to: now });
    }
  }
  for (const [name, before] of active) {
    if (desired[name]) continue;
    plan.secrets.removed.push(name);
    const then = scheduleText(before.spec as Record<string, unknown>);
    if (then) plan.schedules.removed.push({ secret: name, schedule: then });
  }
  return plan;
}

export function isEmpty(plan: Plan): boolean {
  const { secrets, providers } = plan;
  return !secrets.added.length && !secrets.changed.length && !secrets.removed.length && !providers.added.length && !providers.changed.length && !providers.removed.length;
}

export function formatPlan(plan: Plan, file: string): string {
  const lines = [`Plan for ${file}:`];
  for (const name of plan.providers.added) lines.push(`  + provider ${name}`);
  for (const name of plan.providers.changed) lines.push(`  ~ provider ${name}`);
  for (const name of plan.providers.removed) lines.push(`  - provider ${name}`);
  for (const name of plan.secrets.added) lines.push(`  + secret ${name}`);
  for (const { name, fields } of plan.secrets.changed) lines.push(`  ~ secret ${name} (${fields.join(', ')})`);
  for (const name of plan.secrets.removed) lines.push(`  - secret ${name} (no longer rotated; its history is kept)`);
  for (const s of plan.schedules.added) lines.push(`  + schedule ${s.secret}: ${s.schedule}`);
  for (const s of plan.schedules.changed) lines.push(`  ~ schedule ${s.secret}: ${s.from} -> ${s.to}`);
  for (const s of plan.schedules.removed) lines.push(`  - schedule ${s.secret}: ${s.schedule}`);
  const { added, changed, removed, unchanged } = plan.secrets;
  lines.push(`Secrets: ${added.length} to add, ${changed.length} to change, ${removed.length} to remove, ${unchanged} unchanged.`);
  return lines.join('\n');
}

function scheduleText(spec: Record<string, unknown> | undefined): string | undefined {
  const schedule = spec?.schedule as { cron?: string; timezone?: string } | undefined;
  return schedule?.cron ? `"${schedule.cron}" ${schedule.timezone ?? 'UTC'}` : undefined;
}

function diffKeys(before: Doc, after: Doc): Plan['providers'] {
  const added = Object.keys(after).filter((k) => !(k in before));
  const removed = Object.keys(before).filter((k) => !(k in after));
  const changed = Object.keys(after).filter((k) => k in before && hashDocument(before[k]) !== hashDocument(after[k]));
  return { added, changed, removed };
}
