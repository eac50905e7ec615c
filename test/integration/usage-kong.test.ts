/**
 * Usage-based protection through Kong (issue 18), end to end: the worker's usage check reads the
 * fake Kong's Prometheus plugin exposition (`kong_http_requests_total` per consumer) every
 * second while keyed traffic goes through its key-auth proxy. Steady traffic fires nothing; a
 * spike of one consumer alerts; a key over a revoke ceiling is revoked and then refused (401).
 * The scenario: test/support/usage-scenario.ts.
 */
import { startFakeKong, type FakeKong } from '../../providers/kong/test/fake/kong-admin.js';
import { usageScenario } from '../support/usage-scenario.js';
import { afterAll } from 'vitest';

let fake: FakeKong | undefined;
afterAll(async () => {
  await fake?.close();
});

usageScenario('Kong', async () => {
  fake = await startFakeKong();
  return { provider: { type: 'kong', adminUrl: fake.adminUrl }, proxyUrl: fake.proxyUrl, header: 'apikey', refused: 401 };
});
