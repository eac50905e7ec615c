/**
 * One driver per rotation run (a lease in PostgreSQL): two workers driving the same run at
 * once (what a Redis restart can cause) make one credential, not two; a lease left by a
 * driver that died is taken over once it expires.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Engine } from '../../src/core/engine.js';
import { RekeyError } from '../../src/core/errors.js';
import type { StateRepository } from '../../src/core/model.js';
import { Runtime } from '../../src/runtime.js';
import { startHarness, testModules, type Harness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';

let h: Harness;
let other: Runtime;
const JOURNAL = `lease-${randomUUID()}`;
const j = journal(JOURNAL);

beforeAll(async () => {
  h = await startHarness({ label: 'lease', workers: false });
  other = new Runtime({ actor: 'other', settings: h.settings, modules: testModules, log: h.runtime.log, leaseMs: 1000 });
  await h.apply(`
providers:
  mem: { type: memory, journal: ${JOURNAL} }
secrets:
  contended:
    store: { provider: mem }
    issuer: { provider: mem }
    targets: [mem]
`);
});
afterAll(async () => {
  await other.close();
  await h.stop();
});

async function newRun(): Promise<string> {
  const result = await h.runtime.engine.requestRotation({ secret: 'contended', trigger: 'manual' });
  if (result.status === 'stale') throw new Error('stale');
  return result.run.id;
}

/** A version promoted by a rotation of its own, current when this returns. */
async function promoted() {
  const runId = await newRun();
  await expect(h.runtime.engine.driveRotation(runId, { final: false })).resolves.toBe('succeeded');
  return (await h.runtime.engine.deps.repo.getVersion((await h.runtime.engine.deps.repo.getRun(runId))!.versionId!))!;
}

/** An engine whose lease renewals wait until `resume` (a driver in a long pause renews nothing). */
function pausedRenewals(): { engine: Engine; resume: () => void } {
  const deps = h.runtime.engine.deps;
  let resume!: () => void;
  const pause = new Promise<void>((resolve) => (resume = resolve));
  const repo = Object.create(deps.repo) as StateRepository;
  repo.renewLease = async (...args) => {
    await pause;
    return deps.repo.renewLease(...args);
  };
  return { engine: new Engine({ ...deps, repo }), resume };
}

/** An engine on `leaseMs` leases that PostgreSQL never answers once its lease is granted: every renewal fails. */
function unrenewable(leaseMs: number): Engine {
  const deps = h.runtime.engine.deps;
  const repo = Object.create(deps.repo) as StateRepository;
  repo.renewLease = () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
  return new Engine({ ...deps, repo, leaseMs });
}

