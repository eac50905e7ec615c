/**
 * Applying a loaded rekey.yaml, the one sequence `rekey apply`, `rekey dev -f` and the
 * demo share: compute the plan against the database, print it, store the config
 * revision, then reconcile schedules and queued work with it.
 */
import type { LoadedConfig } from '../config/load.js';
import { computePlan, formatPlan, type Plan } from '../config/plan.js';
import { APPLY_BATCH, latestDocument, liveKeys, saveConfig, storedSecrets } from '../db/config-store.js';
import { rotationMetadataStores } from '../events/rotation-metadata.js';
import { RekeyError } from '../core/errors.js';
import type { Runtime } from '../runtime.js';

export interface ApplyOptions {
  /** The file the config was loaded from; heads the printed plan. */
  file: string;
  /** Who applies, for the audit log (`cli`, `dev`, `demo`). */
  actor: string;
  /** Receives the plan, in one piece. */
  out: (text: string) => void;
  /** Print the plan as JSON (`{ plan, dryRun }`) instead of text. @defaultValue false */
  json?: boolean;
  /** Print the plan and change nothing: no revision, no Redis connection. @defaultValue false */
  dryRun?: boolean;
  /** Mark added and changed secrets whose store can show a rotation policy (ProviderModule.rotationMetadata) to have it written there (src/events/rotation-metadata.ts). @defaultValue false */
  rotationMetadata?: boolean;
  /** Receives progress lines while a large apply writes (more than one batch of secrets): `rekey apply` sends them to stderr. */
  progress?: (line: string) => void;
  /** Apply a file that removes every managed secret and manages none (an empty or truncated file otherwise). @defaultValue false */
  allowRemoveAll?: boolean;
}

/**
 * Plans `loaded` against the database, prints the plan, and unless `dryRun` stores it
 * as a config revision and reconciles (cron schedules and queued work follow at once).
 * The caller loads the file, so `rekey apply` can reject a bad one before it reads its
 * settings. Applying the same document again stores no new revision.
 * @returns the plan, and the revision it was stored as (undefined on a dry run).
 * @throws what saving or reconciling throws; a revision already stored stays stored.
 */
export async function applyConfig(runtime: Runtime, loaded: LoadedConfig, options: ApplyOptions): Promise<{ plan: Plan; revision: number | undefined }> {
  // Storing a revision writes audit events: without their key, say so before a plan that reads as applied.
  if (!options.dryRun) runtime.audit.requireKey();
  const plan = computePlan(loaded, await storedSecrets(runtime.db), await latestDocument(runtime.db));
  // Removing a secret leaves its keys live: the plan names them and every target holding one.
  for (const [name, keys] of await liveKeys(runtime.db, plan.secrets.removed)) plan.secrets.keptLive.push({ name, ...keys });
  options.out(options.json ? JSON.stringify({ plan, dryRun: !!options.dryRun }, null, 2) : formatPlan(plan, options.file));
  if (options.dryRun) return { plan, revision: undefined };
  if (removesEverything(plan) && !options.allowRemoveAll) {
    // An empty or truncated file (a templating step that failed) would stop every schedule without a word.
    throw new RekeyError(
      'REKEY_ERR_INVALID',
      `${options.file} manages no secret and would remove all ${plan.secrets.removed.length}: nothing applied. If that is meant, apply it with --allow-remove-all`,
    );
  }
  const rotationMetadata = options.rotationMetadata ? await rotationMetadataStores(loaded.config, runtime.modules) : undefined;
  // Progress lines only for an apply of more than one batch: a small one is done before a line would help.
  const progress = plan.secrets.added.length + plan.secrets.changed.length > APPLY_BATCH ? options.progress : undefined;
  const revision = await saveConfig(runtime.db, runtime.audit, loaded, plan, options.actor, { rotationMetadata, progress });
  // What follows resolves secrets from this revision: the config validated above, not the stored copy validated again (seconds at 100,000 secrets).
  await runtime.resolver.adopt(revision, loaded);
  await runtime.connect(); // a no-op in a long-lived process, whose serve() connected already
  const started = performance.now();
  progress?.('  schedules and queued work: reconciling with the database');
  await runtime.reconcile();
  progress?.(`  schedules and queued work: reconciled in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { plan, revision };
}

/** Whether `plan` leaves rekey managing no secret, having managed some. */
function removesEverything(plan: Plan): boolean {
  const { added, changed, removed, unchanged } = plan.secrets;
  return removed.length > 0 && added.length === 0 && changed.length === 0 && unchanged === 0;
}
