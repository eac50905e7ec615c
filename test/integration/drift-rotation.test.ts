/**
 * The drift check against the rotation protocol, step by step (no workers: each rotation
 * attempt, each check and each repair job is driven by hand, so the interleavings are exact):
 * a pending version is left alone while its rotation deploys and verifies it, a version
 * retired while a repair deploys it is retired again, a retired version is never deployed
 * again, `rekey verify` exits 0 in sync and 1 naming the target and the difference, and a
 * target that keeps drifting is reported as such.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOCK_TOLERANCE_MS } from '../../src/core/context.js';
import { Engine } from '../../src/core/engine.js';
import type { RunRecord, StateRepository, VersionRecord } from '../../src/core/model.js';
import { jobId } from '../../src/queue/names.js';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig, type Journal } from '../support/memory-provider.js';

let h: Harness;
let j: Journal;
const JOURNAL = `drift-rotation-${randomUUID().slice(0, 8)}`;
const secret = `dr-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  j = journal(JOURNAL);
  h = await startHarness({ label: 'drift-rotation', workers: false });
  await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 1h, retry: { attempts: 3, backoff: 100ms }' }));
}, 60_000);
afterAll(async () => {
  await h?.stop();
});

const edge = () => j.accepted.get('edge') ?? new Map<string, string>();
const check = () => h.runtime.engine.checkTarget('edge', [secret], { repair: true });
const version = async (number: number, of = secret): Promise<VersionRecord> => (await h.runtime.engine.deps.repo.findVersionByNumber(of, number))!;

/** Starts a rotation and drives it until its verify step fails (the pending version is deployed, not promoted). */
async function rotationStuckAtVerify(): Promise<RunRecord> {
  j.fail('verify:edge', Infinity, true);
  const result = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  if (result.status === 'stale') throw new Error('stale');
  await expect(h.runtime.engine.driveRotation(result.run.id, { final: false })).rejects.toThrow(/injected failure at verify:edge/);
  return (await h.runtime.engine.deps.repo.getRun(result.run.id))!;
}

async function finish(run: RunRecord): Promise<void> {
  j.faults.length = 0;
  expect(await h.runtime.engine.driveRotation(run.id, { final: false })).toBe('succeeded');
}

describe('a drift check while a rotation runs', () => {
  it('leaves the pending version alone while its rotation deploys and verifies it', async () => {
    const run = await rotationStuckAtVerify();
    const pending = await version(1);
    expect(pending.state).toBe('pending');
    expect(edge().has(pending.fingerprint!)).toBe(true);
    const calls = j.calls.length;
    const report = await check();
    expect(report.results).toEqual([expect.objectContaining({ secret, missing: [], unwanted: [], redeployed: [], retiring: [] })]);
    expect(j.calls.slice(calls)).toEqual([]); // inspect is a read: no deploy, no retire
    expect(edge().has(pending.fingerprint!)).toBe(true);
    await finish(run);
  });

  it('puts back the current version deleted by hand without touching the pending one', async () => {
    const run = await rotationStuckAtVerify();
    const [current, pending] = [await version(1), await version(2)];
    edge().delete(current.fingerprint!);
    const calls = j.calls.length;
    const report = await check();
    expect(report.results[0]).toMatchObject({ missing: [1], unwanted: [], redeployed: [1], retiring: [] });
    expect(j.calls.slice(calls)).toEqual(['store.read', 'deploy:edge']);
    expect([...edge().keys()]).toEqual(expect.arrayContaining([current.fingerprint, pending.fingerprint]));
    await finish(run);
    expect((await version(1)).state).toBe('previous');
  });
});

