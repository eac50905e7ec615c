/**
 * The repository enforces core's transitions table (VERSION_TRANSITIONS): a state change
 * the lifecycle does not allow is refused with REKEY_ERR_INVALID, whether asked for through
 * transition() or inside a promotion plan, and leaves the version and the audit log as they were.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planPromotion } from '../../src/core/lifecycle.js';
import type { RunRecord, StateRepository, VersionRecord } from '../../src/core/model.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let repo: StateRepository;
const audit = { actor: 'test' };

beforeAll(async () => {
  h = await startHarness({ label: 'lifecycle', workers: false });
  repo = h.runtime.engine.deps.repo;
  const journal = `lifecycle-${randomUUID()}`;
  await h.apply(`
providers:
  mem: { type: memory, journal: ${journal} }
secrets:
  api-key:
    store: { provider: mem }
    issuer: { type: random }
    targets: [mem]
`);
});
afterAll(() => h.stop());

/** Who drives the runs these tests make (promote() writes only for the lease's holder). */
const owner = 'test';

/** A fresh version in `issuing`, made the way a rotation makes it, its run leased to `owner`. */
async function issuingVersion(): Promise<{ runId: string; version: VersionRecord }> {
  const { run } = (await repo.createRotationRun({ secret: 'api-key', trigger: 'manual', idempotencyKey: `manual:${randomUUID()}`, graceMs: null, audit })) as { run: RunRecord };
  expect(await repo.takeLease(run.id, owner, 60_000)).toBe(true);
  const version = await repo.createVersion(run.id, audit);
  return { runId: run.id, version };
}

const auditEvents = () => h.runtime.db.auditEvent.count();

describe('the repository refuses a transition the lifecycle does not allow', () => {
  it('transition(): issuing -> current and failed -> pending are refused; nothing changes, nothing is audited', async () => {
    const { runId, version } = await issuingVersion();
    const before = await auditEvents();
    await expect(repo.transition(version.id, ['issuing'], 'current', audit)).rejects.toMatchObject({ code: 'REKEY_ERR_INVALID' });
    expect((await repo.getVersion(version.id))?.state).toBe('issuing');
    expect(await auditEvents()).toBe(before);

    expect(await repo.transition(version.id, ['issuing'], 'failed', audit)).toBe(true);
    await expect(repo.transition(version.id, ['failed'], 'pending', audit)).rejects.toMatchObject({ code: 'REKEY_ERR_INVALID' });
    expect((await repo.getVersion(version.id))?.state).toBe('failed');
    expect(await auditEvents()).toBe(before + 1);
    await repo.finishRun(runId, 'rolled_back', audit);
  });

  it('promote(): a plan with an illegal change is refused whole, in its transaction', async () => {
    const { runId, version } = await issuingVersion();
    const before = await auditEvents();
    // A plan that skips `pending`: core never builds one, the repository must not apply one.
    const illegal = await repo
      .promote(runId, ({ version: v, now }) => ({ changes: [{ version: v, to: 'current', set: { promotedAt: now }, audit: { action: 'version.current', data: {} } }], promotedAt: now, nextStep: 'finalize' }), audit, owner)
      .catch((error: unknown) => error);
    expect(illegal).toMatchObject({ code: 'REKEY_ERR_INVALID' });
    expect((await repo.getVersion(version.id))?.state).toBe('issuing');
    expect((await repo.getRun(runId))?.step).toBe('issue');
    expect((await repo.getSecret('api-key'))?.lastPromotedAt).toBeNull();
    expect(await auditEvents()).toBe(before);
    // And core's own plan for a version that is not pending is refused before anything is written.
    await expect(repo.promote(runId, (s) => planPromotion(s, 1000), audit, owner)).rejects.toMatchObject({ code: 'REKEY_ERR_COMPROMISED' });
    expect(await auditEvents()).toBe(before);
    await repo.transition(version.id, ['issuing'], 'failed', audit);
    await repo.finishRun(runId, 'rolled_back', audit);
  });

  it('promote(): core\'s plan applied to a pending version makes it current, stamps the secret and finishes the run in the same transaction', async () => {
    const { runId, version } = await issuingVersion();
    await repo.markPending(version.id, 'store-1', audit, { runId }, owner);
    const applied = (await repo.promote(runId, (s) => planPromotion(s, 1000), audit, owner))!;
    expect(applied.nextStep).toBe('done');
    expect((await repo.getVersion(version.id))?.state).toBe('current');
    const run = await repo.getRun(runId);
    expect([run?.step, run?.status, run?.finishedAt instanceof Date]).toEqual(['done', 'succeeded', true]);
    expect((await repo.getSecret('api-key'))?.lastPromotedAt).toEqual(applied.promotedAt);
  });
});
