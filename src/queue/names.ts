/** Queue names, job names and deterministic job ids: duplicates of one piece of work collapse. */
/**
 * `emergencies`: a leak's replacement rotations (urgent runs), apart from the `revocations` queue's
 * takedowns (revoke, block, drift retire): a rotation is slow (issue, deploy, verify at every
 * target), and ten leaked current keys would otherwise hold every revocations worker while the
 * next leak's block waited behind them. Neither waits behind scheduled or fleet rotations.
 */
export const QUEUES = ['rotations', 'emergencies', 'revocations', 'retirements'] as const;
export type QueueName = (typeof QUEUES)[number];
/** Notices for people (src/notify): its own queue and worker, so a slow receiver never holds up core's work. */
export const NOTIFICATIONS_QUEUE = 'notifications';

export const jobId = {
  run: (runId: string) => `run.${runId}`,
  retire: (versionId: string) => `retire.${versionId}`,
  revoke: (versionId: string) => `revoke.${versionId}`,
  block: (versionId: string) => `block.${versionId}`,
  targetRetire: (versionId: string, target: string) => `drift.${versionId}.${target}`,
  scheduler: (secret: string) => `rotate.${secret}`,
  /** The one audit anchor job scheduler of the cluster (src/audit-anchor.ts). */
  anchorScheduler: 'audit.anchor',
  /** One notice for one destination (src/notify): raising the notice again adds nothing while its job is kept. */
  notice: (noticeId: string, destination: string) => `${noticeId}@${destination}`,
};

export interface RunJob {
  runId: string;
}
export interface VersionJob {
  versionId: string;
}
export interface TargetJob {
  versionId: string;
  target: string;
}
export interface ScheduledJob {
  secret: string;
}

/** BullMQ backoff type of leak takedowns: exponential from `delay`, capped at TAKEDOWN_MAX_DELAY_MS. */
export const CAPPED_BACKOFF = 'capped';
const TAKEDOWN_MAX_DELAY_MS = 2000;
/** BullMQ backoff type of emergency rotations: exponential from `delay`, capped at EMERGENCY_MAX_DELAY_MS. */
export const EMERGENCY_BACKOFF = 'emergency';
const EMERGENCY_MAX_DELAY_MS = 30_000;
/** BullMQ backoff type of notifications (src/notify): exponential from the destination's `retry.backoff`, capped at NOTIFY_MAX_DELAY_MS. */
export const NOTIFY_BACKOFF = 'notify';
const NOTIFY_MAX_DELAY_MS = 5 * 60_000;
/** BullMQ backoff type of rotations, retirements and cluster jobs (a secret's `retry`): doubling from `delay`, uncapped. */
export const DOUBLING_BACKOFF = 'doubling';
const MAX_DELAY_MS: Record<string, number> = {
  [CAPPED_BACKOFF]: TAKEDOWN_MAX_DELAY_MS,
  [EMERGENCY_BACKOFF]: EMERGENCY_MAX_DELAY_MS,
  [NOTIFY_BACKOFF]: NOTIFY_MAX_DELAY_MS,
  [DOUBLING_BACKOFF]: Infinity,
};
/** The leak path's backoffs: a server's Retry-After delays them no longer than their own cap (a leaked key waits for no one). */
const URGENT = new Set([CAPPED_BACKOFF, EMERGENCY_BACKOFF]);

/** Whether `type` is one of rekey's capped backoffs (the workers' backoffStrategy computes it with cappedDelay). */
export function isCappedBackoff(type: string | undefined): type is string {
  return type !== undefined && Object.hasOwn(MAX_DELAY_MS, type);
}

/**
 * Retries of a leak takedown (revoke and block jobs): 250 ms, 500 ms, 1 s, then every 2 s
 * for about 4 minutes, after which reconcile() queues it again. A gateway back from an
 * outage refuses the leaked key within 2 s, where plain doubling would wait as long again
 * as the outage had lasted.
 */
export const TAKEDOWN_RETRY = { attempts: 120, backoff: { type: CAPPED_BACKOFF, delay: 250 } };

/**
 * Retries of an emergency rotation (a leak's replacement): it is not given up until a version
 * is current. Core rolls back the version on every `retry.attempts`-th failure and starts
 * over with a fresh one; the job's backoff doubles from the secret's `retry.backoff` up to
 * 30 s, so an issuer that stays down is not hammered with new credentials.
 */
export function emergencyRetry(backoffMs: number) {
  return { attempts: 1_000_000_000, backoff: { type: EMERGENCY_BACKOFF, delay: backoffMs } };
}

/** The delay before retry `attemptsMade` (1 for the first) of a job with a `capped`, `emergency`, `notify` or `doubling` backoff. */
export function cappedDelay(attemptsMade: number, delay: number, type: string = CAPPED_BACKOFF): number {
  const max = isCappedBackoff(type) ? MAX_DELAY_MS[type]! : TAKEDOWN_MAX_DELAY_MS;
  return Math.min(delay * 2 ** Math.max(0, attemptsMade - 1), max);
}

/**
 * The workers' backoffStrategy: cappedDelay, or longer when the failure carries a server's
 * Retry-After (`retryAfterMs` on the error the job threw, see retryLater in workers.ts), which the
 * leak path's backoffs honour only up to their cap. 0 for a type that is not rekey's.
 */
export function retryDelay(attemptsMade: number, delay: number, type: string | undefined, error?: Error & { retryAfterMs?: number }): number {
  if (!isCappedBackoff(type)) return 0;
  const backoff = cappedDelay(attemptsMade, delay, type);
  const asked = error?.retryAfterMs ?? 0;
  return Math.max(backoff, URGENT.has(type) ? Math.min(asked, MAX_DELAY_MS[type]!) : asked);
}
