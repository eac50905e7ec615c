/**
 * PostgreSQL is the source of truth; the queues hold work derived from it. reconcile()
 * re-derives that work (idempotently: job ids are deterministic), so a Redis restart,
 * a job that exhausted its stall budget or a crash between a commit and an enqueue
 * loses nothing. Every worker runs it at start and periodically.
 *
 * A pass is full (every open item) or incremental (`since`: only the rows written since a
 * watermark, and retirements that came due since it), so a periodic pass costs what changed,
 * not what exists. A crash between a commit and its enqueue leaves a row written after the
 * last watermark, which the next incremental pass finds; what no row change reveals (a Redis
 * that lost its data, a job that ran out of stalls) waits for a full pass (src/runtime.ts
 * decides which pass runs). Each secret's policy is resolved once per pass.
 */
import { forEachBounded } from './bounded.js';
import { type EngineDeps, now, retirementDue } from './context.js';
import { describeError } from './errors.js';
import { shortFingerprint } from './fingerprint.js';
import type { SecretPolicy } from './model.js';
import { errorCode, notify } from './notify.js';
import { requestRotation } from './requests.js';
import { blockAtDeadline } from './takedown.js';

export interface ReconcileSummary {
  runs: number;
  retirements: number;
  revocations: number;
  blocks: number;
  /** The ids of the runs past their retry budget this pass saw: still retried, and reported (log, metric, `rekey status`). */
  stuckRuns: string[];
  /** Incremental passes: runs that ended since the watermark (no longer stuck, if they were). */
  endedRuns: string[];
  /** The database's clock when the pass read its work: the watermark of the next incremental pass. */
  asOf: Date;
}

export interface ReconcileOptions {
  /** Incremental: only rows written at or after this instant (the database's clock); absent: a full pass. */
  since?: Date;
}

/** Queue writes in flight at once (pipelined on one Redis connection). */
const QUEUE_WRITES = 16;

/**
 * A run retried this many times its per-job attempts is stuck. It is not given up: a forward
 * step has already rolled back on its last attempt, so what remains is a rollback (a pending
 * key may still be deployed where a target was down), the bookkeeping after a promotion, a
 * retirement or a revocation (an abandoned one would leave a leaked key accepted), and all
 * must finish. It keeps being retried and is reported loudly instead.
 */
const RUN_BUDGET_FACTOR = 5;

export async function reconcile(deps: EngineDeps, options: ReconcileOptions = {}): Promise<ReconcileSummary> {
  const work = await deps.repo.pendingWork(options.since);
  const summary: ReconcileSummary = { runs: 0, retirements: 0, revocations: 0, blocks: 0, stuckRuns: [], endedRuns: work.endedRuns, asOf: work.asOf };
  const policies = new Map<string, Promise<SecretPolicy | undefined>>();
  const resolve = async (secret: string) => {
    try {
      return await deps.providers.policy(secret);
    } catch (error) {
      deps.log.warn({ secret, error: describeError(error) }, 'reconcile: cannot resolve secret');
      return undefined;
    }
  };
  const policyOf = (secret: string) => {
    let policy = policies.get(secret);
    if (!policy) policies.set(secret, (policy = resolve(secret)));
    return policy;
  };
  await forEachBounded(work.activeRuns, QUEUE_WRITES, async (run) => {
    const policy = await policyOf(run.secret);
    if (!policy) return;
    if (run.attempts > policy.retry.attempts * RUN_BUDGET_FACTOR) {
      deps.log.error({ runId: run.id, secret: run.secret, kind: run.kind, step: run.step, attempts: run.attempts, error: run.error }, 'run stuck past its retry budget; still retrying');
      summary.stuckRuns.push(run.id);
      // Raised at every pass while it stays stuck, under one id: one notice per run.
      await notify(deps, 'run.stuck', run.id, run.secret, { runId: run.id, kind: run.kind, step: run.step, attempts: run.attempts, code: errorCode(run.error) });
    }
    const options = policy.retry;
    if (run.kind === 'rotation') await deps.queue.enqueueRun(run, { urgent: run.graceMs === 0, ...options });
    // A retirement or revocation whose job was lost (a Redis restart) or whose worker died
    // after the version's last transition: its handler finishes the work or closes the run.
    else if (run.versionId) {
      if (run.kind === 'retirement') await deps.queue.scheduleRetirement(run.versionId, now(deps), options);
      else await deps.queue.enqueueRevocation(run.versionId);
    }
    summary.runs += 1;
  });
  await forEachBounded(work.previous, QUEUE_WRITES, async (version) => {
    const policy = await policyOf(version.secret);
    if (!policy) return;
    const at = version.state === 'retired' ? now(deps) : retirementDue(version.graceEndsAt ?? now(deps));
    await deps.queue.scheduleRetirement(version.id, at, policy.retry);
    summary.retirements += 1;
  });
  await forEachBounded(work.compromised, QUEUE_WRITES, async (version) => {
    if (!(await policyOf(version.secret))) return;
    await deps.queue.enqueueRevocation(version.id);
    summary.revocations += 1;
  });
  for (const version of work.leakedCurrent) {
    const policy = await policyOf(version.secret);
    if (!policy) continue;
    summary.blocks += 1;
    if ((await deps.repo.getSecret(version.secret))?.removedAt) {
      // Removed from the config since the leak: no rotation will replace it, so it is blocked now.
      await blockAtDeadline(deps, version.id, 'the secret was removed from the config; blocking its leaked key now');
      continue;
    }
    await deps.queue.scheduleBlock(version.id, new Date(version.compromisedAt!.getTime() + policy.leakDeadlineMs));
    // Replacing that version only: a rotation that promoted since this pass read it has replaced it already.
    await requestRotation(deps, { secret: version.secret, trigger: 'leak', idempotencyKey: `leak:${version.id}`, urgent: true, replacing: version.id });
  }
  for (const version of work.unreplaced) {
    if (!(await policyOf(version.secret))) continue;
    // A fresh key each time: an earlier recovery run of this version may have ended (failed, or rolled back before the emergency rule).
    deps.log.error({ secret: version.secret, version: version.number }, 'a leaked key was taken down and nothing is replacing it; starting an emergency rotation');
    await notify(deps, 'secret.no-current', version.id, version.secret, { version: version.number, fingerprint: shortFingerprint(version.fingerprint) });
    await requestRotation(deps, { secret: version.secret, trigger: 'leak', idempotencyKey: `recover:${version.id}:${now(deps).getTime()}`, urgent: true, replacing: version.id });
    summary.runs += 1;
  }
  return summary;
}
