/**
 * The audit anchor job: one BullMQ job scheduler per cluster (`audit.anchor` on the
 * rotations queue, kept by reconcile like the rotation schedules; src/queue/queues.ts)
 * fires every REKEY_AUDIT_ANCHOR_INTERVAL (at most an hour) and writes a signed anchor
 * outside PostgreSQL: always to the log at info level, whatever LOG_LEVEL is (`audit anchor`, field `anchor`), and
 * to REKEY_AUDIT_ANCHOR_WEBHOOK when set. `rekey audit verify --anchor <anchor>` then proves
 * nothing up to it was removed or rewritten, so truncating the log loses at most one
 * interval unseen.
 *
 * Each run first checks the log against the anchor the cluster's previous run took (kept in
 * Redis, `<prefix>:audit:anchor`), so events removed from the end of a chain since then are
 * caught too, which the chain alone cannot show (a kept anchor without a signature, or not an
 * anchor at all, fails that check: this job keeps only signed ones). Most runs check only what
 * was appended since that anchor (`verifySince`: the heads it pins, then the new rows), so a run
 * costs what the interval added, not what the log holds; once a day (the run that falls in the
 * first interval of a UTC day, fullWalkDue) and whenever no anchor is kept, it walks the whole
 * log as `rekey audit verify` does (`verifyAudit`), which also finds a row removed from the
 * middle of a chain before the anchor. A log that does not verify raises `audit.verify-failed`
 * (src/core/notify.ts), once per broken row, and is logged at error level. The anchor is taken
 * all the same: it pins what is there now, and is what the next run checks against.
 */
import { RekeyError } from './core/errors.js';
import type { Logger } from 'pino';
import type { Notifier } from './core/notify.js';
import type { SecretValue } from './core/secret-value.js';
import type { AuditLog } from './db/audit.js';
import { raiseVerifyFailed, takeAnchor, verifyAudit, verifySince, walkReporter } from './db/audit-verify.js';
import type { Db } from './db/client.js';
import type { RedisConnection } from './queue/connection.js';

/** The last anchor the cluster's anchor job took, in Redis beside the queues (`<prefix>:audit:anchor`, the prefix's slot). */
export class LastAnchor {
  private readonly key: string;

  constructor(
    private readonly redis: RedisConnection,
    prefix: string,
  ) {
    this.key = `${prefix}:audit:anchor`;
  }

  /** The anchor, or null when none was kept (a new installation, a Redis that lost its data). */
  get(): Promise<string | null> {
    return this.redis.get(this.key);
  }

  async set(anchor: string): Promise<void> {
    await this.redis.set(this.key, anchor);
  }
}

export interface AnchorDeps {
  db: Db;
  audit: AuditLog;
  log: Logger;
  /** Who records the `audit.keyed` event, when the first anchor starts the keyed epoch. */
  actor: string;
  webhook: SecretValue | undefined;
  /** Where audit.verify-failed goes. */
  notifier: Notifier;
  /** The previous run's anchor, checked by this run, and where this run's goes. */
  last?: LastAnchor;
  /** `since`: check only what was appended since the previous run's anchor (see fullWalkDue). @defaultValue 'full' */
  walk?: 'full' | 'since';
  /** How often a walk logs how far it has come, at most. @defaultValue WALK_LOG_EVERY_MS */
  progressEveryMs?: number;
}

/** A day's full walk of a large log takes many minutes: it says how far it has come at least this often. */
const WALK_LOG_EVERY_MS = 60_000;

const DAY_MS = 86_400_000;

/**
 * Whether a run of a job firing every `everyMs` at `nowMs` is the day's full walk: the one that
 * falls in the first `everyMs` of a UTC day. Runs `everyMs` apart put one in that window each
 * day (none or two only when a run is late by about as much as the window is wide). Nothing
 * kept decides it, so no one who can write Redis can put the full walk off.
 */
export function fullWalkDue(nowMs: number, everyMs: number): boolean {
  return nowMs % DAY_MS < everyMs;
}

/** What the webhook receives (JSON). */
export interface AnchorMessage {
  anchor: string;
  seq: string;
  at: string;
}

const WEBHOOK_TIMEOUT_MS = 10_000;

/**
 * Verifies the log, takes a signed anchor, logs it, and posts it to the webhook. Idempotent: a
 * retry posts a newer anchor, which is as good, and raises the same notice under the same id.
 * @throws RekeyError REKEY_ERR_UNAVAILABLE when the webhook fails (after the log line), so the job retries.
 */
export async function recordAnchor(deps: AnchorDeps): Promise<AnchorMessage> {
  const previous = await deps.last?.get();
  if (deps.last && !previous) {
    // Expected once (a new installation, a Redis that lost its data); otherwise someone removed it to skip the check below.
    deps.log.warn({ component: 'audit' }, 'no audit anchor kept from an earlier run: this run checks the chains only, not what an earlier anchor pinned');
  }
  // Only this job writes the kept anchor, always signed: an unsigned one was put there by someone who could compute a
  // digest of rewritten chains but not sign it (an earlier release's anchors are accepted from an operator, not here).
  const walk = previous && deps.walk === 'since' ? 'since' : 'full';
  const progress = walkReporter((line) => deps.log.info({ component: 'audit', walk }, `audit anchor: checking the log, ${line}`), deps.progressEveryMs ?? WALK_LOG_EVERY_MS);
  const verified = walk === 'since' ? await verifySince(deps.db, deps.audit, previous!, { progress }) : await verifyAudit(deps.db, deps.audit, { progress, ...(previous ? { anchor: previous, signed: true } : {}) });
  if (!verified.ok) {
    deps.log.error({ component: 'audit', seq: verified.seq.toString(), problem: verified.problem }, 'audit log does not verify');
    // Every failure, an anchor refused included: the kept anchor is the job's own, so one it refuses was replaced.
    await raiseVerifyFailed(deps, verified);
  }
  const { anchor, seq } = await takeAnchor(deps.db, deps.audit, deps.actor);
  const message: AnchorMessage = { anchor, seq: seq.toString(), at: new Date().toISOString() };
  // At info whatever LOG_LEVEL says: without a webhook this line is the anchor's only copy outside PostgreSQL.
  deps.log.child({}, { level: 'info' }).info({ component: 'audit', ...message, checked: { walk, events: verified.events } }, 'audit anchor');
  await deps.last?.set(anchor);
  if (deps.webhook) await post(deps.webhook, message);
  return message;
}

async function post(webhook: SecretValue, message: AnchorMessage): Promise<void> {
  let status: number;
  try {
    const response = await fetch(webhook.reveal(), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(message),
      redirect: 'error',
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
    });
    status = response.status;
    await response.body?.cancel();
  } catch {
    // The URL may carry a token, and fetch's errors may quote it: our words only.
    throw new RekeyError('REKEY_ERR_UNAVAILABLE', 'the audit anchor webhook could not be reached');
  }
  if (status < 200 || status >= 300) throw new RekeyError('REKEY_ERR_UNAVAILABLE', `the audit anchor webhook answered ${status}`);
}
