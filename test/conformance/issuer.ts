/**
 * The issuer conformance suite: run it against every Issuer adapter.
 * `revokeIsObservable`: after revoke, verify() must fail (true for issuers whose
 * credential lives upstream: a database role, an IAM key).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ProviderError } from '../../src/core/errors.js';
import type { IssuedRef, Issuer, VersionRef } from '../../src/core/ports.js';
import { call, fingerprint, issued, newVersion } from './refs.js';

export interface IssuerFixture {
  issuer: Issuer;
  secret: string;
  /** Issuer state naming a credential that does not exist upstream. */
  unknownState: IssuedRef['issuerState'];
  cleanup?: () => Promise<void>;
}

export function issuerConformance(
  name: string,
  open: () => Promise<IssuerFixture>,
  options: { revokeIsObservable: boolean },
): void {
  describe(`issuer conformance: ${name}`, () => {
    let fixture: IssuerFixture | undefined;
    const setup = async () => (fixture = await open());
    afterEach(async () => {
      await fixture?.cleanup?.();
      fixture = undefined;
    });

    const fresh = (secret: string): VersionRef => ({ ...newVersion(secret).ref, fingerprint: '' });

    it('issues distinct credentials that verify', async () => {
      const { issuer, secret } = await setup();
      const a = fresh(secret);
      const b = fresh(secret);
      const ia = await issuer.issue(a, call());
      const ib = await issuer.issue(b, call());
      expect(ia.value.equals(ib.value)).toBe(false);
      expect(JSON.stringify(ia.state)).not.toContain(ia.value.reveal());
      await issuer.verify(issued({ ...a, fingerprint: fingerprint(ia.value) }, ia.state), ia.value, call());
      await issuer.verify(issued({ ...b, fingerprint: fingerprint(ib.value) }, ib.state), ib.value, call());
    });

    it('revoke is idempotent and leaves other credentials working', async () => {
      const { issuer, secret } = await setup();
      const a = fresh(secret);
      const b = fresh(secret);
      const ia = await issuer.issue(a, call());
      const ib = await issuer.issue(b, call());
      const ra = issued({ ...a, fingerprint: fingerprint(ia.value) }, ia.state);
      await issuer.revoke(ra, call());
      await issuer.revoke(ra, call());
      await issuer.verify(issued({ ...b, fingerprint: fingerprint(ib.value) }, ib.state), ib.value, call());
      if (options.revokeIsObservable) {
        const error = await issuer.verify(ra, ia.value, call()).then(() => undefined, (e: unknown) => e);
        expect(error).toBeInstanceOf(ProviderError);
        expect((error as ProviderError).code).toBe('REKEY_ERR_VERIFY_FAILED');
      }
    });

    it('revoke with no state (the rollback of an issue never recorded) succeeds and leaves recorded credentials working', async () => {
      const { issuer, secret } = await setup();
      const a = fresh(secret);
      const ia = await issuer.issue(a, call());
      const lost = fresh(secret);
      await issuer.issue(lost, call());
      await issuer.revoke(issued(lost, {}), call());
      await issuer.revoke(issued(lost, {}), call());
      await issuer.revoke(issued(fresh(secret), {}), call());
      await issuer.verify(issued({ ...a, fingerprint: fingerprint(ia.value) }, ia.state), ia.value, call());
    });

    it('revoking a credential it never issued succeeds', async () => {
      const { issuer, secret, unknownState } = await setup();
      await issuer.revoke(issued(fresh(secret), unknownState), call());
    });
  });
}
