/**
 * The built-in store: versions in rekey's own PostgreSQL (table local_store_versions),
 * sealed with AES-256-GCM. Stages follow AWS Secrets Manager's rules: promoting moves
 * `current` and gives `previous` to whichever version held `current`, in one transaction that
 * first checks (rows locked) that `current` is held by the version rekey expected. Destroy refuses
 * the version that holds `current` (but for the undo of its promotion), checked the same way.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { ProviderError } from '../../src/core/errors.js';
import { inTransaction } from '../../src/core/kit/sql-pool.js';
import type { Call, ExpectedCurrent, SecretStore, Stage, StoredRef, StoredVersion, VersionRef } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { type SealingKey, open, seal } from './seal.js';

interface Row {
  id: string;
  version_id: string;
  sealed: Buffer;
  key_id: string;
  stages: Stage[];
}

export class LocalStore implements SecretStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly key: SealingKey,
    private readonly name: string,
    private readonly provider: string,
  ) {}

  async writePending(version: VersionRef, value: SecretValue, call?: Call): Promise<{ storeVersionId: string }> {
    return this.transaction(call, async (client) => {
      const existing = await client.query<{ id: string }>('SELECT id FROM local_store_versions WHERE secret = $1 AND version_id = $2', [this.name, version.versionId]);
      if (existing.rows[0]) return { storeVersionId: existing.rows[0].id };
      // A pending stage left by a rotation that crashed is taken over by this one.
      await client.query(`UPDATE local_store_versions SET stages = array_remove(stages, 'pending') WHERE secret = $1`, [this.name]);
      const id = randomUUID();
      await client.query(
        `INSERT INTO local_store_versions (id, secret, version_id, sealed, key_id, stages) VALUES ($1, $2, $3, $4, $5, '{pending}')`,
        [id, this.name, version.versionId, seal(this.key, value.reveal(), aad(this.name, version.versionId)), this.key.id],
      );
      return { storeVersionId: id };
    });
  }

  async read(selector: { storeVersionId: string } | { stage: Stage }): Promise<SecretValue> {
    const { rows } =
      'stage' in selector
        ? await this.query<Row>(`SELECT * FROM local_store_versions WHERE secret = $1 AND $2 = ANY(stages) AND destroyed_at IS NULL`, [this.name, selector.stage])
        : await this.query<Row>(`SELECT * FROM local_store_versions WHERE secret = $1 AND id = $2::uuid AND destroyed_at IS NULL`, [this.name, asUuid(selector.storeVersionId)]);
    const row = rows[0];
    if (!row) throw new ProviderError('REKEY_ERR_NOT_FOUND', `${this.name}: no such version in the local store`, { provider: this.provider });
    if (row.key_id !== this.key.id) {
      throw new ProviderError('REKEY_ERR_INVALID', `${this.name}: sealed with key ${row.key_id}, but REKEY_LOCAL_STORE_KEY is ${this.key.id}`, { provider: this.provider });
    }
    try {
      return SecretValue.of(open(this.key, row.sealed, aad(this.name, row.version_id)));
    } catch (cause) {
      throw new ProviderError('REKEY_ERR_INVALID', `${this.name}: ciphertext failed authentication (tampered row?)`, { provider: this.provider, cause });
    }
  }

  async promote(next: StoredRef, previous: StoredRef | undefined, expected: ExpectedCurrent, call?: Call): Promise<void> {
    await this.transaction(call, async (client) => {
      const { rows } = await client.query<{ id: string; stages: Stage[] }>(
        `SELECT id, stages FROM local_store_versions WHERE secret = $1 AND stages && '{current,previous}' AND destroyed_at IS NULL FOR UPDATE`,
        [this.name],
      );
      const holder = rows.find((r) => r.stages.includes('current'))?.id;
      // Compare-and-set: the rows are locked (and the secret's advisory lock held) until this transaction ends.
      if (holder !== undefined && holder !== next.storeVersionId && holder !== expected?.storeVersionId) {
        throw new ProviderError('REKEY_ERR_CONFLICT', `${this.name}: the current stage is held by another version than rekey expected; nothing was changed`, {
          provider: this.provider,
          retryable: false,
        });
      }
      // The version core names as previous (a rollback names the one still in its grace, not the
      // rolled-back holder); without one, previous is whatever was current.
      const wanted = previous && previous.storeVersionId !== next.storeVersionId ? previous.storeVersionId : holder;
      const previousNow = rows.find((r) => r.stages.includes('previous'))?.id;
      if (holder === next.storeVersionId && (!previous || previousNow === wanted)) return;
      await client.query(`UPDATE local_store_versions SET stages = array_remove(array_remove(stages, 'previous'), 'current') WHERE secret = $1`, [this.name]);
      if (wanted && wanted !== next.storeVersionId) {
        await client.query(`UPDATE local_store_versions SET stages = '{previous}' WHERE id = $1::uuid AND secret = $2 AND destroyed_at IS NULL`, [asUuid(wanted), this.name]);
      }
      const { rowCount } = await client.query(`UPDATE local_store_versions SET stages = '{current}' WHERE id = $1::uuid AND secret = $2 AND destroyed_at IS NULL`, [
        asUuid(next.storeVersionId),
        this.name,
      ]);
      if (!rowCount) throw new ProviderError('REKEY_ERR_NOT_FOUND', `${this.name}: cannot promote a version the store does not hold`, { provider: this.provider });
    });
  }

  async destroy(version: StoredRef, call?: Call, options?: { undoPromotion?: boolean }): Promise<void> {
    // One transaction under the secret's lock, the rows locked: the check that this version does not
    // hold current is made on the state the destroy changes, so a promote cannot land in between.
    await this.transaction(call, async (client) => {
      const { rows } = await client.query<{ id: string; stages: Stage[] }>(
        `SELECT id, stages FROM local_store_versions WHERE secret = $1 AND (id = $2::uuid OR 'previous' = ANY(stages)) AND destroyed_at IS NULL FOR UPDATE`,
        [this.name, asUuid(version.storeVersionId)],
      );
      const target = rows.find((r) => r.id === version.storeVersionId.toLowerCase());
      if (!target) return;
      if (target.stages.includes('current')) {
        if (!options?.undoPromotion) {
          throw new ProviderError('REKEY_ERR_INVALID', `${this.name}: refusing to destroy the version that holds the current stage`, { provider: this.provider });
        }
        // Undoing its promotion: current goes back to the version that held previous, if any, or away.
        const before = rows.find((r) => r.id !== target.id && r.stages.includes('previous'))?.id;
        if (before) await client.query(`UPDATE local_store_versions SET stages = '{current}' WHERE id = $1::uuid AND secret = $2`, [before, this.name]);
      }
      // The ciphertext is wiped, not just flagged: a destroyed value is gone.
      await client.query(`UPDATE local_store_versions SET destroyed_at = now(), sealed = ''::bytea, stages = '{}' WHERE id = $1::uuid AND secret = $2`, [target.id, this.name]);
    });
  }

  async list(): Promise<StoredVersion[]> {
    const { rows } = await this.query<Row>(`SELECT id, version_id, stages FROM local_store_versions WHERE secret = $1 AND destroyed_at IS NULL ORDER BY created_at`, [this.name]);
    return rows.map((r) => ({ storeVersionId: r.id, versionId: r.version_id, stages: r.stages }));
  }

  private async query<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params);
    } catch (cause) {
      throw unavailable(this.provider, cause);
    }
  }

  /**
   * One transaction under the secret's advisory lock. It commits only while the caller still waits:
   * once `call.signal` aborts (core's per-call timeout gave up on it) it rolls back, so a write core
   * counted as failed never lands later beside the one its retry makes. A connection whose server
   * refused a write as read-only (SQLSTATE 25006: a standby, or a primary demoted by a failover while
   * the front still routed to it) is not kept (src/core/kit/sql-pool.ts), so the retry opens one
   * through the front to the new primary instead of failing on it for ever.
   */
  private async transaction<T>(call: Call | undefined, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    try {
      return await inTransaction(
        () => this.pool.connect(),
        async (client) => {
          // One writer per secret at a time: stage moves must not interleave.
          await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`local-store:${this.name}`]);
          const result = await fn(client);
          if (call?.signal.aborted) throw new ProviderError('REKEY_ERR_TIMEOUT', `${this.name}: the call was given up before it committed; rolled back`, { provider: this.provider });
          return result;
        },
      );
    } catch (error) {
      throw error instanceof ProviderError ? error : unavailable(this.provider, error);
    }
  }
}

function aad(secret: string, versionId: string): string {
  return `${secret}\n${versionId}`;
}

/** Store ids are UUIDs; anything else cannot exist (and must not reach a ::uuid cast). */
function asUuid(id: string): string {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id) ? id : '00000000-0000-0000-0000-000000000000';
}

function unavailable(provider: string, cause: unknown): ProviderError {
  return new ProviderError('REKEY_ERR_UNAVAILABLE', 'local store: PostgreSQL query failed', { provider, cause });
}
