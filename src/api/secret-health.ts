/**
 * The health of every secret in one query: what the admin API lists and filters by. A secret
 * may meet several conditions; its `status` is the most urgent (the order of CONDITIONS), and
 * `healthy` when it meets none. The admin API's list and `rekey list` read it.
 */
import type { Db } from '../db/client.js';
import { Prisma } from '../db/generated/client.js';
import type { BullQueues } from '../queue/queues.js';
import { globRegExp } from './scopes.js';
import { type Condition, CONDITIONS, type SecretStatusName } from './statuses.js';


export interface SecretHealth {
  id: string;
  name: string;
  family: string | null;
  client: string | null;
  removed: boolean;
  currentVersion: number | null;
  lastRotatedAt: Date | null;
  lastRun: { id: string; status: string; finishedAt: Date | null; error: string | null } | null;
  conditions: Condition[];
  status: SecretStatusName;
}

interface Row {
  id: string;
  name: string;
  family: string | null;
  client: string | null;
  removed_at: Date | null;
  last_promoted_at: Date | null;
  current: number | null;
  leaked: boolean;
  rotating: boolean;
  drifted: boolean;
  last_run_id: string | null;
  last_run_status: string | null;
  last_run_finished_at: Date | null;
  last_run_error: string | null;
}

/**
 * - leaked: a version reported leaked that is not revoked yet;
 * - no-current: no current version that is not leaked;
 * - failing: the latest finished run (skipped ones aside) rolled back or failed;
 * - drifted: a target's last drift check found it out of sync and nothing repaired it since;
 * - rotating: a rotation is running.
 */
/** Which secrets {@link secretHealth} reads, by name; all of them when empty. */
export interface HealthScope {
  /** These secrets only. */
  names?: readonly string[];
  /** Only those that may meet this condition: a superset read through an index, the caller filters exactly ({@link filterHealth}). */
  status?: SecretStatusName;
  /** Names after this one (keyset paging). */
  after?: string;
  /** At most this many. */
  limit?: number;
}

/**
 * A superset of the secrets meeting `status`, each found through an index (or, for drift, the
 * small target_syncs table), so a status filter computes health for those only, not the fleet.
 */
function candidates(status: SecretStatusName | undefined): Prisma.Sql {
  switch (status) {
    case 'leaked':
      return Prisma.sql`s.id IN (SELECT v.secret_id FROM versions v WHERE v.compromised_at IS NOT NULL AND v.state NOT IN ('revoked', 'failed'))`;
    case 'no-current':
      // One pass over the current versions (hashed), not a probe per secret.
      return Prisma.sql`s.id NOT IN (SELECT v.secret_id FROM versions v WHERE v.state = 'current' AND v.compromised_at IS NULL)`;
    case 'failing':
      // A run that gave up with no finished run after it: one index probe per run that ever gave up.
      return Prisma.sql`s.id IN (SELECT r.secret_id FROM runs r WHERE r.status IN ('rolled_back', 'failed') AND NOT EXISTS (
        SELECT 1 FROM runs n WHERE n.secret_id = r.secret_id AND n.status IN ('succeeded', 'rolled_back', 'failed') AND n.finished_at > r.finished_at))`;
    case 'drifted':
      return Prisma.sql`s.id IN (SELECT t.secret_id FROM target_syncs t WHERE t.last_checked_at IS NOT NULL AND t.last_checked_at IS DISTINCT FROM t.last_in_sync_at)`;
    case 'rotating':
      return Prisma.sql`s.id IN (SELECT r.secret_id FROM runs r WHERE r.kind = 'rotation' AND r.status = 'running')`;
    default:
      return Prisma.sql`true`;
  }
}

/** The health of the secrets in `scope` (one name, or a scope), by name. */
export async function secretHealth(db: Db, scope: string | HealthScope = {}): Promise<SecretHealth[]> {
  const { names, status, after, limit } = typeof scope === 'string' ? { names: [scope] } : scope;
  const only = names ? [...names] : null;
  const rows = await db.$queryRaw<Row[]>`
    SELECT s.id::text, s.name, s.spec->>'family' AS family, s.spec->>'client' AS client, s.removed_at, s.last_promoted_at,
      (SELECT v.number FROM versions v WHERE v.secret_id = s.id AND v.state = 'current' AND v.compromised_at IS NULL) AS current,
      EXISTS (SELECT 1 FROM versions v WHERE v.secret_id = s.id AND v.compromised_at IS NOT NULL AND v.state NOT IN ('revoked', 'failed')) AS leaked,
      EXISTS (SELECT 1 FROM runs r WHERE r.secret_id = s.id AND r.kind = 'rotation' AND r.status = 'running') AS rotating,
      EXISTS (SELECT 1 FROM target_syncs t WHERE t.secret_id = s.id AND t.last_checked_at IS NOT NULL
                AND t.last_checked_at IS DISTINCT FROM t.last_in_sync_at
                AND (t.last_repaired_at IS NULL OR t.last_repaired_at < t.last_checked_at)) AS drifted,
      lr.id::text AS last_run_id, lr.status::text AS last_run_status, lr.finished_at AS last_run_finished_at, lr.error AS last_run_error
    FROM secrets s
    LEFT JOIN LATERAL (
      SELECT r.id, r.status, r.finished_at, r.error FROM runs r
       WHERE r.secret_id = s.id AND r.status IN ('succeeded', 'rolled_back', 'failed')
       ORDER BY r.finished_at DESC NULLS LAST LIMIT 1) lr ON true
    WHERE (${only}::text[] IS NULL OR s.name = ANY(${only}::text[])) AND (${after ?? null}::text IS NULL OR s.name > ${after ?? null}::text) AND ${candidates(status)}
    ORDER BY s.name
    LIMIT ${limit ?? null}::int`;
  return rows.map((r) => {
    const met: Record<Condition, boolean> = {
      leaked: r.leaked,
      'no-current': r.current === null,
      failing: r.last_run_status === 'rolled_back' || r.last_run_status === 'failed',
      drifted: r.drifted,
      rotating: r.rotating,
    };
    const conditions = CONDITIONS.filter((c) => met[c]);
    return {
      id: r.id,
      name: r.name,
      family: r.family,
      client: r.client,
      removed: r.removed_at !== null,
      currentVersion: r.current,
      lastRotatedAt: r.last_promoted_at,
      lastRun: r.last_run_id ? { id: r.last_run_id, status: r.last_run_status!, finishedAt: r.last_run_finished_at, error: r.last_run_error } : null,
      conditions,
      status: conditions[0] ?? 'healthy',
    };
  });
}

/** Those of `rows` whose name matches the glob `name`, that meet `status`, and that `may` show. */
export function filterHealth(rows: readonly SecretHealth[], filter: { name?: string | undefined; status?: SecretStatusName | undefined; may?: (name: string) => boolean }): SecretHealth[] {
  const named = filter.name ? globRegExp(filter.name) : undefined;
  return rows.filter(
    (h) =>
      (!filter.may || filter.may(h.name)) &&
      (!named || named.test(h.name)) &&
      (!filter.status || (filter.status === 'healthy' ? h.status === 'healthy' : h.conditions.includes(filter.status))),
  );
}

/** When the secret's schedule next fires; null when it has none, was removed, or Redis cannot be read. */
export async function nextRotation(queues: Pick<BullQueues, 'nextRotation'>, health: SecretHealth): Promise<Date | null> {
  if (health.removed) return null;
  return queues.nextRotation(health.name).then((date) => date ?? null, () => null);
}
