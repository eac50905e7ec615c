/**
 * The target conformance suite: run it against every Target adapter.
 * `probes`: verify() really asks the target (a gateway probe), so a retired or
 * never-deployed value fails verification.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DeployedEntry, Target, VersionRef } from '../../src/core/ports.js';
import { call, held, newVersion, rejection } from './refs.js';

export interface TargetFixture {
  target: Target;
  secret: string;
  cleanup?: () => Promise<void>;
}

export function targetConformance(name: string, open: () => Promise<TargetFixture>, options: { probes: boolean }): void {
  describe(`target conformance: ${name}`, () => {
    let fixture: TargetFixture | undefined;
    const setup = async () => (fixture = await open());
    afterEach(async () => {
      await fixture?.cleanup?.();
      fixture = undefined;
    });

    const has = (entries: DeployedEntry[], ref: VersionRef) =>
      entries.filter((e) => e.fingerprint === ref.fingerprint || e.versionId === ref.versionId).length;

    it('deploy twice is one entry, and it verifies', async () => {
      const { target, secret } = await setup();
      const v = newVersion(secret);
      await target.deploy(v.ref, v.value, call());
      await target.deploy(v.ref, v.value, call());
      expect(has(await held(target), v.ref)).toBe(1);
      await target.verify(v.ref, v.value, call());
    });

    it('accepts two versions during the overlap, then only the survivor', async () => {
      const { target, secret } = await setup();
      const a = newVersion(secret);
      const b = newVersion(secret);
      await target.deploy(a.ref, a.value, call());
      await target.deploy(b.ref, b.value, call());
      let listed = await held(target);
      expect(has(listed, a.ref)).toBe(1);
      expect(has(listed, b.ref)).toBe(1);
      await target.verify(a.ref, a.value, call());
      await target.verify(b.ref, b.value, call());
      await target.retire(a.ref, call());
      listed = await held(target);
      expect(has(listed, a.ref)).toBe(0);
      expect(has(listed, b.ref)).toBe(1);
      await target.verify(b.ref, b.value, call());
      if (options.probes) await expectVerifyFails(target.verify(a.ref, a.value, call()));
    });

    it('retire of an absent version succeeds, twice', async () => {
      const { target, secret } = await setup();
      const v = newVersion(secret);
      await target.retire(v.ref, call());
      await target.retire(v.ref, call());
      expect(has(await held(target), v.ref)).toBe(0);
    });

    if (options.probes) {
      it('verify fails for a value it never accepted', async () => {
        const { target, secret } = await setup();
        const v = newVersion(secret);
        await expectVerifyFails(target.verify(v.ref, v.value, call()));
      });
    }
  });
}

async function expectVerifyFails(promise: Promise<unknown>): Promise<void> {
  expect((await rejection(promise)).code).toBe('REKEY_ERR_VERIFY_FAILED');
}
