/**
 * The store conformance suite: run it against every SecretStore adapter.
 *   storeConformance('aws-secrets-manager', async () => ({ store, cleanup }))
 * The factory returns a store bound to a fresh, empty secret.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SecretStore, StoredRef } from '../../src/core/ports.js';
import type { AnyProviderModule } from '../../src/core/provider.js';
import { call, newVersion, rejection, stored } from './refs.js';

export interface StoreFixture {
  store: SecretStore;
  /** The provider module the store came from: its declarations must agree with the store. */
  module: AnyProviderModule;
  secret: string;
  cleanup?: () => Promise<void>;
}

export function storeConformance(name: string, open: () => Promise<StoreFixture>): void {
  describe(`store conformance: ${name}`, () => {
    let fixture: StoreFixture | undefined;
    const setup = async () => (fixture = await open());
    /** Writes a new pending version of the fixture's secret: its value and its stored ref. */
    const writeVersion = async ({ store, secret }: StoreFixture) => {
      const v = newVersion(secret);
      return { ...v, s: stored(v.ref, (await store.writePending(v.ref, v.value, call())).storeVersionId) };
    };
    afterEach(async () => {
      await fixture?.cleanup?.();
      fixture = undefined;
    });

    it('declares rotationMetadata exactly when its stores can describe a rotation (apply marks secrets by the declaration)', async () => {
      const { store, module } = await setup();
      expect(!!module.rotationMetadata).toBe(typeof store.describeRotation === 'function');
    });

    it('writes a pending version readable by id and by stage', async () => {
      const { store, secret } = await setup();
      const v = newVersion(secret);
      const { storeVersionId } = await store.writePending(v.ref, v.value, call());
      expect(storeVersionId).toBeTruthy();
      expect((await store.read({ storeVersionId }, call())).equals(v.value)).toBe(true);
      expect((await store.read({ stage: 'pending' }, call())).equals(v.value)).toBe(true);
      const listed = await store.list(call());
      expect(listed).toHaveLength(1);
      expect(listed[0]!.storeVersionId).toBe(storeVersionId);
      expect(listed[0]!.stages).toEqual(['pending']);
    });

    it('writePending is idempotent per versionId', async () => {
      const { store, secret } = await setup();
      const v = newVersion(secret);
      const first = await store.writePending(v.ref, v.value, call());
      const second = await store.writePending(v.ref, v.value, call());
      expect(second.storeVersionId).toBe(first.storeVersionId);
      expect(await store.list(call())).toHaveLength(1);
    });

    it('promote moves current and previous, and is idempotent', async () => {
      const { store, secret } = await setup();
      const a = newVersion(secret);
      const sa = stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId);
      await store.promote(sa, undefined, null, call());
      expect((await store.read({ stage: 'current' }, call())).equals(a.value)).toBe(true);

      const b = newVersion(secret);
      const sb = stored(b.ref, (await store.writePending(b.ref, b.value, call())).storeVersionId);
      await store.promote(sb, sa, sa, call());
      await store.promote(sb, sa, sa, call());
      expect((await store.read({ stage: 'current' }, call())).equals(b.value)).toBe(true);
      expect((await store.read({ stage: 'previous' }, call())).equals(a.value)).toBe(true);
      await expectNotFound(store.read({ stage: 'pending' }, call()));
      const stages = Object.fromEntries((await store.list(call())).map((v) => [v.storeVersionId, v.stages]));
      expect(stages[sb.storeVersionId]).toEqual(['current']);
      expect(stages[sa.storeVersionId]).toEqual(['previous']);
    });

    it('promote gives previous to the version it names: a rollback puts current back and keeps previous on the one in its grace', async () => {
      const opened = await setup();
      const { store } = opened;
      const write = () => writeVersion(opened);
      const a = await write();
      await store.promote(a.s, undefined, null, call());
      const b = await write();
      await store.promote(b.s, a.s, a.s, call());
      const c = await write();
      await store.promote(c.s, b.s, b.s, call());
      // The rotation of c fails after the store promoted it: core puts b back, naming a as previous
      // and expecting c (the rolled-back version) as current.
      await store.promote(b.s, a.s, c.s, call());
      await store.destroy(c.s, call());
      await store.promote(b.s, a.s, c.s, call()); // a retried rollback
      expect((await store.read({ stage: 'current' }, call())).equals(b.value)).toBe(true);
      expect((await store.read({ stage: 'previous' }, call())).equals(a.value)).toBe(true);
      await expectNotFound(store.read({ stage: 'pending' }, call()));
      const stages = Object.fromEntries((await store.list(call())).map((v) => [v.storeVersionId, v.stages]));
      expect(stages).toEqual({ [a.s.storeVersionId]: ['previous'], [b.s.storeVersionId]: ['current'] });
    });

    it('promote refuses when the current stage moved: a late promotion changes nothing, a repeat of the one that moved it succeeds', async () => {
      const opened = await setup();
      const { store } = opened;
      const write = () => writeVersion(opened);
      const a = await write();
      await store.promote(a.s, undefined, null, call());
      const b = await write();
      await store.promote(b.s, a.s, a.s, call());
      const c = await write();
      await store.promote(c.s, b.s, b.s, call());
      const d = await write(); // the next rotation's pending version
      // Promotions decided before c was current arrive late (their driver stalled past its lease):
      // b over a, and the first promotion of a, made when no version was current.
      for (const late of [() => store.promote(b.s, a.s, a.s, call()), () => store.promote(a.s, undefined, null, call())]) {
        const error = await rejection(late());
        expect(error.code).toBe('REKEY_ERR_CONFLICT');
        expect(error.retryable).toBe(false);
      }
      expect((await store.read({ stage: 'current' }, call())).equals(c.value)).toBe(true);
      expect((await store.read({ stage: 'previous' }, call())).equals(b.value)).toBe(true);
      expect((await store.read({ stage: 'pending' }, call())).equals(d.value)).toBe(true);
      // A repeat of c's own promotion (its response was lost) still succeeds: c is `next`.
      await store.promote(c.s, b.s, b.s, call());
      const stages = Object.fromEntries((await store.list(call())).map((v) => [v.storeVersionId, v.stages]));
      expect([stages[b.s.storeVersionId], stages[c.s.storeVersionId], stages[d.s.storeVersionId]]).toEqual([['previous'], ['current'], ['pending']]);
    });

    it('promote refuses a destroyed version, changing nothing: a late promotion of a rolled-back version never makes it current', async () => {
      const opened = await setup();
      const { store } = opened;
      const a = await writeVersion(opened);
      await store.promote(a.s, undefined, null, call());
      // b's rotation is rolled back: destroyed in the store before its promotion (its driver stalled past its lease) arrives.
      const b = await writeVersion(opened);
      await store.destroy(b.s, call());
      expect((await rejection(store.promote(b.s, a.s, a.s, call()))).code).toBe('REKEY_ERR_NOT_FOUND');
      expect((await store.read({ stage: 'current' }, call())).equals(a.value)).toBe(true);
      await expectNotFound(store.read({ stage: 'previous' }, call()));
      expect((await store.list(call())).map((v) => [v.storeVersionId, v.stages])).toEqual([[a.s.storeVersionId, ['current']]]);
    });

    it('list reports rekey version ids where the store records them', async () => {
      const { store, secret } = await setup();
      const v = newVersion(secret);
      const { storeVersionId } = await store.writePending(v.ref, v.value, call());
      const entry = (await store.list(call())).find((e) => e.storeVersionId === storeVersionId);
      expect(entry).toBeDefined();
      expect([undefined, v.ref.versionId]).toContain(entry?.versionId);
    });

    it('destroy makes a version unreadable, and is idempotent', async () => {
      const { store, secret } = await setup();
      const a = newVersion(secret);
      const sa = stored(a.ref, (await store.writePending(a.ref, a.value, call())).storeVersionId);
      await store.promote(sa, undefined, null, call());
      const b = newVersion(secret);
      const sb = stored(b.ref, (await store.writePending(b.ref, b.value, call())).storeVersionId);
      await store.promote(sb, sa, sa, call());
      await store.destroy(sa, call());
      await store.destroy(sa, call());
      await expectNotFound(store.read({ storeVersionId: sa.storeVersionId }, call()));
      expect((await store.list(call())).map((v) => v.storeVersionId)).toEqual([sb.storeVersionId]);
      expect((await store.read({ stage: 'current' }, call())).equals(b.value)).toBe(true);
    });

    it('destroy refuses the current version (and with undoPromotion, gives current back to the previous holder or away)', async () => {
      const opened = await setup();
      const { store } = opened;
      const write = () => writeVersion(opened);
      const a = await write();
      await store.promote(a.s, undefined, null, call());
      expect((await rejection(store.destroy(a.s, call()))).code).toBe('REKEY_ERR_INVALID');
      expect((await store.read({ stage: 'current' }, call())).equals(a.value)).toBe(true);

      const b = await write();
      await store.promote(b.s, a.s, a.s, call());
      // A refusal changes nothing: b keeps current, a keeps previous.
      expect((await rejection(store.destroy(b.s, call()))).code).toBe('REKEY_ERR_INVALID');
      expect((await store.read({ storeVersionId: b.s.storeVersionId }, call())).equals(b.value)).toBe(true);
      expect((await store.read({ stage: 'current' }, call())).equals(b.value)).toBe(true);
      expect((await store.read({ stage: 'previous' }, call())).equals(a.value)).toBe(true);

      // Undoing b's promotion: current goes back to a, the version that held previous; b is gone.
      await store.destroy(b.s, call(), { undoPromotion: true });
      await store.destroy(b.s, call(), { undoPromotion: true }); // idempotent
      await expectNotFound(store.read({ storeVersionId: b.s.storeVersionId }, call()));
      expect((await store.read({ stage: 'current' }, call())).equals(a.value)).toBe(true);
      await expectNotFound(store.read({ stage: 'previous' }, call()));
      expect((await store.list(call())).map((v) => [v.storeVersionId, v.stages])).toEqual([[a.s.storeVersionId, ['current']]]);

      // Undoing the promotion of a version nothing held previous to: current goes away, except in a
      // store that cannot drop it (AWS, a secret's only version), which keeps the version as it was
      // before its promotion, pending and nothing else: rekey's current stage is gone either way.
      await store.destroy(a.s, call(), { undoPromotion: true });
      const left = await store.list(call());
      if (left.length) expect(left.map((v) => [v.storeVersionId, v.stages])).toEqual([[a.s.storeVersionId, ['pending']]]);
      await expectNotFound(store.read({ stage: 'current' }, call()));
    });

    it('a first rotation rolled back before its promotion: destroy succeeds, retried too, and no version is current', async () => {
      const opened = await setup();
      const { store } = opened;
      const a = await writeVersion(opened);
      await store.destroy(a.s, call());
      await store.destroy(a.s, call()); // a retried rollback (the first answer was lost)
      await expectNotFound(store.read({ stage: 'current' }, call()));
      expect((await store.list(call())).filter((v) => v.stages.includes('current'))).toEqual([]);
    });

    it('a first rotation rolled back after the store promoted it: the undo, then the usual destroy, each retried, succeed and leave no version current', async () => {
      const opened = await setup();
      const { store } = opened;
      const a = await writeVersion(opened);
      await store.promote(a.s, undefined, null, call());
      // Core's rollback: give current back (here: away) by undoing the promotion, then destroy as usual.
      for (const undoPromotion of [true, true, false, false]) await store.destroy(a.s, call(), { undoPromotion });
      await expectNotFound(store.read({ stage: 'current' }, call()));
      expect((await store.list(call())).filter((v) => v.stages.includes('current'))).toEqual([]);
    });

    it('reading what does not exist is NOT_FOUND', async () => {
      const { store } = await setup();
      await expectNotFound(store.read({ stage: 'current' }, call()));
      await expectNotFound(store.read({ storeVersionId: 'no-such-version' }, call()));
    });
  });
}

