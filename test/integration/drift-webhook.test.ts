/**
 * The drift check against a webhook target whose receiver deduplicates by `webhook-id`, as the
 * Standard Webhooks spec tells receivers to (providers/webhook/test/receiver.ts). Driven by hand
 * (no workers), so the interleaving is exact: a `deployed` delivery that timed out at rekey lands
 * at the receiver after the rollback's `retired`; the drift check must take the version away again.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Receiver } from '../../providers/webhook/test/receiver.js';
import type { VersionRecord } from '../../src/core/model.js';
import { jobId } from '../../src/queue/names.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';
import { startSignedReceiver, type SignedReceiver } from '../support/signed-receiver.js';

const secret = `dw-${randomUUID().slice(0, 8)}`;
/** Two secrets on a webhook target without a state URL (probed): one kept in a store that fails its reads. */
const J = `drift-webhook-${randomUUID().slice(0, 8)}`;
const blind = { failing: `dwb-a-${randomUUID().slice(0, 8)}`, fine: `dwb-b-${randomUUID().slice(0, 8)}` };
let h: Harness;
let signed: SignedReceiver;
let receiver: Receiver;

beforeAll(async () => {
  signed = await startSignedReceiver('DRIFTHOOK');
  ({ receiver } = signed);
  h = await startHarness({ label: 'drift-webhook', workers: false });
  await h.apply(`
${signed.envAllow}
providers:
  vault: { type: local }
  hook: { type: webhook, url: "${receiver.url}", state: "${receiver.stateUrl}", insecure: true, secret: "${signed.secretRef}", timeoutMs: 300 }
  blind: { type: webhook, url: "${receiver.url}", insecure: true, secret: "${signed.secretRef}", timeoutMs: 300 }
  mem: { type: memory, journal: ${J} }
secrets:
  ${blind.failing}: { store: { provider: mem }, issuer: { type: random }, targets: [blind] }
  ${blind.fine}: { store: { provider: vault }, issuer: { type: random }, targets: [blind] }
  ${secret}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_dw_ }
    targets: [hook]
    grace: 1h
    retry: { attempts: 1, backoff: 100ms }
`);
}, 60_000);
afterAll(async () => {
  await h?.stop();
  await signed?.close();
});

const version = async (number: number): Promise<VersionRecord> => (await h.runtime.engine.deps.repo.findVersionByNumber(secret, number))!;
const check = () => h.runtime.engine.checkTarget('hook', [secret], { repair: true });

describe('webhook target: a late deployed delivery after the rollback', () => {
  it('is retired again by the drift check, although the receiver already processed a retired event for that version', async () => {
    // The deploy POST gets stuck on its way: rekey times out, and the run (one attempt) rolls back.
    const stuck = receiver.holdNext('deployed');
    const result = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
    if (result.status === 'stale') throw new Error('stale');
    await h.runtime.engine.driveRotation(result.run.id, { final: true }).catch(() => undefined);
    await stuck.arrived;
    const v1 = await version(1);
    expect(v1.state).toBe('failed');
    expect(receiver.processed.has(`msg_${v1.id}_retired`)).toBe(true);
    expect(receiver.held.has(v1.id)).toBe(false);

    // Now the stuck delivery is processed: the receiver holds the rolled-back version.
    stuck.release();
    await expect.poll(() => receiver.held.has(v1.id), { timeout: 10_000 }).toBe(true);

    expect((await check()).results[0]).toMatchObject({ unwanted: [1], retiring: [1] });
    await h.runtime.queues.queues.revocations.getJob(jobId.targetRetire(v1.id, 'hook')).then((job) => job?.remove());
    expect(await h.runtime.engine.retireDrifted(v1.id, 'hook')).toBe('succeeded');
    // The repair must really take it away: a dropped "duplicate" leaves the key live at the receiver.
    expect(receiver.held.has(v1.id)).toBe(false);
    expect((await check()).results[0]).toMatchObject({ unwanted: [] });
    // The repair is audited once, by the check that found it, and the sync status says it was repaired.
    const events = await h.runtime.db.auditEvent.findMany({ where: { action: 'target.drift', secret } });
    expect(events.map((e) => e.data)).toEqual([expect.objectContaining({ target: 'hook', found: { missing: [], unwanted: [1] }, done: { redeployed: [], retiring: [1] } })]);
    const { id: secretId } = await h.runtime.db.secret.findUniqueOrThrow({ where: { name: secret } });
    const sync = await h.runtime.db.targetSync.findUniqueOrThrow({ where: { secretId_target: { secretId, target: 'hook' } } });
    expect(sync.lastRepairedAt).not.toBeNull();
    expect(sync.lastInSyncAt!.getTime()).toBeGreaterThanOrEqual(sync.lastDriftAt!.getTime());
  });
});

describe('webhook target without a state URL (probed)', () => {
  it("a probe that fails for one secret is that secret's error: the other secrets of the target are still checked, and the check recorded", async () => {
    for (const name of [blind.failing, blind.fine]) {
      const result = await h.runtime.engine.requestRotation({ secret: name, trigger: 'manual' });
      if (result.status === 'stale') throw new Error('stale');
      expect(await h.runtime.engine.driveRotation(result.run.id, { final: true })).toBe('succeeded');
    }
    journal(J).fail('store.read'); // the failing secret's store cannot be read: its probe cannot read the value it sends
    try {
      const report = await h.runtime.engine.checkTarget('blind', [blind.failing, blind.fine], { repair: true });
      expect(report.results.map((r) => ({ secret: r.secret, method: r.method, failed: r.error !== undefined, missing: r.missing }))).toEqual([
        { secret: blind.failing, method: 'probe', failed: true, missing: [] },
        { secret: blind.fine, method: 'probe', failed: false, missing: [] },
      ]);
      const syncs = await h.runtime.db.targetSync.findMany({ where: { target: 'blind' }, include: { secret: { select: { name: true } } } });
      const byName = new Map(syncs.map((s) => [s.secret.name, s]));
      expect(byName.get(blind.failing)?.lastError).toMatch(/injected failure/);
      expect(byName.get(blind.fine)?.lastInSyncAt).not.toBeNull();
    } finally {
      journal(J).reset();
    }
  });
});
