/** Prisma rows to core records. */
import type { VersionRecord } from '../core/model.js';
import type { JsonObject } from '../core/ports.js';
import type { Prisma } from './generated/client.js';

export const versionInclude = { secret: { select: { name: true } } } as const;

type VersionRow = Prisma.VersionGetPayload<{ include: typeof versionInclude }>;

export function toVersion(row: VersionRow): VersionRecord {
  return {
    id: row.id,
    secretId: row.secretId,
    secret: row.secret.name,
    number: row.number,
    state: row.state,
    fingerprint: row.fingerprint,
    storeVersionId: row.storeVersionId,
    issuerState: (row.issuerState as JsonObject | null) ?? null,
    publicId: row.publicId,
    graceEndsAt: row.graceEndsAt,
    promotedAt: row.promotedAt,
    compromisedAt: row.compromisedAt,
    createdAt: row.createdAt,
    lastUsedAt: row.lastUsedAt,
  };
}
