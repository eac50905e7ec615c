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

type Resolver = ProviderResolver & { config(): Promise<RekeyConfig> };

/**
 * Writes the rotation metadata of every secret marked as having some to write (by the apply that
 * added or changed it, in the apply's transaction: src/db/config-store.ts `saveConfig`), one at a
 * time. A success clears the mark unless another apply marked the secret again meanwhile; a
 * failure records its error and keeps the mark. Harmless when several processes run it at once:
 * describeRotation reads before it writes and writes nothing when the store already agrees.
 */
export async function writeRotationMetadata(db: Db, resolver: Resolver): Promise<RotationMetadataResult[]> {
  const pending = await db.secret.findMany({
    where: { metadataPendingAt: { not: null }, removedAt: null },
    select: { id: true, name: true, metadataPendingAt: true, metadataError: true },
    orderBy: { name: 'asc' },
  });
  if (!pending.length) return [];
  const config = await resolver.config();
  const results: RotationMetadataResult[] = [];
  for (const secret of pending) {
    const done = (error: string | null) =>
      error === null
        ? db.secret.updateMany({ where: { id: secret.id, metadataPendingAt: secret.metadataPendingAt }, data: { metadataPendingAt: null, metadataError: null } })
        : db.secret.update({ where: { id: secret.id }, data: { metadataError: error } });
    const spec = own(config.secrets, secret.name);
    const retry = secret.metadataError !== null;
    if (!spec) {
      await done(null); // no longer in the config: nothing to show
      continue;
    }
    try {
      const { store, policy } = await resolver.resolve(secret.name);
      if (!store.describeRotation) {
        await done(null); // a store with nothing to show
        continue;
      }
      const message = await timed('store.describeRotation', policy.timeoutMs, (call) =>
        store.describeRotation!({ schedule: spec.schedule, graceMs: spec.graceMs }, call),
      );
      await done(null);
      results.push({ secret: secret.name, ok: true, retry, repeated: false, message });
    } catch (error) {
      const message = sanitize(describeError(error));
      await done(message);
      results.push({ secret: secret.name, ok: false, retry, repeated: message === secret.metadataError, message });
    }
  }
  return results;
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
