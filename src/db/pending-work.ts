/**
 * What reconcile() must re-derive work for (StateRepository.pendingWork): every open item on a
 * full pass; on an incremental pass only the rows written since a watermark (updated_at is
 * stamped by the database on every write, see the reconcile_watermark migration, but a run's
 * step and lease bookkeeping, see runs_bookkeeping_hot) and the
 * retirements that came due since it. Each read is one indexed query, a named statement
 * (src/db/sql.ts) of its own for each kind of pass: a pass runs on every worker's event loop,
 * beside the leak path's jobs, so it costs them no query compilation.
 */
import type { Db } from './client.js';
import { RUN_COLUMNS, type RunRow, VERSION_COLUMNS, type VersionRow, runOf, versionOf } from './rows.js';
import { type Statement, sql, statement } from './sql.js';

const CLOCK = statement('db_clock_ms', `SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`);
/** `since`: the watermark as `$1` (and for retirements, the end of the window as `$2`). */
const SINCE = `updated_at >= $1::timestamp`;

/** A named statement per kind of pass: `where` for a full one, `where` and `since` for an incremental one. */
function pair(name: string, select: string, where: string, since: string): { full: Statement; since: Statement } {
  return { full: statement(`pending_${name}`, `${select} WHERE ${where}`), since: statement(`pending_${name}_since`, `${select} WHERE ${where} AND ${since}`) };
}
const RUNS = `SELECT ${RUN_COLUMNS} FROM runs r JOIN secrets s ON s.id = r.secret_id`;
const VERSIONS = `SELECT ${VERSION_COLUMNS} FROM versions v JOIN secrets s ON s.id = v.secret_id`;
const ACTIVE = pair('active_runs', RUNS, `r.status = 'running'`, `r.${SINCE}`);
const ENDED = statement('pending_ended_runs_since', `SELECT id FROM runs WHERE status <> 'running' AND ${SINCE}`);
const PREVIOUS = pair('previous', VERSIONS, `v.state IN ('previous', 'retired')`, `(v.${SINCE} OR (v.grace_ends_at >= $1::timestamp AND v.grace_ends_at <= $2::timestamp))`);
const COMPROMISED = pair('compromised', VERSIONS, `v.state = 'compromised'`, `v.${SINCE}`);
const LEAKED_CURRENT = pair('leaked_current', VERSIONS, `v.state = 'current' AND v.compromised_at IS NOT NULL`, `v.${SINCE}`);
/** Secrets whose last promoted version leaked and was taken down, with no current version and no rotation running: that version. */
export const UNREPLACED = pair(
  'unreplaced',
  `SELECT ${VERSION_COLUMNS} FROM secrets s
   JOIN LATERAL (SELECT * FROM versions WHERE secret_id = s.id AND promoted_at IS NOT NULL ORDER BY promoted_at DESC LIMIT 1) v ON true`,
  `s.removed_at IS NULL AND v.compromised_at IS NOT NULL AND v.state IN ('compromised', 'revoked')
     AND NOT EXISTS (SELECT 1 FROM versions c WHERE c.secret_id = s.id AND c.state = 'current')
     AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.secret_id = s.id AND r.kind = 'rotation' AND r.status = 'running')`,
  `s.id IN (SELECT secret_id FROM versions WHERE ${SINCE} UNION SELECT secret_id FROM runs WHERE ${SINCE})`,
);

export async function pendingWork(db: Db, since?: Date) {
  const q = sql(db);
  // The database's clock: the watermark the caller hands back next time (a worker's clock may be off).
  const [clock] = await q.rows<{ ms: number }>(CLOCK, []);
  const asOf = new Date(clock!.ms);
  const of = (s: { full: Statement; since: Statement }, values: unknown[] = since ? [since] : []) => (since ? q.rows<RunRow & VersionRow>(s.since, values) : q.rows<RunRow & VersionRow>(s.full, []));
  const [runs, ended, previous, compromised, leakedCurrent, unreplaced] = await Promise.all([
    of(ACTIVE),
    since ? q.rows<{ id: string }>(ENDED, [since]) : [],
    of(PREVIOUS, [since, asOf]),
    of(COMPROMISED),
    of(LEAKED_CURRENT),
    of(UNREPLACED),
  ]);
  return {
    asOf,
    activeRuns: runs.map(runOf),
    endedRuns: ended.map((r) => r.id),
    previous: previous.map(versionOf),
    compromised: compromised.map(versionOf),
    leakedCurrent: leakedCurrent.map(versionOf),
    unreplaced: unreplaced.map(versionOf),
  };
}
