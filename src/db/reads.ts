/**
 * The repository's reads of versions, runs, deliveries and secrets: named statements
 * (src/db/sql.ts), on the pool Prisma uses.
 */
import type { DeliveryRecord, VersionState } from '../core/model.js';
import { RUN_COLUMNS, type RunRow, VERSION_COLUMNS, type VersionRow, runOf, versionOf } from './rows.js';
import { type Sql, statement } from './sql.js';

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
const BY_FINGERPRINT = statement(
  'version_by_fingerprint',
  `SELECT ${VERSION_COLUMNS}, s.removed_at IS NOT NULL AS secret_removed FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.fingerprint = $1 LIMIT 1`,
);
const BY_NUMBER = statement('version_by_number', `SELECT ${VERSION_COLUMNS} FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = $1 AND v.number = $2`);
/** The newest version with public id `$1` (an access key id is never issued twice, but a re-import could repeat one). */
const BY_PUBLIC_ID = statement(
  'version_by_public_id',
  `SELECT ${VERSION_COLUMNS} FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.public_id = $1 ORDER BY v.created_at DESC LIMIT 1`,
);
const VERSIONS_OF = statement(
  'versions_of',
  `SELECT ${VERSION_COLUMNS} FROM versions v JOIN secrets s ON s.id = v.secret_id
   WHERE s.name = ANY($1::text[]) AND v.state::text = ANY($2::text[]) ORDER BY v.secret_id, v.number`,
);
const DELIVERIES = statement(
  'deliveries',
  `SELECT version_id AS "versionId", target, status::text AS status, attempts, last_error AS "lastError" FROM deliveries WHERE version_id = $1 ORDER BY target`,
);

export class Reads {
  constructor(private readonly sql: Sql) {}

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

  /** On the leak path: a named statement too, which also says whether the secret was removed (one round trip, not two). */
  async findVersionByFingerprint(fingerprint: string) {
    const [row] = await this.sql.rows<VersionRow & { secret_removed: boolean }>(BY_FINGERPRINT, [fingerprint]);
    return row ? { ...versionOf(row), secretRemoved: row.secret_removed } : null;
  }

  async findVersionByNumber(secret: string, number: number) {
    const [row] = await this.sql.rows<VersionRow>(BY_NUMBER, [secret, number]);
    return row ? versionOf(row) : null;
  }

  /** On the leak path (an exposed access key reported by AWS Health). */
  async findVersionByPublicId(publicId: string) {
    const [row] = await this.sql.rows<VersionRow>(BY_PUBLIC_ID, [publicId]);
    return row ? versionOf(row) : null;
  }

  async versionsOf(secretNames: readonly string[], states: readonly VersionState[]) {
    return (await this.sql.rows<VersionRow>(VERSIONS_OF, [secretNames, states])).map(versionOf);
  }
}