describe('a version retired around a repair', () => {
  it('retired while the repair was deploying it: retired again through the revocations queue', async () => {
    const previous = await version(1);
    edge().delete(previous.fingerprint!);
    // Hold the repair's store read until the retirement has moved the version on.
    let release!: () => void;
    let reached!: () => void;
    const atRead = new Promise<void>((resolve) => (reached = resolve));
    const gate = new Promise<void>((resolve) => (release = resolve));
    const record = j.record.bind(j);
    j.record = async (call) => {
      if (call === 'store.read') {
        reached();
        await gate;
      }
      return record(call);
    };
    try {
      const checking = check();
      await atRead;
      expect(await h.runtime.engine.deps.repo.transition(previous.id, ['previous'], 'retired', { actor: 'test' })).toBe(true);
      release();
      expect((await checking).results[0]).toMatchObject({ missing: [1], redeployed: [1] });
    } finally {
      j.record = record;
    }
    expect(edge().has(previous.fingerprint!)).toBe(true);
    const job = await h.runtime.queues.queues.revocations.getJob(jobId.targetRetire(previous.id, 'edge'));
    expect(job?.name).toBe('target-retire');
    await job!.remove();
    expect(await h.runtime.engine.retireDrifted(previous.id, 'edge')).toBe('succeeded');
    expect(edge().has(previous.fingerprint!)).toBe(false);
  });

  it('a retired version is never deployed again, and is retired again when put back', async () => {
    const retired = await version(1);
    const calls = j.calls.length;
    expect((await check()).results[0]).toMatchObject({ missing: [], unwanted: [] });
    edge().set(retired.fingerprint!, secret);
    expect((await check()).results[0]).toMatchObject({ missing: [], unwanted: [1], retiring: [1] });
    expect(j.calls.slice(calls)).toEqual([]);
    expect(await h.runtime.engine.retireDrifted(retired.id, 'edge')).toBe('succeeded');
    expect(edge().has(retired.fingerprint!)).toBe(false);
    await h.runtime.queues.queues.revocations.getJob(jobId.targetRetire(retired.id, 'edge')).then((job) => job?.remove());
  });
});

describe('rekey verify', () => {
  it('exits 0 when every target is in sync', async () => {
    const result = await rekey(['verify', secret], h.childEnv());
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`edge  ${secret}  in sync (inspect)`);
  });

  it('exits 1 naming the target and what differs, recording only that it checked; --repair puts it right and records the drift', async () => {
    const current = await version(2);
    const sync = () => h.runtime.db.targetSync.findFirstOrThrow({ where: { target: 'edge', secret: { name: secret } } });
    const driftEvents = () => h.runtime.db.auditEvent.findMany({ where: { action: 'target.drift', secret }, orderBy: { seq: 'asc' } });
    const before = { sync: await sync(), events: (await driftEvents()).length };
    edge().delete(current.fingerprint!);
    const found = await rekey(['verify'], h.childEnv());
    expect(found.code).toBe(1);
    expect(found.stdout).toContain(`edge  ${secret}  DRIFT missing v2 (inspect)`);
    expect(edge().has(current.fingerprint!)).toBe(false); // without --repair, only a report
    // A check-only verify records that it checked, and nothing a repair would: no drift event, no streak.
    const checked = await sync();
    expect(checked.lastCheckedAt!.getTime()).toBeGreaterThan(before.sync.lastCheckedAt!.getTime());
    expect(checked.lastInSyncAt).toEqual(before.sync.lastInSyncAt);
    expect([checked.lastDriftAt, checked.lastDrift, checked.driftStreak, checked.lastRepairedAt]).toEqual([
      before.sync.lastDriftAt,
      before.sync.lastDrift,
      before.sync.driftStreak,
      before.sync.lastRepairedAt,
    ]);
    expect(await driftEvents()).toHaveLength(before.events);
    expect((await rekey(['status', secret], h.childEnv())).stdout).toMatch(/sync edge: NOT in sync, checked .* ago/);

    const repaired = await rekey(['verify', secret, '--repair'], h.childEnv());
    expect(repaired.code).toBe(1);
    expect(repaired.stdout).toContain('redeployed v2');
    const events = await driftEvents();
    expect(events).toHaveLength(before.events + 1);
    expect(events.at(-1)!.data).toMatchObject({ target: 'edge', found: { missing: [2], unwanted: [] }, done: { redeployed: [2], retiring: [] } });
    expect(await sync()).toMatchObject({ lastDrift: 'missing v2', driftStreak: 1 });
    expect((await rekey(['verify', secret], h.childEnv())).code).toBe(0);
  });

  it('a target that keeps drifting is logged at error level and flagged by rekey status', async () => {
    const current = await version(2);
    for (let i = 0; i < 3; i++) {
      edge().delete(current.fingerprint!);
      expect((await check()).results[0]).toMatchObject({ missing: [2], redeployed: [2] });
    }
    expect(h.logs.some((line) => line.includes('"level":50') && line.includes('target keeps drifting'))).toBe(true);
    const status = await rekey(['status', secret], h.childEnv());
    expect(status.stdout).toMatch(/sync edge: repaired, checked .* ago; last drift .* ago \(missing v2\), repaired .* ago/);
    expect(status.stdout).toContain('! drifted ');
  });
});

