/**
 * The repository's reads of versions, runs, deliveries and secrets: named statements
 * (src/db/sql.ts), on the pool Prisma uses.
 */
import type { DeliveryRecord, VersionRecord, VersionState } from '../core/model.js';
import { RUN_COLUMNS, type RunRow, VERSION_COLUMNS, type VersionRow, runOf, versionOf } from './rows.js';
import { type Sql, statement } from './sql.js';

const SECRET = statement('secret', `SELECT id, name, last_promoted_at AS "lastPromotedAt", removed_at AS "removedAt" FROM secrets WHERE name = $1`);
export const RUN = statement('run', `SELECT ${RUN_COLUMNS} FROM runs r JOIN secrets s ON s.id = r.secret_id WHERE r.id = $1`);
export const VERSION = statement('version', `SELECT ${VERSION_COLUMNS} FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.id = $1`);
/**
 * `count` state parameters from `$first` on, each its own: a generic plan steps the
 * (secret_id, state) index for just those states, where with one array parameter (of a size
 * it cannot know) it reads every version the secret ever had and filters them.
 */
function stateSlots(first: number, count: number): string {
  return Array.from({ length: count }, (_, i) => `$${first + i}::"VersionState"`).join(', ');
}

/** `states` as `count` slot values (the first repeated). @throws Error when there are more states than slots. */
function stateValues(states: readonly VersionState[], count: number): VersionState[] {
  if (!states.length || states.length > count) throw new Error(`${states.length} version states for ${count} parameters`);
  return Array.from({ length: count }, (_, i) => states[i] ?? states[0]!);
}

export const VERSIONS = statement(
  'versions_in',
  `SELECT ${VERSION_COLUMNS} FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.secret_id = $1 AND v.state IN (${stateSlots(2, 2)})`,
);

/**
 * A secret's versions in one or two states, oldest first: sorted here, not by the statement. An
 * ORDER BY number let a generic plan walk the (secret_id, number) index through the secret's
 * whole history (2,000 rows for a long-lived secret) to save a sort of the two or three it wanted.
 */
export async function versionsIn(sql: Sql, secretId: string, states: readonly VersionState[]): Promise<VersionRecord[]> {
  return (await sql.rows<VersionRow>(VERSIONS, [secretId, ...stateValues(states, 2)])).map(versionOf).sort((a, b) => a.number - b.number);
}
/** The secret's current version: one step of the one-current index, however many versions the secret has had. */
export const CURRENT = statement('current_version', `SELECT ${VERSION_COLUMNS} FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.secret_id = $1 AND v.state = 'current'`);
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
/** Every version with fingerprint `$1`: two can share a value (an issuer that gave two secrets the same token). */
const ALL_BY_FINGERPRINT = statement(
  'versions_by_fingerprint',
  `SELECT ${VERSION_COLUMNS}, s.removed_at IS NOT NULL AS secret_removed FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.fingerprint = $1 ORDER BY v.created_at, v.id`,
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
   WHERE s.name = ANY($1::text[]) AND v.state IN (${stateSlots(2, 6)}) ORDER BY v.secret_id, v.number`,
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
    const [row] = await this.sql.rows<VersionRow>(CURRENT, [secretId]);
    return row ? versionOf(row) : null;
  }

  async versions(secretId: string, states: readonly VersionState[]) {
    return versionsIn(this.sql, secretId, states);
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

  async findVersionsByFingerprint(fingerprint: string) {
    return (await this.sql.rows<VersionRow & { secret_removed: boolean }>(ALL_BY_FINGERPRINT, [fingerprint])).map((row) => ({ ...versionOf(row), secretRemoved: row.secret_removed }));
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
    return (await this.sql.rows<VersionRow>(VERSIONS_OF, [secretNames, ...stateValues(states, 6)])).map(versionOf);
  }
}
