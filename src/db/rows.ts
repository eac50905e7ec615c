/**
 * Rows of the hand-written statements (src/db/sql.ts) as core records: the column lists
 * every such statement selects, and their mappers. node-postgres returns timestamps as
 * Dates, jsonb parsed, enums and uuids as strings.
 */
import type { RunRecord, VersionRecord } from '../core/model.js';
import type { JsonObject } from '../core/ports.js';

/** A version's columns; the statement joins `secrets s` to `versions v`. */
export const VERSION_COLUMNS = `v.id, v.secret_id, s.name AS secret, v.number, v.state::text AS state, v.fingerprint, v.store_version_id,
  v.issuer_state, v.public_id, v.grace_ends_at, v.promoted_at, v.compromised_at, v.created_at, v.last_used_at`;

export interface VersionRow {
  id: string;
  secret_id: string;
  secret: string;
  number: number;
  state: string;
  fingerprint: string | null;
  store_version_id: string | null;
  issuer_state: JsonObject | null;
  public_id: string | null;
  grace_ends_at: Date | null;
  promoted_at: Date | null;
  compromised_at: Date | null;
  created_at: Date;
  last_used_at: Date | null;
}

/** The names VERSION_COLUMNS gives its columns (`secret`, not `s.name`). */
const VERSION_NAMES = VERSION_COLUMNS.split(',').map((c) => c.trim().split(/\s+/).at(-1)!.replace(/^[vs]\./, ''));

/** Per alias, each VERSION_NAMES name with its prefixed one: made once, not per row read. */
const prefixedNames = new Map<string, ReadonlyArray<readonly [string, string]>>();
function prefixed(alias: string): ReadonlyArray<readonly [string, string]> {
  let names = prefixedNames.get(alias);
  if (!names) prefixedNames.set(alias, (names = VERSION_NAMES.map((c) => [c, `${alias}_${c}`] as const)));
  return names;
}

/**
 * VERSION_COLUMNS of a subquery aliased `alias` that selects them, each named `<alias>_<column>`:
 * for a statement that returns a version beside another row (see {@link prefixedVersionOf}).
 */
export function prefixedVersionColumns(alias: string): string {
  return prefixed(alias)
    .map(([c, name]) => `${alias}.${c} AS ${name}`)
    .join(', ');
}

/** The version {@link prefixedVersionColumns} selected, or null when the subquery found none. */
export function prefixedVersionOf(row: Record<string, unknown>, alias: string): VersionRecord | null {
  const names = prefixed(alias);
  if (row[names[0]![1]] === null || row[names[0]![1]] === undefined) return null;
  const fields: Record<string, unknown> = {};
  for (const [c, name] of names) fields[c] = row[name];
  return versionOf(fields as unknown as VersionRow);
}

export function versionOf(row: VersionRow): VersionRecord {
  return {
    id: row.id,
    secretId: row.secret_id,
    secret: row.secret,
    number: row.number,
    state: row.state as VersionRecord['state'],
    fingerprint: row.fingerprint,
    storeVersionId: row.store_version_id,
    issuerState: row.issuer_state,
    publicId: row.public_id,
    graceEndsAt: row.grace_ends_at,
    promotedAt: row.promoted_at,
    compromisedAt: row.compromised_at,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}

/** A run's columns (`runs r`), with `secret` (its secret's name) as the expression given. */
export function runColumns(secret: string): string {
  return `r.id, r.secret_id, ${secret} AS secret, r.kind::text AS kind, r.trigger, r.idempotency_key, r.status::text AS status, r.step,
  r.version_id, r.grace_ms, r.attempts, r.error, r.started_at, r.updated_at, r.finished_at`;
}

/** A run's columns; the statement joins `secrets s` to `runs r`. */
export const RUN_COLUMNS = runColumns('s.name');

export interface RunRow {
  id: string;
  secret_id: string;
  secret: string;
  kind: string;
  trigger: string;
  idempotency_key: string;
  status: string;
  step: string;
  version_id: string | null;
  grace_ms: number | null;
  attempts: number;
  error: string | null;
  started_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

export function runOf(row: RunRow): RunRecord {
  return {
    id: row.id,
    secretId: row.secret_id,
    secret: row.secret,
    kind: row.kind as RunRecord['kind'],
    trigger: row.trigger,
    idempotencyKey: row.idempotency_key,
    status: row.status as RunRecord['status'],
    step: row.step,
    versionId: row.version_id,
    graceMs: row.grace_ms,
    attempts: row.attempts,
    error: row.error,
    startedAt: row.started_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}
