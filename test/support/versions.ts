// A version row as core sees it, for unit tests of the lifecycle rules: `v<number>` of the
// secret `api-key`, created at `createdAt`, with whatever `extra` overrides.
import type { VersionRecord, VersionState } from '../../src/core/model.js';

export function versionRecord(number: number, state: VersionState, createdAt: Date, extra: Partial<VersionRecord> = {}): VersionRecord {
  return {
    id: `v${number}`,
    secretId: 's',
    secret: 'api-key',
    number,
    state,
    fingerprint: `fp-${number}`,
    storeVersionId: `sv-${number}`,
    issuerState: null,
    publicId: null,
    graceEndsAt: null,
    promotedAt: null,
    compromisedAt: null,
    createdAt,
    lastUsedAt: null,
    ...extra,
  };
}
