/** Prisma rows to core records. */
import type { DeliveryRecord, RunRecord, RunStatus, VersionRecord, VersionState } from '../core/model.js';
import type { JsonObject } from '../core/ports.js';

export const versionInclude = { secret: { select: { name: true } } } as const;

interface VersionRow {
  id: string;
  secretId: string;
  number: number;
  state: string;
  fingerprint: string | null;
  storeVersionId: string | null;
  issuerState: unknown;
  graceEndsAt: Date | null;
  promotedAt: Date | null;
  compromisedAt: Date | null;
  createdAt: Date;
  secret: { name: string };
}

export function toVersion(row: VersionRow): VersionRecord {
  return {
    id: row.id,
    secretId: row.secretId,
    secret: row.secret.name,
    number: row.number,
    state: row.state as VersionState,
    fingerprint: row.fingerprint,
    storeVersionId: row.storeVersionId,
    issuerState: (row.issuerState as JsonObject | null) ?? null,
    graceEndsAt: row.graceEndsAt,
    promotedAt: row.promotedAt,
    compromisedAt: row.compromisedAt,
    createdAt: row.createdAt,
  };
}

interface RunRow {
  id: string;
  secretId: string;
  kind: string;
  trigger: string;
  idempotencyKey: string;
  status: string;
  step: string;
  versionId: string | null;
  graceMs: number | null;
  attempts: number;
  error: string | null;
  startedAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
  secret: { name: string };
}

export function toRun(row: RunRow): RunRecord {
  return {
    id: row.id,
    secretId: row.secretId,
    secret: row.secret.name,
    kind: row.kind as RunRecord['kind'],
    trigger: row.trigger,
    idempotencyKey: row.idempotencyKey,
    status: row.status as RunStatus,
    step: row.step,
    versionId: row.versionId,
    graceMs: row.graceMs,
    attempts: row.attempts,
    error: row.error,
    startedAt: row.startedAt,
    updatedAt: row.updatedAt,
    finishedAt: row.finishedAt,
  };
}

export function toDelivery(row: { versionId: string; target: string; status: string; attempts: number; lastError: string | null }): DeliveryRecord {
  return { versionId: row.versionId, target: row.target, status: row.status as DeliveryRecord['status'], attempts: row.attempts, lastError: row.lastError };
}

/** Timestamp column a lifecycle state stamps when a version enters it. */
export const STATE_STAMPS: Partial<Record<VersionState, 'retiredAt' | 'revokedAt' | 'compromisedAt'>> = {
  retired: 'retiredAt',
  revoked: 'revokedAt',
  compromised: 'compromisedAt',
};