describe('a repair racing a retirement', () => {
  it('a previous version the retirement retires at the target while the repair deploys it, and marks retired after the repair looked: retired again', async () => {
    const other = `dr2-${randomUUID().slice(0, 8)}`;
    await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 1h, retry: { attempts: 3, backoff: 100ms }', [other]: 'grace: 1h' }));
    const rotate = async () => {
      const result = await h.runtime.engine.requestRotation({ secret: other, trigger: 'manual' });
      if (result.status === 'stale') throw new Error('stale');
      expect(await h.runtime.engine.driveRotation(result.run.id, { final: false })).toBe('succeeded');
    };
    await rotate();
    await rotate();
    const deps = h.runtime.engine.deps;
    const v1 = (await deps.repo.findVersionByNumber(other, 1))!;
    expect(v1.state).toBe('previous');
    edge().delete(v1.fingerprint!); // a gateway restarted without it, an hour's grace left: the check puts it back
    const deploying = j.hold('deploy:edge');
    const checking = h.runtime.engine.checkTarget('edge', [other], { repair: true });
    await deploying.reached;
    // Meanwhile a rotation promotes v3 (v1's grace cut to now) and v1's retirement, due, retires it at the
    // target; it records that and moves v1 on only after the repair has deployed it and read v1 again.
    await rotate();
    let recorded!: () => void;
    const atRecord = new Promise<void>((resolve) => (recorded = resolve));
    let record!: () => void;
    const recording = new Promise<void>((resolve) => (record = resolve));
    const repo = Object.create(deps.repo) as StateRepository;
    repo.setDelivery = async (...args) => {
      if (args[2] === 'retired') {
        recorded();
        await recording;
      }
      return deps.repo.setDelivery(...args);
    };
    const due = new Date(Date.now() + 2 * CLOCK_TOLERANCE_MS);
    const retiring = new Engine({ ...deps, repo, now: () => due }).retire(v1.id);
    await atRecord;
    expect(edge().has(v1.fingerprint!)).toBe(false);
    deploying.release();
    expect((await checking).results[0]).toMatchObject({ missing: [1], redeployed: [1] });
    // Its job, run while the retirement is still under way, waits for it (retried), rather than doing nothing.
    await expect(h.runtime.engine.retireDrifted(v1.id, 'edge')).rejects.toThrow(/being taken down/);
    record();
    expect(await retiring).toBe('succeeded');
    expect((await version(1, other)).state).toBe('revoked');
    // The repair put back a key its retirement had already taken away: it is retired again.
    expect(edge().has(v1.fingerprint!)).toBe(true);
    const job = await h.runtime.queues.queues.revocations.getJob(jobId.targetRetire(v1.id, 'edge'));
    expect(job?.name).toBe('target-retire');
    await job!.remove();
    expect(await h.runtime.engine.retireDrifted(v1.id, 'edge')).toBe('succeeded');
    expect(edge().has(v1.fingerprint!)).toBe(false);
  });
});

// A retirement job a check queued may run once its version is wanted again: it retires only a
// version the target must refuse (here the current one, which it must accept).
it('a drift retirement of a version the target must accept does nothing at the target', async () => {
  const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: secret }, state: 'current' } });
  expect(edge().has(current.fingerprint!)).toBe(true);
  const calls = j.calls.length;
  expect(await h.runtime.engine.retireDrifted(current.id, 'edge')).toBe('skipped');
  expect(j.calls.slice(calls)).toEqual([]);
  expect(edge().has(current.fingerprint!)).toBe(true);
});
