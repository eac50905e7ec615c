/**
 * The rotation protocol's call order (Infisical's pattern): every provider call is
 * recorded, and the sequence is asserted for success and for a failure at every step,
 * including the rollback that follows. Current is untouched by every failure.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SecretValue } from '../../src/core/secret-value.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig, type Journal } from '../support/memory-provider.js';

let h: Harness;
let j: Journal;
let secret: string;

const config = (name: string, journalName: string, attempts: number) => memoryConfig(journalName, { [name]: `grace: 300ms, retry: { attempts: ${attempts}, backoff: 50ms }, timeout: 2s` });

beforeAll(async () => (h = await startHarness({ label: 'protocol' })));
afterAll(() => h.stop());

/** A fresh secret with one current version (v1), its journal cleared. */
async function withCurrent(attempts = 1): Promise<void> {
  secret = `api-${randomUUID().slice(0, 8)}`;
  const name = `j-${secret}`;
  j = journal(name);
  await h.apply(config(secret, name, attempts));
  expect((await h.rotate(secret)).status).toBe('succeeded');
  j.reset();
}

async function versions() {
  return h.runtime.db.version.findMany({ where: { secret: { name: secret } }, orderBy: { number: 'asc' }, select: { number: true, state: true } });
}

const v2 = ['issue', 'store.writePending', 'store.read', 'deploy:edge', 'issuer.verify', 'verify:edge', 'store.promote'];

describe('rotation call order', () => {
  beforeEach(() => withCurrent());

  it('succeeds in protocol order, then retires the previous version after its grace', async () => {
    const run = await h.rotate(secret);
    expect(run.status).toBe('succeeded');
    expect(j.calls).toEqual(v2);
    await expect.poll(() => versions(), { timeout: 5000 }).toEqual([
      { number: 1, state: 'revoked' },
      { number: 2, state: 'current' },
    ]);
    expect(j.calls.slice(v2.length)).toEqual(['retire:edge', 'revoke', 'store.destroy']);
  });

  const rollbacks: Array<[string, string[]]> = [
    // A failed issue() may have minted a credential all the same: revoked by version id, with no state.
    // The store destroys the version first (it then refuses to promote it), and before the issuer revokes it:
    // it never serves a revoked key as current.
    ['issue', ['issue', 'revoke']],
    ['store.writePending', ['issue', 'store.writePending', 'revoke']],
    ['store.read', ['issue', 'store.writePending', 'store.read', 'store.destroy', 'revoke']],
    ['deploy:edge', ['issue', 'store.writePending', 'store.read', 'deploy:edge', 'store.destroy', 'retire:edge', 'revoke']],
    ['issuer.verify', [...v2.slice(0, 5), 'store.destroy', 'retire:edge', 'revoke']],
    ['verify:edge', [...v2.slice(0, 6), 'store.destroy', 'retire:edge', 'revoke']],
    ['store.promote', [...v2, 'store.promote', 'store.destroy', 'retire:edge', 'revoke']],
  ];

  it.each(rollbacks)('a non-retryable failure at %s rolls back: %j', async (step, expected) => {
    j.fail(step, 1, false);
    const run = await h.rotate(secret);
    expect(run.status).toBe('rolled_back');
    expect(run.error).toContain(`injected failure at ${step}`);
    expect(j.calls).toEqual(expected);
    expect(await versions()).toEqual([
      { number: 1, state: 'current' },
      { number: 2, state: 'failed' },
    ]);
    // The target still accepts exactly the current version, and the store still serves it.
    const current = (await h.runtime.engine.deps.repo.currentVersion((await h.runtime.engine.deps.repo.getSecret(secret))!.id))!;
    expect([...j.accepted.get('edge')!.keys()]).toEqual([current.fingerprint]);
    const served = [...j.stored.values()].find((v) => v.stages.includes('current'));
    expect(served?.versionId).toBe(current.id);
  });
});

describe('retries', () => {
  beforeEach(() => withCurrent(3));

  it('retries a retryable failure with backoff and completes', async () => {
    j.fail('deploy:edge', 2, true);
    const run = await h.rotate(secret);
    expect(run.status).toBe('succeeded');
    expect(run.attempts).toBe(3);
    // Each retry resumes at the failed step, reading the value back from the store.
    expect(j.calls).toEqual([...v2.slice(0, 4), 'store.read', 'deploy:edge', 'store.read', 'deploy:edge', ...v2.slice(4)]);
  });

  it('rolls back after the last attempt', async () => {
    j.fail('verify:edge', Infinity, true);
    const run = await h.rotate(secret);
    expect(run.status).toBe('rolled_back');
    expect(run.attempts).toBe(3);
    const verifies = j.calls.filter((c) => c === 'verify:edge').length;
    expect(verifies).toBe(3);
    expect(j.calls.slice(-3)).toEqual(['store.destroy', 'retire:edge', 'revoke']);
  });
});

describe('a store changed outside rekey', () => {
  beforeEach(() => withCurrent(3));

  it('refuses the promotion when its current stage was moved by hand: the run rolls back at once, not after its retries, and the store keeps what was set', async () => {
    for (const v of j.stored.values()) v.stages = v.stages.filter((s) => s !== 'current');
    j.stored.set('set-by-hand', { secret, versionId: randomUUID(), value: SecretValue.of('set-by-hand'), stages: ['current'] });
    const run = await h.rotate(secret);
    expect(run.status).toBe('rolled_back');
    expect(run.attempts).toBe(1);
    expect(run.error).toContain('REKEY_ERR_CONFLICT');
    // The rollback's own promote (current back to v1, expecting v2) is refused too: nothing of the run's to give back.
    expect(j.calls).toEqual([...v2, 'store.promote', 'store.destroy', 'retire:edge', 'revoke']);
    expect(j.stored.get('set-by-hand')?.stages).toEqual(['current']);
    expect(await versions()).toEqual([
      { number: 1, state: 'current' },
      { number: 2, state: 'failed' },
    ]);
  });
});

describe('a rollback that cannot finish', () => {
  beforeEach(() => withCurrent(1));

  it('is retried past its budget and reported, never abandoned, and completes when the target is back', async () => {
    j.fail('verify:edge', 1, false); // the rotation fails and rolls back...
    j.fail('retire:edge', Infinity, true); // ...but the pending key cannot be removed from edge yet
    const result = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
    if (result.status === 'stale') throw new Error('stale');
    const budget = 1 * 5;
    await expect.poll(async () => (await h.runtime.engine.deps.repo.getRun(result.run.id))?.attempts, { timeout: 20_000, interval: 200 }).toBeGreaterThan(budget + 1);
    const stuck = await h.runtime.engine.deps.repo.getRun(result.run.id);
    expect(stuck).toMatchObject({ status: 'running', step: 'rollback' });
    expect(h.logs.some((line) => line.includes('run stuck past its retry budget'))).toBe(true);
    // /metrics renders at most once a second, and the gauges are sampled on their own tick.
    await expect.poll(async () => (await fetch(`${h.serving!.url}/metrics`)).text(), { timeout: 10_000 }).toMatch(/rekey_runs_stuck 1/);
    // The pending key is still accepted at edge: exactly why the run must not be given up.
    expect(j.accepted.get('edge')!.size).toBe(2);

    j.faults.length = 0;
    const finished = await h.waitForRun(result.run.id, 20_000);
    expect(finished.status).toBe('rolled_back');
    expect(j.accepted.get('edge')!.size).toBe(1);
    expect(await versions()).toEqual([
      { number: 1, state: 'current' },
      { number: 2, state: 'failed' },
    ]);
  }, 60_000);
});