async function expectNotFound(promise: Promise<unknown>): Promise<void> {
  expect((await rejection(promise)).code).toBe('REKEY_ERR_NOT_FOUND');
}

/** What a cloud store fake counts: API calls by operation, since the last reset. */
export interface CallCounter {
  calls: Record<string, number>;
  resetCalls(): void;
}

/**
 * Runs steady-state rotations through `store` the way the engine does (write pending, read it
 * back, promote, destroy the version that was previous) and returns the calls each one cost
 * at the fake, and the time. Logs them as `[figures] label: ...` for the test output.
 */
export async function callsPerRotation(label: string, store: SecretStore, fake: CallCounter, rounds = 5): Promise<number> {
  const history: StoredRef[] = [];
  const rotate = async () => {
    const v = newVersion('calls');
    const next = stored(v.ref, (await store.writePending(v.ref, v.value, call())).storeVersionId);
    await store.read({ stage: 'pending' }, call());
    await store.promote(next, history.at(-1), history.at(-1) ?? null, call());
    // Retirement at the end of the grace period destroys the version that just became previous.
    if (history.length) await store.destroy(history.at(-1)!, call());
    history.push(next);
  };
  await rotate();
  fake.resetCalls();
  const started = performance.now();
  for (let i = 0; i < rounds; i++) await rotate();
  const ms = (performance.now() - started) / rounds;
  const total = Object.values(fake.calls).reduce((a, b) => a + b, 0) / rounds;
  console.log(`[figures] ${label}: ${total} calls per rotation`, {
    ...Object.fromEntries(Object.entries(fake.calls).map(([operation, n]) => [operation, n / rounds])),
    msPerRotation: Number(ms.toFixed(1)),
  });
  return total;
}
