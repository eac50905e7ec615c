/**
 * What reconcile() must re-derive work for (StateRepository.pendingWork): every open item on a
 * full pass; on an incremental pass only the rows written since a watermark (updated_at is
 * stamped by the database on every write, see the reconcile_watermark migration) and the
 * retirements that came due since it. Each read is one indexed query.
 */
import { Prisma } from './generated/client.js';
import type { Db } from './client.js';
import { toRun, toVersion, versionInclude } from './mappers.js';

export async function pendingWork(db: Db, since?: Date) {
  // The database's clock: the watermark the caller hands back next time (a worker's clock may be off).
  const [clock] = await db.$queryRaw<Array<{ ms: number }>>`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`;
  const asOf = new Date(clock!.ms);
  const changed = since ? { updatedAt: { gte: since } } : {};
  const changedSecrets = since
    ? Prisma.sql`AND s.id IN (SELECT secret_id FROM versions WHERE updated_at >= ${since} UNION SELECT secret_id FROM runs WHERE updated_at >= ${since})`
    : Prisma.empty;
  const [runs, ended, previous, compromised, leakedCurrent, unreplaced] = await Promise.all([
    db.run.findMany({ where: { status: 'running', ...changed }, include: versionInclude }),
    since ? db.run.findMany({ where: { status: { not: 'running' }, ...changed }, select: { id: true } }) : [],
    db.version.findMany({
      where: { state: { in: ['previous', 'retired'] }, ...(since ? { OR: [changed, { graceEndsAt: { gte: since, lte: asOf } }] } : {}) },
      include: versionInclude,
    }),
    db.version.findMany({ where: { state: 'compromised', ...changed }, include: versionInclude }),
    db.version.findMany({ where: { state: 'current', compromisedAt: { not: null }, ...changed }, include: versionInclude }),
    db.$queryRaw<Array<{ id: string }>>`
      SELECT v.id::text AS id FROM secrets s
      JOIN LATERAL (SELECT id, state, compromised_at FROM versions WHERE secret_id = s.id AND promoted_at IS NOT NULL ORDER BY promoted_at DESC LIMIT 1) v ON true
      WHERE s.removed_at IS NULL AND v.compromised_at IS NOT NULL AND v.state IN ('compromised', 'revoked') ${changedSecrets}
        AND NOT EXISTS (SELECT 1 FROM versions c WHERE c.secret_id = s.id AND c.state = 'current')
        AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.secret_id = s.id AND r.kind = 'rotation' AND r.status = 'running')`.then((rows) =>
      rows.length ? db.version.findMany({ where: { id: { in: rows.map((r) => r.id) } }, include: versionInclude }) : [],
    ),
  ]);
  return {
    asOf,
    activeRuns: runs.map(toRun),
    endedRuns: ended.map((r) => r.id),
    previous: previous.map(toVersion),
    compromised: compromised.map(toVersion),
    leakedCurrent: leakedCurrent.map(toVersion),
    unreplaced: unreplaced.map(toVersion),
  };
}
