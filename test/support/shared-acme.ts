// Two secrets, acme-a and acme-b, whose http issuer (the fake SaaS) can be told to hand both the
// same token: one account key on a SaaS that issues one per account. Their versions then share
// a fingerprint (leak-shared-value, keys-report-shared-value).
import { acmeProviderYaml, startFakeSaas, type FakeSaas } from '../../providers/http/test/fake/saas-server.js';
import type { RouteModule } from '../../src/http/server.js';
import { startHarness, type Harness } from './harness.js';

export interface SharedAcme {
  h: Harness;
  saas: FakeSaas;
  stop(): Promise<void>;
}

/** The harness with both secrets applied (none rotated yet); the SaaS admin token in the environment variable `tokenEnv`. */
export async function startSharedAcme(label: string, tokenEnv: string, routes: readonly RouteModule[] = []): Promise<SharedAcme> {
  const saas = await startFakeSaas();
  process.env[tokenEnv] = saas.adminToken;
  const h = await startHarness({ label, routes });
  await h.apply(`
providers:
  vault: { type: local }
${acmeProviderYaml(saas, tokenEnv, { verify: false })}
secrets:
  acme-a: { store: { provider: vault }, issuer: { provider: acme }, onLeak: block-first }
  acme-b: { store: { provider: vault }, issuer: { provider: acme }, onLeak: block-first }
env: { allow: [${tokenEnv}] }
`);
  return {
    h,
    saas,
    async stop() {
      await h.stop();
      await saas.close();
      delete process.env[tokenEnv];
    },
  };
}