/** Drives `runId` with `engine` as soon as whoever holds its lease lets it go or lets it run out. */
async function driveOnceFree(engine: Engine, runId: string, final: boolean): Promise<unknown> {
  for (;;) {
    try {
      return await engine.driveRotation(runId, { final });
    } catch (error) {
      if (!/being driven by another worker/.test(String(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/**
 * Drives run `runId` with a driver that stalls at the next provider call named `call` (a long GC
 * pause: it renews nothing meanwhile, its timers wait too) while another worker, once the stalled
 * driver's lease has run out (set, not waited for), drives the run to the end. Returns the stalled
 * drive and `resume`, which ends the pause (the held call returns, renewals go out).
 */
async function stallPastLease(runId: string, call: string, final: boolean): Promise<{ stalled: Promise<unknown>; resume: () => void }> {
  const paused = pausedRenewals();
  const held = j.hold(call);
  const stalled = paused.engine.driveRotation(runId, { final });
  stalled.catch(() => {}); // awaited by the test
  await held.reached;
  await h.runtime.db.$executeRaw`UPDATE runs SET lease_until = now() - interval '1 second' WHERE id = ${runId}::uuid`;
  await expect(other.engine.driveRotation(runId, { final: false })).resolves.toBe('succeeded');
  return {
    stalled,
    resume: () => {
      paused.resume();
      held.release();
    },
  };
}

it('two workers driving one run at once: one drives, the other is refused; one credential', async () => {
  const runId = await newRun();
  j.reset();
  j.delayMs = 100; // every provider call takes a while, so the two drives overlap
  try {
    const results = await Promise.allSettled([h.runtime.engine.driveRotation(runId, { final: false }), other.engine.driveRotation(runId, { final: false })]);
    const fulfilled = results.filter((r) => r.status === 'fulfilled');
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(fulfilled).toHaveLength(1);
    expect(rejected).toHaveLength(1);
    expect(String(rejected[0]!.reason)).toMatch(/being driven by another worker/);
  } finally {
    j.delayMs = 0;
  }
  expect(j.calls.filter((c) => c === 'issue')).toHaveLength(1);
  expect((await h.runtime.engine.deps.repo.getRun(runId))?.status).toBe('succeeded');
  // The refusal recorded nothing on the run: it was not the refused driver's to record.
  expect((await h.runtime.engine.deps.repo.getRun(runId))?.error).toBeNull();
});

it("a dead driver's lease is taken over once it expires", async () => {
  const runId = await newRun();
  expect(await h.runtime.engine.deps.repo.takeLease(runId, 'a worker that died', 500)).toBe(true);
  await expect(other.engine.driveRotation(runId, { final: false })).rejects.toThrow(/being driven by another worker/);
  await new Promise((resolve) => setTimeout(resolve, 600));
  await expect(other.engine.driveRotation(runId, { final: false })).resolves.toBe('succeeded');
});

it('a driver that stalls past its lease while issuing (a long GC pause) records nothing over its successor and revokes what it issued', async () => {
  const runId = await newRun();
  const deps = h.runtime.engine.deps;
  const before = new Set(j.issued.keys());
  const { stalled, resume } = await stallPastLease(runId, 'issue', false);
  // The pause ends: the stalled driver's issue() returns, and its renewals go out.
  resume();
  await expect(stalled).rejects.toThrow(/taken over by another worker/);

  const run = (await deps.repo.getRun(runId))!;
  expect(run.status).toBe('succeeded');
  const version = (await deps.repo.getVersion(run.versionId!))!;
  expect(version.state).toBe('current');
  // The version still describes the credential the store and the target hold: a leak of it is matched, its retirement revokes it.
  const stored = [...j.stored.values()].find((s) => s.versionId === version.id)!;
  expect(deps.fingerprint(stored.value)).toBe(version.fingerprint);
  expect(j.accepted.get('mem')?.has(version.fingerprint!)).toBe(true);
  const serials = [...j.issued.keys()].filter((s) => !before.has(s));
  expect(serials).toHaveLength(2);
  const recorded = (version.issuerState as { serial: string }).serial;
  expect(j.issued.get(recorded)).toBe(stored.value.reveal());
  // The stalled driver's credential was recorded nowhere: it revoked it itself.
  expect(serials.filter((s) => s !== recorded).every((s) => j.revoked.has(s))).toBe(true);
  expect(j.revoked.has(recorded)).toBe(false);
});

it('a driver that stalls past its lease while verifying, then fails, rolls back nothing its successor promoted', async () => {
  const runId = await newRun();
  const deps = h.runtime.engine.deps;
  // Its last attempt: a failure there rolls the rotation back.
  const { stalled, resume } = await stallPastLease(runId, 'verify:mem', true);
  // The pause ends and the stalled driver's verify fails (the gateway answered it late, with an error).
  j.fail('verify:mem', 1, false);
  resume();
  await expect(stalled).rejects.toThrow(/taken over by another worker/);

  const run = (await deps.repo.getRun(runId))!;
  expect([run.status, run.step]).toEqual(['succeeded', 'done']);
  const version = (await deps.repo.getVersion(run.versionId!))!;
  expect(version.state).toBe('current');
  // The current key still works everywhere: at the target, at the issuer, in the store.
  expect(j.accepted.get('mem')?.has(version.fingerprint!)).toBe(true);
  expect(j.revoked.has((version.issuerState as { serial: string }).serial)).toBe(false);
  expect([...j.stored.values()].some((s) => s.versionId === version.id)).toBe(true);
});

/**
 * A driver stalled past its lease in store.promote (its renewals paused, its lease run out), and its
 * successor, whose own promotion fails for good on its last attempt, rolling the run back, held at
 * `holdAt`. `land()` ends the stall: the stalled driver's store.promote reaches the store.
 */
async function stalledPromotionDuringRollback(holdAt: string) {
  const before = await promoted();
  const runId = await newRun();
  const paused = pausedRenewals();
  j.reset();
  const promoting = j.hold('store.promote');
  const stalled = paused.engine.driveRotation(runId, { final: false });
  stalled.catch(() => {}); // awaited by land()
  await promoting.reached;
  await h.runtime.db.$executeRaw`UPDATE runs SET lease_until = now() - interval '1 second' WHERE id = ${runId}::uuid`;
  j.fail('store.promote', 1, false);
  const held = j.hold(holdAt);
  const rollingBack = other.engine.driveRotation(runId, { final: true });
  await held.reached;
  const land = async () => {
    paused.resume();
    promoting.release();
    await expect(stalled).rejects.toThrow(/taken over by another worker/);
  };
  return { before, runId, held, rollingBack, land };
}

it('a driver that stalls past its lease in store.promote promotes nothing while its successor rolls the run back', async () => {
  const deps = h.runtime.engine.deps;
  // The successor is held while it retires the version at the target; the stalled promotion lands then.
  const { before, runId, held: retiring, rollingBack, land } = await stalledPromotionDuringRollback('retire:mem');
  const secretId = before.secretId;
  await land();
  // The store refused it: the rollback destroyed the version there before going to the targets, and a
  // store promotes no destroyed version. Its readers never got the rolled-back version as current.
  const rolledBack = (await deps.repo.getRun(runId))!.versionId!;
  expect([...j.stored.values()].filter((s) => s.stages.includes('current')).map((s) => s.versionId)).toEqual([before.id]);
  retiring.release();
  await expect(rollingBack).resolves.toBe('rolled_back');

  const run = (await deps.repo.getRun(runId))!;
  expect([run.status, run.step, run.versionId]).toEqual(['rolled_back', 'rollback', rolledBack]);
  expect((await deps.repo.getVersion(run.versionId!))?.state).toBe('failed');
  // The version current before is current still, and still works at the target and at the issuer.
  expect((await deps.repo.currentVersion(secretId))?.id).toBe(before.id);
  expect(j.accepted.get('mem')?.has(before.fingerprint!)).toBe(true);
  expect(j.revoked.has((before.issuerState as { serial: string }).serial)).toBe(false);
  // And the store serves it as current, with the rolled-back version gone.
  expect(j.stored.get(before.storeVersionId!)?.stages).toEqual(['current']);
  expect(j.stored.has((await deps.repo.getVersion(run.versionId!))!.storeVersionId!)).toBe(false);
});

it("a stalled driver's promotion that lands before its successor's rollback reaches the store is given back before the version is revoked", async () => {
  const deps = h.runtime.engine.deps;
  // The successor is held as it destroys the version in the store; the stalled promotion lands first:
  // the store serves the rolled-back version as current.
  const { before, runId, held: destroying, rollingBack, land } = await stalledPromotionDuringRollback('store.destroy');
  await land();
  const rolledBack = (await deps.repo.getRun(runId))!.versionId!;
  const served = () => [...j.stored.values()].filter((s) => s.stages.includes('current')).map((s) => s.versionId);
  expect(served()).toEqual([rolledBack]);
  // The store refuses the successor's destroy; it gives current back and destroys, then revokes.
  const revoking = j.hold('revoke');
  const from = j.calls.length;
  destroying.release();
  await revoking.reached;
  const servedAtRevoke = served();
  revoking.release();
  await expect(rollingBack).resolves.toBe('rolled_back');
  expect(servedAtRevoke).toEqual([before.id]);
  expect(j.calls.slice(from)).toEqual(['store.promote', 'store.destroy', 'retire:mem', 'revoke']);
  expect((await deps.repo.getVersion(rolledBack))?.state).toBe('failed');
  expect(j.stored.get(before.storeVersionId!)?.stages).toEqual(['current']);
});

it("a rollback revokes its version only once the store no longer serves it as current: a stalled driver's late promotion is given back first", async () => {
  const deps = h.runtime.engine.deps;
  // The successor is held as it retires the version at the target; the stalled promotion reaches the store then.
  const { before, runId, held: retiring, rollingBack, land } = await stalledPromotionDuringRollback('retire:mem');
  await land();
  // What the store serves as current when the issuer is asked to revoke the rolled-back version.
  const revoking = j.hold('revoke');
  retiring.release();
  await revoking.reached;
  const rolledBack = (await deps.repo.getRun(runId))!.versionId!;
  const servedAtRevoke = [...j.stored.values()].filter((s) => s.stages.includes('current')).map((s) => s.versionId);
  revoking.release();
  await expect(rollingBack).resolves.toBe('rolled_back');
  // A store serving a revoked key as current hands every reader a dead key: it serves the version current before.
  expect(servedAtRevoke).not.toContain(rolledBack);
  expect(servedAtRevoke).toEqual([before.id]);
  expect(j.stored.get(before.storeVersionId!)?.stages).toEqual(['current']);
  expect((await deps.repo.getVersion(rolledBack))?.state).toBe('failed');
});

it('a driver cut off from PostgreSQL calls no provider once its lease has run out, though no renewal was refused', async () => {
  const runId = await newRun();
  const deps = h.runtime.engine.deps;
  j.reset();
  // It deploys while PostgreSQL stops answering it: its renewals fail, none is refused.
  const deploying = j.hold('deploy:mem');
  const cutOff = unrenewable(1000).driveRotation(runId, { final: false });
  cutOff.catch(() => {}); // awaited below
  await deploying.reached;
  // Its lease runs out in PostgreSQL (one second after it was granted), and another worker drives the run to the end.
  await expect(driveOnceFree(other.engine, runId, false)).resolves.toBe('succeeded');
  const before = j.calls.length;
  // Its deploy returns: it has held nothing for a while, and must not go on to verify or promote.
  deploying.release();
  await expect(cutOff).rejects.toThrow(/taken over by another worker/);
  expect(j.calls.slice(before)).toEqual([]);
  const run = (await deps.repo.getRun(runId))!;
  expect([run.status, run.step, run.error]).toEqual(['succeeded', 'done', null]);
});

it("a driver that stalls past its lease in a target's verify moves no step of its successor's back: the successor's rollback stays one", async () => {
  const runId = await newRun();
  const deps = h.runtime.engine.deps;
  const paused = pausedRenewals();
  j.reset();
  const verifying = j.hold('verify:mem');
  const stalled = paused.engine.driveRotation(runId, { final: false });
  stalled.catch(() => {}); // awaited below
  await verifying.reached;
  await h.runtime.db.$executeRaw`UPDATE runs SET lease_until = now() - interval '1 second' WHERE id = ${runId}::uuid`;
  // The successor's promotion fails for good, on its last attempt: it rolls the run back, and is held while it retires the version at the target.
  j.fail('store.promote', 1, false);
  const retiring = j.hold('retire:mem');
  const rollingBack = other.engine.driveRotation(runId, { final: true });
  await retiring.reached;
  const before = j.calls.length;
  // The pause ends: the stalled driver's verify succeeds, late, and it records that (deliveries verified, step promote).
  paused.resume();
  verifying.release();
  await expect(stalled).rejects.toThrow(/taken over by another worker/);
  expect((await deps.repo.getRun(runId))?.step).toBe('rollback');
  expect(j.calls.slice(before)).toEqual([]);
  retiring.release();
  await expect(rollingBack).resolves.toBe('rolled_back');
  const run = (await deps.repo.getRun(runId))!;
  expect([run.status, run.step]).toEqual(['rolled_back', 'rollback']);
  expect((await deps.repo.deliveries(run.versionId!)).map((d) => [d.target, d.status])).toEqual([['mem', 'retired']]);
});

it("a driver that stalls past its lease in store.promote, then fails, puts no error on its successor's run", async () => {
  const runId = await newRun();
  const deps = h.runtime.engine.deps;
  const { stalled, resume } = await stallPastLease(runId, 'store.promote', false);
  // The pause ends and the stalled driver's store.promote fails (the store answered it late, with an error).
  j.fail('store.promote', 1, false);
  resume();
  await expect(stalled).rejects.toThrow(/taken over by another worker/);
  const run = (await deps.repo.getRun(runId))!;
  expect([run.status, run.step, run.error]).toEqual(['succeeded', 'done', null]);
});

it("a driver that stalls past its lease reading its value back records no pending version under its successor's issue", async () => {
  const runId = await newRun();
  const deps = h.runtime.engine.deps;
  const paused = pausedRenewals();
  j.reset();
  // It has issued, recorded and stored the value, and reads it back before recording the version pending.
  const reading = j.hold('store.read');
  const stalled = paused.engine.driveRotation(runId, { final: false });
  stalled.catch(() => {}); // awaited below
  await reading.reached;
  await h.runtime.db.$executeRaw`UPDATE runs SET lease_until = now() - interval '1 second' WHERE id = ${runId}::uuid`;
  // The successor finds the version issued and looks for it in the store, held there.
  const listing = j.hold('store.list');
  const successor = other.engine.driveRotation(runId, { final: false });
  await listing.reached;
  const before = j.calls.length;
  // The pause ends: the stalled driver's read returns, and it would record the version pending, at deploy, and deploy it.
  paused.resume();
  reading.release();
  await expect(stalled).rejects.toThrow(/taken over by another worker/);
  const versionId = (await deps.repo.getRun(runId))!.versionId!;
  expect([(await deps.repo.getRun(runId))?.step, (await deps.repo.getVersion(versionId))?.state]).toEqual(['issue', 'issuing']);
  expect(j.calls.slice(before)).toEqual([]);
  listing.release();
  await expect(successor).resolves.toBe('succeeded');
  const version = (await deps.repo.getVersion(versionId))!;
  expect(version.state).toBe('current');
  expect(deps.fingerprint(j.stored.get(version.storeVersionId!)!.value)).toBe(version.fingerprint);
});

it('a delivery row is written for a lease owner only while it holds the run', async () => {
  const runId = await newRun();
  const deps = h.runtime.engine.deps;
  await expect(h.runtime.engine.driveRotation(runId, { final: false })).resolves.toBe('succeeded');
  const versionId = (await deps.repo.getRun(runId))!.versionId!;
  // A rotation's late write (its run finished by another driver) is refused; a retirement's (no lease) is not.
  expect(await deps.repo.setDelivery(versionId, 'mem', 'failed', { actor: 'test', runId }, 'answered late', 'a driver that stalled')).toBe(false);
  expect((await deps.repo.deliveries(versionId)).map((d) => [d.target, d.status, d.lastError])).toEqual([['mem', 'verified', null]]);
  expect(await deps.repo.setDelivery(versionId, 'mem', 'verified', { actor: 'test', runId })).toBe(true);
});

it('a driver that stalls past its lease in store.promote, resumed after a later rotation, leaves the store current on the newest version and touches nothing more', async () => {
  const runId = await newRun();
  const deps = h.runtime.engine.deps;
  // Its successor finishes the run while its store.promote is held (delayed on the wire, say).
  const { stalled, resume } = await stallPastLease(runId, 'store.promote', false);
  // A later rotation promotes a newer version.
  const later = await newRun();
  await expect(other.engine.driveRotation(later, { final: false })).resolves.toBe('succeeded');
  const newest = (await deps.repo.getVersion((await deps.repo.getRun(later))!.versionId!))!;
  const calls = j.calls.length;
  // The pause ends: the late store.promote reaches the store, which refuses it (its current stage moved).
  resume();
  await expect(stalled).rejects.toThrow(/taken over by another worker/);
  expect(j.calls.slice(calls)).toEqual([]);

  // The store's readers get the newest version, the one rekey holds current.
  const storeCurrent = [...j.stored.values()].filter((s) => s.stages.includes('current')).map((s) => deps.fingerprint(s.value));
  expect(storeCurrent).toEqual([newest.fingerprint]);
  expect((await deps.repo.currentVersion(newest.secretId))?.id).toBe(newest.id);
  const run = (await deps.repo.getRun(runId))!;
  expect([run.status, run.error]).toEqual(['succeeded', null]);
});

it("a driver that stalls past its lease after its secret could not be resolved fails no version and closes no run of its successor's", async () => {
  const runId = await newRun();
  const deps = h.runtime.engine.deps;
  j.reset();
  // Its secret resolves to nothing (final: the run fails); it stalls (a long GC pause, renewing nothing) just before failing the version it made.
  let resume!: () => void;
  const pause = new Promise<void>((resolve) => (resume = resolve));
  let reached!: () => void;
  const failing = new Promise<void>((resolve) => (reached = resolve));
  const repo = Object.create(deps.repo) as StateRepository;
  repo.renewLease = async (...args) => {
    await pause;
    return deps.repo.renewLease(...args);
  };
  repo.transition = async (...args) => {
    reached();
    await pause;
    return deps.repo.transition(...args);
  };
  const providers = Object.create(deps.providers) as typeof deps.providers;
  providers.resolve = () => Promise.reject(new RekeyError('REKEY_ERR_INVALID', 'no revision binds the secret'));
  const stalled = new Engine({ ...deps, repo, providers }).driveRotation(runId, { final: true });
  stalled.catch(() => {}); // awaited below
  await failing;
  await h.runtime.db.$executeRaw`UPDATE runs SET lease_until = now() - interval '1 second' WHERE id = ${runId}::uuid`;
  // The successor resolves the secret and issues the run's version; it is held as it writes the value to the store.
  const writing = j.hold('store.writePending');
  const successor = other.engine.driveRotation(runId, { final: false });
  await writing.reached;
  // The pause ends: the stalled driver would fail the version its successor has issued, and close the run as failed.
  resume();
  await expect(stalled).rejects.toThrow(/taken over by another worker/);
  const versionId = (await deps.repo.getRun(runId))!.versionId!;
  expect([(await deps.repo.getRun(runId))?.status, (await deps.repo.getVersion(versionId))?.state]).toEqual(['running', 'issuing']);
  writing.release();
  await expect(successor).resolves.toBe('succeeded');
  expect((await deps.repo.getVersion(versionId))?.state).toBe('current');
});

it('a driver that stalls past its lease while undoing an emergency rotation never sends back to `issue` the run its successor started over', async () => {
  const runId = await newRun();
  const deps = h.runtime.engine.deps;
  // Zero grace: an emergency rotation, which starts over with a fresh version instead of rolling back.
  await deps.repo.setRunGrace(runId, 0, { actor: 'test', runId });
  const paused = pausedRenewals();
  j.reset();
  // Its promotion fails for good: it undoes its version, and is held as it retires it at the target.
  j.fail('store.promote', 1, false);
  const retiring = j.hold('retire:mem');
  const stalled = paused.engine.driveRotation(runId, { final: true });
  stalled.catch(() => {}); // awaited below
  await retiring.reached;
  const undone = (await deps.repo.getRun(runId))!.versionId!;
  await h.runtime.db.$executeRaw`UPDATE runs SET lease_until = now() - interval '1 second' WHERE id = ${runId}::uuid`;
  // The successor finds the run at `rollback`, undoes the version and starts the run over; its retry issues a fresh version, held at its verify.
  await expect(other.engine.driveRotation(runId, { final: false })).rejects.toThrow(/starts over with a fresh version/);
  const verifying = j.hold('verify:mem');
  const retry = other.engine.driveRotation(runId, { final: false });
  await verifying.reached;
  const fresh = (await deps.repo.getRun(runId))!.versionId!;
  expect(fresh).not.toBe(undone);
  // The pause ends: the stalled driver's retire returns, and it would start the run over again, dropping the fresh version.
  paused.resume();
  retiring.release();
  await expect(stalled).rejects.toThrow(/taken over by another worker/);
  const run = (await deps.repo.getRun(runId))!;
  expect([run.status, run.step, run.versionId]).toEqual(['running', 'deploy', fresh]); // deploy and verify commit once
  verifying.release();
  await expect(retry).resolves.toBe('succeeded');
  expect([(await deps.repo.getVersion(fresh))?.state, (await deps.repo.getVersion(undone))?.state]).toEqual(['current', 'failed']);
});

it('a run is finished or restarted, and its version failed, for a lease owner only while it holds the run', async () => {
  const runId = await newRun();
  const deps = h.runtime.engine.deps;
  const ctx = { actor: 'test', runId };
  expect(await deps.repo.takeLease(runId, 'the holder', 60_000)).toBe(true);
  const version = await deps.repo.createVersion(runId, ctx);
  // A driver that stalled past its lease: each refused, nothing written.
  expect(await deps.repo.transition(version.id, ['issuing'], 'failed', ctx, 'a driver that stalled')).toBeNull();
  expect(await deps.repo.restartRun(runId, ctx, 'a driver that stalled')).toBe(false);
  expect(await deps.repo.finishRun(runId, 'rolled_back', ctx, 'answered late', 'a driver that stalled')).toBe(false);
  const run = (await deps.repo.getRun(runId))!;
  expect([run.status, run.versionId, (await deps.repo.getVersion(version.id))?.state]).toEqual(['running', version.id, 'issuing']);
  // The holder's own are made.
  expect(await deps.repo.transition(version.id, ['issuing'], 'failed', ctx, 'the holder')).toBe(true);
  expect(await deps.repo.restartRun(runId, ctx, 'the holder')).toBe(true);
  expect(await deps.repo.finishRun(runId, 'rolled_back', ctx, undefined, 'the holder')).toBe(true);
  expect((await deps.repo.getRun(runId))?.status).toBe('rolled_back');
});

it('a driver whose renewals failed while its lease ran out never takes the run back, though its successor let it go', async () => {
  const runId = await newRun();
  const deps = h.runtime.engine.deps;
  j.reset();
  // It deploys while PostgreSQL stops answering it: its renewals fail, and its lease runs out.
  let reachable = false;
  let renewed!: () => void;
  const answered = new Promise<void>((resolve) => (renewed = resolve));
  const repo = Object.create(deps.repo) as StateRepository;
  // Renewals fail until PostgreSQL is reachable again (takeLease too: what RunLease renewed with before renewLease).
  for (const name of ['renewLease', 'takeLease'] as const) {
    repo[name] = async (...args) => {
      if (!reachable) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      try {
        return await deps.repo[name](...args);
      } finally {
        renewed();
      }
    };
  }
  const deploying = j.hold('deploy:mem');
  const cutOff = new Engine({ ...deps, repo, leaseMs: 1000 }).driveRotation(runId, { final: false });
  cutOff.catch(() => {}); // awaited below
  await deploying.reached;
  // Another worker takes the run over once the lease has run out, fails (retryably) and lets it go.
  j.fail('store.read', 1, true);
  await expect(driveOnceFree(other.engine, runId, false)).rejects.toThrow(/injected failure at store.read/);
  // PostgreSQL answers the cut-off driver again: its next renewal reaches it before its deploy returns.
  reachable = true;
  await answered;
  const before = j.calls.length;
  deploying.release();
  await expect(cutOff).rejects.toThrow(/taken over by another worker/);
  expect(j.calls.slice(before)).toEqual([]);
  const run = (await deps.repo.getRun(runId))!;
  expect([run.status, run.step]).toEqual(['running', 'deploy']);
  await expect(other.engine.driveRotation(runId, { final: false })).resolves.toBe('succeeded');
});
