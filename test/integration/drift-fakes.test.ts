/**
 * Self-healing delivery for the targets served by wire fakes (Kong's Admin API and key-auth
 * proxy, API Gateway's REST-JSON through the official AWS SDK, the Kubernetes API server
 * through @kubernetes/client-node) and for redis-keyset on the real Redis: a worker's drift
 * check (one-second interval) puts back a key deleted by hand and removes a retired key
 * re-added by hand (as a restore from a backup would: with rekey's own tags and names).
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiGateway, type FakeApiGateway } from '../../providers/aws-api-gateway/test/fake/api-gateway-fake.js';
import { startFakeKong, type FakeKong } from '../../providers/kong/test/fake/kong-admin.js';
import { startFakeKubeApi, type FakeKubeApi } from '../../providers/kubernetes-secret/test/fake/kube-apiserver.js';
import type { RedisConnection } from '../../src/queue/connection.js';
import { fingerprint } from '../conformance/refs.js';
import { useLoopbackAwsEnv } from '../support/aws-env.js';
import { send } from '../support/gateways/index.js';
import { startHarness, type Harness } from '../support/harness.js';
import { deleteKeys } from '../support/isolation.js';
import { testRedis } from '../support/redis.js';

let h: Harness;
let kong: FakeKong;
let apigw: FakeApiGateway;
let kube: FakeKubeApi;
let redis: RedisConnection;
let dir: string;
let restoreAwsEnv: () => void;
const secret = `df-${randomUUID().slice(0, 8)}`;
const KEYSET = `rekey-drift-${randomUUID().slice(0, 8)}:`;
const NS = 'payments';
let retired: { id: string; key: string };
let current: { id: string; key: string };

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (a hang guard, not a speed bound)`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function version(number: number) {
  const row = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: secret }, number } });
  return row;
}

const kongHolds = (key: string) => [...kong.credentials.values()].some((c) => c.key === key);
const apigwHolds = (key: string) => [...apigw.keys.values()].some((k) => k.value === key && k.enabled && apigw.plans.get(apigw.usagePlanId)?.has(k.id));
/** The Secret's values, decoded. */
const kubeValues = () => Object.values(kube.secretData(NS, secret) ?? {});
const keysetHolds = async (key: string) => (await redis.hexists(`${KEYSET}${secret}`, fingerprint(key))) === 1;

beforeAll(async () => {
  restoreAwsEnv = useLoopbackAwsEnv();
  [kong, apigw, kube] = await Promise.all([startFakeKong(), startFakeApiGateway(), startFakeKubeApi()]);
  kube.addSecret(NS, secret);
  dir = await mkdtemp(join(tmpdir(), 'rekey-drift-kube-'));
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: kube.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'rekey', user: { token: kube.token } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'rekey', namespace: NS } }],
      'current-context': 'fake',
    }),
    { mode: 0o600 },
  );
  redis = testRedis();
  h = await startHarness({ label: 'drift-fakes' });
  const drift = '{ interval: 1s }';
  await h.apply(`
providers:
  vault: { type: local }
  kong: { type: kong, adminUrl: "${kong.adminUrl}", probe: { url: "${kong.proxyUrl}", header: apikey }, drift: ${drift} }
  apigw: { type: aws-api-gateway, region: eu-west-1, endpoint: "${apigw.endpoint}", usagePlanId: "${apigw.usagePlanId}", drift: ${drift} }
  kube: { type: kubernetes-secret, kubeconfig: "${kubeconfig}", drift: ${drift} }
  keyset: { type: redis-keyset, keyPrefix: "${KEYSET}", channel: "${KEYSET}c", drift: ${drift} }
secrets:
  ${secret}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_df_ }
    targets: [kong, apigw, { provider: kube, name: ${secret}, namespace: ${NS}, key: api-key }, keyset]
    grace: 1s
    retry: { attempts: 3, backoff: 100ms }
`);
  expect((await h.rotate(secret)).status).toBe('succeeded');
  retired = { id: (await version(1)).id, key: await h.currentValue(secret) };
  expect((await h.rotate(secret)).status).toBe('succeeded');
  current = { id: (await version(2)).id, key: await h.currentValue(secret) };
  await until('version 1 revoked after its grace', async () => (await version(1)).state === 'revoked');
}, 120_000);

afterAll(async () => {
  await h?.stop();
  await Promise.all([kong?.close(), apigw?.close(), kube?.close()]);
  await deleteKeys(`${KEYSET}*`);
  redis?.disconnect();
  if (dir) await rm(dir, { recursive: true, force: true });
  restoreAwsEnv?.();
});

