/**
 * Applying a loaded rekey.yaml, the one sequence `rekey apply`, `rekey dev -f` and the
 * demo share: compute the plan against the database, print it, store the config
 * revision, then reconcile schedules and queued work with it.
 */
import type { LoadedConfig } from '../config/load.js';
import { computePlan, formatPlan, type Plan } from '../config/plan.js';
import { latestDocument, saveConfig, storedSecrets } from '../db/config-store.js';
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
  const plan = computePlan(loaded, await storedSecrets(runtime.db), await latestDocument(runtime.db));
  options.out(options.json ? JSON.stringify({ plan, dryRun: !!options.dryRun }, null, 2) : formatPlan(plan, options.file));
  if (options.dryRun) return { plan, revision: undefined };
  const revision = await saveConfig(runtime.db, loaded, plan, options.actor);
  await runtime.connect(); // a no-op in a long-lived process, whose serve() connected already
  await runtime.reconcile();
  return { plan, revision };
}
