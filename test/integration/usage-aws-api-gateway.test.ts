/**
 * Usage-based protection through AWS API Gateway (issue 18), end to end: the worker's usage check
 * calls GetUsage through the official SDK client every second against the local API Gateway fake
 * (REST-JSON on the wire), whose stage counts each accepted request per key and UTC day as
 * GetUsage reports it, with no delay (AWS's own lags by minutes: docs/usage.md). Steady traffic
 * fires nothing; a spike of one key alerts; a key over a revoke ceiling is revoked and then
 * refused (403). The scenario: test/support/usage-scenario.ts.
 */
import { afterAll } from 'vitest';
import { startFakeApiGateway, type FakeApiGateway } from '../../providers/aws-api-gateway/test/fake/api-gateway-fake.js';
import { useLoopbackAwsEnv } from '../support/aws-env.js';
import { usageScenario } from '../support/usage-scenario.js';

let fake: FakeApiGateway | undefined;
let restoreEnv: (() => void) | undefined;
afterAll(async () => {
  await fake?.close();
  restoreEnv?.();
});

usageScenario('AWS API Gateway', async () => {
  restoreEnv = useLoopbackAwsEnv();
  fake = await startFakeApiGateway();
  return {
    provider: { type: 'aws-api-gateway', region: 'eu-west-1', endpoint: fake.endpoint, maxAttempts: 1, usagePlanId: fake.usagePlanId },
    proxyUrl: fake.stageUrl,
    header: 'x-api-key',
    refused: 403,
  };
});