describe('Kong', () => {
  it('a credential deleted by hand is deployed again', async () => {
    expect(kong.credentials.delete(current.id)).toBe(true);
    await until('Kong holds the current key again', () => kongHolds(current.key));
    expect((await send(kong.proxyUrl, 'apikey', current.key)).status).toBe(200);
  });

  it('the retired credential restored by hand is removed again', async () => {
    const model = kong.credentials.get(current.id)!;
    const tags = (model.tags ?? []).map((t) => (t.startsWith('rekey-version:') ? `rekey-version:${retired.id}` : t.startsWith('rekey-fp:') ? `rekey-fp:${fingerprint(retired.key)}` : t));
    kong.credentials.set(retired.id, { ...model, id: retired.id, key: retired.key, tags });
    expect((await send(kong.proxyUrl, 'apikey', retired.key)).status).toBe(200);
    await until('Kong refuses the retired key again', async () => (await send(kong.proxyUrl, 'apikey', retired.key)).status === 401);
    expect(kongHolds(current.key)).toBe(true);
  });
});

describe('API Gateway', () => {
  it('an API key deleted by hand is created again and added to the usage plan', async () => {
    const [id] = [...apigw.keys.entries()].find(([, k]) => k.value === current.key)!;
    apigw.keys.delete(id);
    apigw.plans.get(apigw.usagePlanId)!.delete(id);
    await until('API Gateway holds the current key again', () => apigwHolds(current.key));
  });

  it('the retired key restored by hand is deleted again', async () => {
    const model = [...apigw.keys.values()].find((k) => k.value === current.key)!;
    const id = `restored${randomUUID().slice(0, 4)}`;
    apigw.keys.set(id, {
      ...model,
      id,
      value: retired.key,
      name: model.name.replace(current.id, retired.id),
      tags: { ...model.tags, 'rekey:version-id': retired.id, 'rekey:fingerprint': fingerprint(retired.key) },
      stageKeys: [...model.stageKeys],
    });
    apigw.plans.get(apigw.usagePlanId)!.add(id);
    await until('API Gateway no longer holds the retired key', () => !apigwHolds(retired.key));
    expect(apigwHolds(current.key)).toBe(true);
  });
});

describe('Kubernetes Secret', () => {
  it('the key removed from the Secret by hand is written again', async () => {
    const stored = kube.secrets.get(`${NS}/${secret}`) as { data: Record<string, string> };
    delete stored.data['api-key'];
    await until('the Secret holds the current key again', () => kube.secretData(NS, secret)?.['api-key'] === current.key);
  });

  it('the retired value put back by hand is replaced by the current one', async () => {
    const stored = kube.secrets.get(`${NS}/${secret}`) as { data: Record<string, string> };
    stored.data['api-key'] = Buffer.from(retired.key).toString('base64');
    await until('the Secret holds the current key and not the retired one', () => kubeValues().includes(current.key) && !kubeValues().includes(retired.key));
    expect(kube.secretData(NS, secret)?.['api-key']).toBe(current.key);
  });
});

describe('redis-keyset', () => {
  it('a keyset flushed by hand is filled again', async () => {
    await redis.del(`${KEYSET}${secret}`);
    await until('the keyset holds the current key again', () => keysetHolds(current.key));
  });

  it('the retired fingerprint re-added by hand is removed again', async () => {
    await redis.hset(`${KEYSET}${secret}`, fingerprint(retired.key), secret);
    await until('the keyset no longer holds the retired key', async () => !(await keysetHolds(retired.key)));
    expect(await keysetHolds(current.key)).toBe(true);
  });

  it('every repair is audited as target.drift and counted', async () => {
    const targets = ['apigw', 'keyset', 'kong', 'kube'];
    // A check records what it found once its repairs are queued: the last one may still be writing.
    await until('a target.drift event of every target', async () => {
      const events = await h.runtime.db.auditEvent.findMany({ where: { action: 'target.drift', secret } });
      return targets.every((t) => events.some((e) => (e.data as { target: string; found: { unwanted: number[] } }).target === t && (e.data as { found: { unwanted: number[] } }).found.unwanted.length > 0));
    });
    const metrics = await h.runtime.metrics.registry.getSingleMetricAsString('rekey_target_drift_total');
    for (const target of targets) {
      expect(metrics).toContain(`rekey_target_drift_total{target="${target}",kind="missing"}`);
      expect(metrics).toContain(`rekey_target_drift_total{target="${target}",kind="unwanted"}`);
    }
  });
});
