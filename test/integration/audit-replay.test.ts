/**
 * Invariant 7, "every state change writes an audit event", checked by replay rather than by a
 * list of expected lifecycles: after rotations, a rollback, a revoke of the current version (the
 * leak path and its emergency rotation) and a decommission, each version's `version.<state>`
 * events, in chain order, must start at `issuing`, move only along the lifecycle's edges and end
 * at the state the row holds. A path that changes a state without its event (a decommission that
 * audited only `secret.decommissioned`, say) leaves a gap the replay cannot cross.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { VERSION_STATES, type VersionState, canTransition } from '../../src/core/model.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { AuditLog } from '../../src/db/audit.js';
import { verifyAudit } from '../../src/db/audit-verify.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';

let h: Harness;
const JOURNAL = `audit-replay-${randomUUID()}`;
const SETTINGS = 'grace: 1h, retry: { attempts: 1, backoff: 10ms }';
const STATES: ReadonlySet<string> = new Set(VERSION_STATES);

beforeAll(async () => {
  h = await startHarness({ label: 'audit-replay' });
});
afterAll(() => h.stop());

const settled = () =>
  expect
    .poll(async () => (await h.runtime.db.run.count({ where: { status: 'running' } })) + (await h.runtime.db.version.count({ where: { state: { in: ['compromised', 'retired'] } } })), {
      timeout: 20_000,
    })
    .toBe(0);

it("each version's state events replay, edge by edge, to the state its row holds (rotations, rollback, revoke, decommission)", async () => {
  await h.apply(memoryConfig(JOURNAL, { kept: SETTINGS, swept: SETTINGS }));
  for (const secret of ['kept', 'swept']) {
    for (let i = 0; i < 3; i++) expect((await h.rotate(secret)).status).toBe('succeeded');
  }
  journal(JOURNAL).fail('verify:edge', 1, false);
  expect((await h.rotate('kept')).status).toBe('rolled_back');
  // The leak path: the current version compromised, replaced by an emergency rotation, revoked.
  const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'kept' }, state: 'current' } });
  await h.runtime.engine.revoke('kept', current.number);
  await settled();
  // Removed from the config, then decommissioned: its current and previous versions retired and revoked.
  await h.apply(memoryConfig(JOURNAL, { kept: SETTINGS }));
  expect((await h.runtime.engine.decommission('swept')).length).toBeGreaterThan(1);
  await expect.poll(() => h.runtime.db.version.count({ where: { secret: { name: 'swept' }, state: { not: 'revoked' } } }), { timeout: 20_000 }).toBe(0);
  await settled();

  const versions = await h.runtime.db.version.findMany({ include: { secret: true }, orderBy: [{ secretId: 'asc' }, { number: 'asc' }] });
  // The emergency rotation cut the grace of kept's earlier versions: current, failed and revoked are left.
  expect(new Set(versions.map((v) => v.state))).toEqual(new Set(['current', 'failed', 'revoked']));
  expect(versions.length).toBe(8);
  for (const version of versions) {
    const events = await h.runtime.db.auditEvent.findMany({ where: { versionId: version.id, action: { startsWith: 'version.' } }, orderBy: { seq: 'asc' } });
    const states = events.map((e) => e.action.slice('version.'.length)).filter((s): s is VersionState => STATES.has(s));
    const name = `${version.secret.name} v${version.number} (${states.join(' > ')})`;
    expect(states[0], name).toBe('issuing');
    for (let i = 1; i < states.length; i++) expect(canTransition(states[i - 1]!, states[i]!), `${name}: ${states[i - 1]} > ${states[i]}`).toBe(true);
    expect(states.at(-1), name).toBe(version.state);
  }
}, 120_000);

it('the chain verifies under its key; under another REKEY_AUDIT_KEY, verify names the key, not an edited row', async () => {
  const ours = await verifyAudit(h.runtime.db, h.runtime.audit);
  expect(ours.ok).toBe(true);
  const other = await verifyAudit(h.runtime.db, new AuditLog(SecretValue.of('d'.repeat(64))));
  expect(other.ok).toBe(false);
  expect(other.ok ? '' : other.problem).toMatch(/^was written under another REKEY_AUDIT_KEY \(key id [0-9a-f]{8}; this one is [0-9a-f]{8}\)$/);
});
