import { describe, expect, it } from 'vitest';
import type { JsonValue } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { AuditLog } from '../../src/db/audit.js';
import { TEST_AUDIT_KEY } from '../support/services.js';

const log = new AuditLog(SecretValue.of(TEST_AUDIT_KEY));
const row = (data: JsonValue) => ({ seq: 7n, chain: 'api-signing', at: new Date('2026-12-05T09:00:00.000Z'), actor: 'subject:app:x', action: 'delivery.token', secret: 'api-signing', versionId: null, runId: null, data, prevHash: 'p', keyId: log.keyId() });

// The hash covers the data with its keys sorted (jsonb reorders them): an object written in
// sort order is hashed from its own JSON, any other through the sorting walk. Both must agree.
describe('audit row hashes', () => {
  it('do not depend on the order of the data keys, flat or nested, whichever way the data is written', () => {
    const cases: Array<[JsonValue, JsonValue]> = [
      [{ audience: 'a', grant: 'g', version: 3, ok: true, none: null }, { none: null, ok: true, version: 3, grant: 'g', audience: 'a' }],
      [{ '10': 'x', '9': 'y', a: 'z' }, { a: 'z', '9': 'y', '10': 'x' }],
      [{ a: { d: 1, c: 2 }, b: [{ y: 1, x: 2 }] }, { b: [{ x: 2, y: 1 }], a: { c: 2, d: 1 } }],
      [{ a: 'é "quoted" \\ \n', b: 1.5e300 }, { b: 1.5e300, a: 'é "quoted" \\ \n' }],
    ];
    for (const [sorted, unsorted] of cases) expect(log.hashOf(row(sorted))).toBe(log.hashOf(row(unsorted)));
  });

  it('change with any value of the data', () => {
    expect(log.hashOf(row({ a: 'x', b: 1 }))).not.toBe(log.hashOf(row({ a: 'x', b: 2 })));
    expect(log.hashOf(row({ a: 'x', b: 1 }))).not.toBe(log.hashOf(row({ a: 'x', b: '1' })));
  });

  it('are the ones rows written before this release carry (a fixed vector)', () => {
    expect(log.hashOf(row({ version: 1, grant: 'mobile', audience: 'api' }))).toBe(FIXED);
    expect(log.hashOf(row({ audience: 'api', grant: 'mobile', version: 1 }))).toBe(FIXED);
  });
});

// Computed by the code before the sorted-keys shortcut (main at 3565c3b).
const FIXED = 'ef1837dc830318cff082d01610a0930b04e9caebec52600b55e36e520e382a25';
