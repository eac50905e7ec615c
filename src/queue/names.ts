/** Queue names, job names and deterministic job ids: duplicates of one piece of work collapse. */
export const QUEUES = ['rotations', 'revocations', 'retirements'] as const;
export type QueueName = (typeof QUEUES)[number];

export const jobId = {
  run: (runId: string) => `run.${runId}`,
  retire: (versionId: string) => `retire.${versionId}`,
  revoke: (versionId: string) => `revoke.${versionId}`,
  block: (versionId: string) => `block.${versionId}`,
  scheduler: (secret: string) => `rotate.${secret}`,
};

export interface RunJob {
  runId: string;
}
export interface VersionJob {
  versionId: string;
}
export interface ScheduledJob {
  secret: string;
}

/** BullMQ backoff type of leak takedowns: exponential from `delay`, capped at TAKEDOWN_MAX_DELAY_MS. */
export const CAPPED_BACKOFF = 'capped';
const TAKEDOWN_MAX_DELAY_MS = 2000;

/**
 * Retries of a leak takedown (revoke and block jobs): 250 ms, 500 ms, 1 s, then every 2 s
 * for about 4 minutes, after which reconcile() queues it again. A gateway back from an
 * outage refuses the leaked key within 2 s, where plain doubling would wait as long again
 * as the outage had lasted.
 */
export const TAKEDOWN_RETRY = { attempts: 120, backoff: { type: CAPPED_BACKOFF, delay: 250 } };

/** The delay before retry `attemptsMade` (1 for the first) of a job with a `capped` backoff. */
export function cappedDelay(attemptsMade: number, delay: number): number {
  return Math.min(delay * 2 ** Math.max(0, attemptsMade - 1), TAKEDOWN_MAX_DELAY_MS);
}
