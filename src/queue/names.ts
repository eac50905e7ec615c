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
