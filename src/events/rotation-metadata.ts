/**
 * After `rekey apply`: each added or changed secret whose store can show a rotation policy
 * (SecretStore.describeRotation: Secret Manager's rotation and topics, Secrets Manager tags) gets
 * rekey's schedule mirrored there, so the cloud console tells the truth. The config is already
 * applied, so a failure changes nothing else; but it is not forgotten: the secret stays marked in
 * PostgreSQL (`secrets.metadata_pending_at`, with the error) until a write succeeds, and every
 * worker retries such writes each minute, as does the next apply.
 */
import type { Logger } from 'pino';
import { own, type RekeyConfig } from '../config/schema.js';
import { timed } from '../core/call.js';
import { describeError, sanitize } from '../core/errors.js';
import type { ProviderCatalog } from '../core/provider.js';
import type { ProviderResolver } from '../core/resolved.js';
import type { Db } from '../db/client.js';

export interface RotationMetadataResult {
  secret: string;
  ok: boolean;
  /** A write that had failed before (an earlier apply's), tried again. */
  retry: boolean;
  /** Failed again with the same error as the last attempt. */
  repeated: boolean;
  /** What the store now shows, or why it could not be set (log-safe). */
  message: string;
}

type Resolver = ProviderResolver & { config(o?: { fresh?: boolean }): Promise<RekeyConfig> };

/** The store instances of `config` that can show a rotation policy: apply marks only their secrets. */
export async function rotationMetadataStores(config: RekeyConfig, modules: ProviderCatalog): Promise<Set<string>> {
  const showing = new Set((await modules.load(Object.values(config.providers).map((p) => p.type))).filter((m) => m.rotationMetadata).map((m) => m.type));
  return new Set(Object.entries(config.providers).filter(([, p]) => showing.has(p.type)).map(([name]) => name));
}

interface Marked {
  id: string;
  name: string;
  metadataPendingAt: Date;
  metadataError: string | null;
}

/** Marked secrets read per page. */
const PAGE = 1000;

/**
 * Writes the rotation metadata of every secret marked as having some to write (by the apply that
 * added or changed it, in the apply's transaction: src/db/config-store.ts `saveConfig`), one at a
 * time, a page of marked secrets at a time. A success clears the mark unless another apply marked
 * the secret again meanwhile; a failure records its error and keeps the mark. A store instance
 * with nothing to show (no describeRotation) is found out once: every other secret it holds has
 * its mark cleared with the page's, in one statement, and no result. Harmless when several
 * processes run it at once: describeRotation reads before it writes and writes nothing when the
 * store already agrees.
 */
export async function writeRotationMetadata(db: Db, resolver: Resolver): Promise<RotationMetadataResult[]> {
  const results: RotationMetadataResult[] = [];
  const showsRotation = new Map<string, boolean>(); // by store instance
  let config: RekeyConfig | undefined;
  for (let after = ''; ; ) {
    // Plain SQL: three short columns and the mark as a UTC instant (the column has no time zone), compared as read in clearMarks.
    const pending = await db.$queryRaw<Marked[]>`
      SELECT id, name, metadata_pending_at AT TIME ZONE 'UTC' AS "metadataPendingAt", metadata_error AS "metadataError" FROM secrets
      WHERE metadata_pending_at IS NOT NULL AND removed_at IS NULL AND name > ${after} ORDER BY name LIMIT ${PAGE}`;
    if (!pending.length) return results;
    after = pending.at(-1)!.name;
    // Read after the marks, and fresh: the revision an apply committed with the marks it set, or a
    // newer one. A revision id trusted from up to a second ago wrote the previous schedule and
    // cleared the new apply's mark, so the new schedule was never mirrored.
    config ??= await resolver.config({ fresh: true });
    const nothingToShow: typeof pending = [];
    for (const secret of pending) {
      const spec = own(config.secrets, secret.name);
      // No longer in the config, or a store with nothing to show: nothing to write.
      if (!spec || showsRotation.get(spec.store.instance) === false) {
        nothingToShow.push(secret);
        continue;
      }
      const retry = secret.metadataError !== null;
      try {
        const { store, policy } = await resolver.resolve(secret.name);
        showsRotation.set(spec.store.instance, !!store.describeRotation);
        if (!store.describeRotation) {
          nothingToShow.push(secret);
          continue;
        }
        const message = await timed('store.describeRotation', policy.timeoutMs, (call) =>
          store.describeRotation!({ schedule: spec.schedule, graceMs: spec.graceMs }, call),
        );
        await clearMarks(db, [secret]);
        results.push({ secret: secret.name, ok: true, retry, repeated: false, message });
      } catch (error) {
        const message = sanitize(describeError(error));
        await db.secret.update({ where: { id: secret.id }, data: { metadataError: message } });
        results.push({ secret: secret.name, ok: false, retry, repeated: message === secret.metadataError, message });
      }
    }
    await clearMarks(db, nothingToShow);
  }
}

/** Clears the marks of `secrets`, except where another apply marked one again since it was read (one statement per distinct mark: usually one). */
async function clearMarks(db: Db, secrets: readonly Marked[]): Promise<void> {
  const byMark = new Map<number, string[]>();
  for (const s of secrets) {
    const mark = s.metadataPendingAt.getTime();
    const ids = byMark.get(mark) ?? [];
    ids.push(s.id);
    byMark.set(mark, ids);
  }
  for (const [mark, ids] of byMark) {
    await db.$executeRaw`
      UPDATE secrets SET metadata_pending_at = NULL, metadata_error = NULL WHERE id = ANY(${ids}::uuid[]) AND metadata_pending_at = (${new Date(mark).toISOString()}::timestamptz AT TIME ZONE 'UTC')`;
  }
}

/** The workers' housekeeping: retries the writes that failed, logging what happened to each. */
export async function retryRotationMetadata(db: Db, resolver: Resolver, log: Logger): Promise<void> {
  for (const result of await writeRotationMetadata(db, resolver)) {
    if (result.ok) log.info({ secret: result.secret, metadata: result.message }, 'rotation metadata written on retry');
    // Warn when the reason is new; the same refusal every minute is not news.
    else log[result.repeated ? 'debug' : 'warn']({ secret: result.secret, error: result.message }, 'rotation metadata still not written; retrying in a minute');
  }
}

/** Lines for apply's output. */
export function formatRotationMetadata(results: readonly RotationMetadataResult[]): string[] {
  return results.map((r) => {
    const retried = r.retry ? ' (retried: an earlier write failed)' : '';
    return r.ok ? `  rotation metadata ${r.secret}${retried}: ${r.message}` : `  ! rotation metadata ${r.secret} not updated${retried}: ${r.message} (workers retry it every minute)`;
  });
}
