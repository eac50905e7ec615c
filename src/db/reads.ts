/**
 * The repository's reads of one secret's versions, runs and deliveries: the ones a rotation
 * makes are named statements (src/db/sql.ts); the rest stay on Prisma.
 */
import type { DeliveryRecord, VersionState } from '../core/model.js';
import type { Db } from './client.js';
import { RUN_COLUMNS, type RunRow, VERSION_COLUMNS, type VersionRow, runOf, versionOf } from './rows.js';
import { type Sql, statement } from './sql.js';
import { toVersion, versionInclude } from './mappers.js';

const SECRET = statement('secret', `SELECT id, name, last_promoted_at AS "lastPromotedAt", removed_at AS "removedAt" FROM secrets WHERE name = $1`);
export const RUN = statement('run', `SELECT ${RUN_COLUMNS} FROM runs r JOIN secrets s ON s.id = r.secret_id WHERE r.id = $1`);
export const VERSION = statement('version', `SELECT ${VERSION_COLUMNS} FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.id = $1`);
export const VERSIONS = statement(
  'versions_in',
  `SELECT ${VERSION_COLUMNS} FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.secret_id = $1 AND v.state::text = ANY($2::text[]) ORDER BY v.number`,
);
export const LAST_PROMOTED = statement(
  'last_promoted',
  `SELECT ${VERSION_COLUMNS} FROM versions v JOIN secrets s ON s.id = v.secret_id
   WHERE v.secret_id = $1 AND v.promoted_at IS NOT NULL AND ($2::timestamp IS NULL OR v.promoted_at < $2::timestamp)
   ORDER BY v.promoted_at DESC LIMIT 1`,
);
const BY_FINGERPRINT = statement('version_by_fingerprint', `SELECT ${VERSION_COLUMNS} FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.fingerprint = $1 LIMIT 1`);
const DELIVERIES = statement(
  'deliveries',
  `SELECT version_id AS "versionId", target, status::text AS status, attempts, last_error AS "lastError" FROM deliveries WHERE version_id = $1 ORDER BY target`,
);

export class Reads {
  constructor(
    private readonly db: Db,
    private readonly sql: Sql,
  ) {}

  async getSecret(name: string) {
    const [row] = await this.sql.rows<{ id: string; name: string; lastPromotedAt: Date | null; removedAt: Date | null }>(SECRET, [name]);
    return row ?? null;
  }

  async getRun(id: string) {
    const [row] = await this.sql.rows<RunRow>(RUN, [id]);
    return row ? runOf(row) : null;
  }

  async getVersion(id: string) {
    const [row] = await this.sql.rows<VersionRow>(VERSION, [id]);
    return row ? versionOf(row) : null;
  }

  async currentVersion(secretId: string) {
    return (await this.versions(secretId, ['current']))[0] ?? null;
  }

  async versions(secretId: string, states: readonly VersionState[]) {
    return (await this.sql.rows<VersionRow>(VERSIONS, [secretId, states])).map(versionOf);
  }

  async lastPromoted(secretId: string, before?: Date) {
    const [row] = await this.sql.rows<VersionRow>(LAST_PROMOTED, [secretId, before ?? null]);
    return row ? versionOf(row) : null;
  }

  async deliveries(versionId: string): Promise<DeliveryRecord[]> {
    return this.sql.rows<DeliveryRecord>(DELIVERIES, [versionId]);
  }

  /** On the leak path: a named statement too. */
  async findVersionByFingerprint(fingerprint: string) {
    const [row] = await this.sql.rows<VersionRow>(BY_FINGERPRINT, [fingerprint]);
    return row ? versionOf(row) : null;
  }

  async findVersionByNumber(secret: string, number: number) {
    const row = await this.db.version.findFirst({ where: { number, secret: { name: secret } }, include: versionInclude });
    return row ? toVersion(row) : null;
  }

  async findVersionByPublicId(publicId: string) {
    const row = await this.db.version.findFirst({ where: { publicId }, orderBy: { createdAt: 'desc' }, include: versionInclude });
    return row ? toVersion(row) : null;
  }

  async versionsOf(secretNames: readonly string[], states: readonly VersionState[]) {
    const rows = await this.db.version.findMany({
      where: { secret: { name: { in: [...secretNames] } }, state: { in: [...states] } },
      orderBy: [{ secretId: 'asc' }, { number: 'asc' }],
      include: versionInclude,
    });
    return rows.map(toVersion);
  }
}
