/** The lifecycle's rule for the repository's writes, and the compromised stamp the leak path's writes share. */
import { RekeyError } from '../core/errors.js';
import { canTransition, type VersionRecord, type VersionState } from '../core/model.js';
import type { AuditInput } from './audit.js';
import { NOW, statement } from './sql.js';

/** The lifecycle's rule (VERSION_TRANSITIONS), enforced here whoever asks for a change. */
export function refuseIllegal(version: Pick<VersionRecord, 'state' | 'number' | 'secret'>, to: VersionState): void {
  if (!canTransition(version.state, to)) {
    throw new RekeyError('REKEY_ERR_INVALID', `version ${version.number} of ${version.secret} cannot go from ${version.state} to ${to}`);
  }
}

/**
 * compromised_at stamped on version `$1` unless it was; `moved` counts it. After the secret lock
 * (LOCK_SECRET_OF_VERSION), in a statement of its own, so it reads what the lock's last holder left.
 */
export const COMPROMISE = statement(
  'version_compromise',
  `WITH u AS (UPDATE versions SET compromised_at = ${NOW} WHERE id = $1 AND compromised_at IS NULL RETURNING id)
   SELECT v.state::text AS state, v.number, s.name AS secret, (SELECT count(*) FROM u)::int AS moved
   FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.id = $1`,
);

export interface CompromiseRow {
  state: VersionState;
  number: number;
  secret: string;
  moved: number;
}

/**
 * The `version.leaked` event of a {@link COMPROMISE} that stamped the version; undefined when it
 * was stamped already. @throws RekeyError REKEY_ERR_UNKNOWN for no such version.
 */
export function leakedEvent(rows: readonly CompromiseRow[], versionId: string, audit: Pick<AuditInput, 'actor' | 'runId'>): AuditInput | undefined {
  const [row] = rows;
  if (!row) throw new RekeyError('REKEY_ERR_UNKNOWN', `no version ${versionId}`);
  if (row.moved !== 1) return undefined;
  return { ...audit, action: 'version.leaked', secret: row.secret, versionId, data: { state: row.state, number: row.number } };
}
