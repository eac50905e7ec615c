/**
 * One target down during a rotation, through rekey's engine: the real HAProxy is up, Kong's
 * Admin API (a local fake, providers/kong/test/fake) answers 503. The run retries, never
 * promotes, and after its last attempt rolls back: the pending key is removed from HAProxy at
 * once, while a client keeps calling HAProxy with the current key and is never refused. The
 * rollback cannot finish at Kong while Kong is down (the pending key may have reached it), so
 * the run stays in its rollback step until Kong answers again, then ends rolled_back.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startFakeKong, type FakeKong } from '../../providers/kong/test/fake/kong-admin.js';
import { continuousTraffic, send, sleep, startBackend, haproxyProviderYaml, startHaproxy, type Backend, type HaproxyGateway } from '../support/gateways/index.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let backend: Backend;
let gateway: HaproxyGateway;
let kong: FakeKong;
const secret = `down-${randomUUID().slice(0, 8)}`;
const ATTEMPTS = 3;

beforeAll(async () => {
  backend = await startBackend();
  gateway = await startHaproxy(backend.port);
  kong = await startFakeKong();
  h = await startHarness({ label: 'target-down' });
  await h.apply(`
providers:
  vault: { type: local }
${haproxyProviderYaml(gateway)}
  kong:
    type: kong
    adminUrl: ${kong.adminUrl}
    probe: { url: "${kong.proxyUrl}", header: apikey }
    timeoutMs: 1000
secrets:
  ${secret}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_down_ }
    targets: [edge, kong]
    grace: 1s
    retry: { attempts: ${ATTEMPTS}, backoff: 100ms }
    timeout: 3s
`);
});
afterAll(async () => {
  await h?.stop();
  await kong?.close();
  await gateway?.stop();
  await backend?.close();
});

/** The keys in HAProxy's map file (rewritten after every change). */
async function mapKeys(): Promise<string[]> {
  return (await readFile(gateway.map, 'utf8'))
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => line.split(' ')[0]!);
}

it('retries, does not promote, rolls the pending key back where it was deployed; the current key keeps working', async () => {
  expect((await h.rotate(secret)).status).toBe('succeeded');
  const [currentKey] = await mapKeys();
  const currentVersion = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: secret }, state: 'current' } });
  expect((await send(kong.proxyUrl, 'apikey', currentKey)).status).toBe(200);

  const traffic = continuousTraffic({ url: gateway.url, header: gateway.header, key: currentKey!, intervalMs: 2, workers: 2 });
  kong.down = true;
  kong.resetCounts();
  const request = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  if (request.status === 'stale') throw new Error('stale');
  const runId = request.run.id;

  // Catch the pending key while HAProxy holds it (it was deployed there in the first attempt).
  let pendingKey: string | undefined;
  for (let i = 0; i < 400 && !pendingKey; i++) {
    pendingKey = (await mapKeys()).find((key) => key !== currentKey);
    if (!pendingKey) await sleep(5);
  }
  expect(pendingKey).toBeDefined();
  expect((await send(gateway.url, gateway.header, pendingKey)).status).toBe(200);

  // After the last attempt: rolling back, the pending key already retired at HAProxy.
  const pending = async () => {
    const run = await h.runtime.engine.deps.repo.getRun(runId);
    const deliveries = run?.versionId ? await h.runtime.engine.deps.repo.deliveries(run.versionId) : [];
    return { step: run?.step, status: run?.status, edge: deliveries.find((d) => d.target === 'edge')?.status, kong: deliveries.find((d) => d.target === 'kong')?.status };
  };
  await expect.poll(pending, { timeout: 10_000, interval: 20 }).toMatchObject({ step: 'rollback', edge: 'retired' });
  const blocked = await pending();
  expect(blocked.status).toBe('running'); // waiting for Kong to confirm the pending key is gone there
  expect(blocked.kong).not.toBe('retired');
  // Kong was asked to deploy once per attempt, and never got further.
  expect(kong.requests.get('PUT /consumers/{id}/key-auth/{id}')).toBe(ATTEMPTS);
  expect(kong.credentials.size).toBe(1);

  // At the real HAProxy: the pending key is refused, the current one accepted; nothing was promoted.
  expect((await send(gateway.url, gateway.header, pendingKey)).status).toBe(401);
  expect((await send(gateway.url, gateway.header, currentKey)).status).toBe(200);
  expect(await mapKeys()).toEqual([currentKey]);
  const stillCurrent = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: secret }, state: 'current' } });
  expect(stillCurrent.id).toBe(currentVersion.id);

  // Kong comes back: the rollback completes there and the run ends rolled_back.
  kong.down = false;
  const run = await h.waitForRun(runId, 15_000);
  expect(run.status).toBe('rolled_back');
  expect(run.attempts).toBeGreaterThanOrEqual(ATTEMPTS);
  expect((await h.runtime.db.version.findUniqueOrThrow({ where: { id: run.versionId! } })).state).toBe('failed');
  expect([...kong.credentials.keys()]).toEqual([currentVersion.id]);
  expect((await send(kong.proxyUrl, 'apikey', currentKey)).status).toBe(200);
  expect((await send(kong.proxyUrl, 'apikey', pendingKey)).status).toBe(401);

  const stats = await traffic.stop();
  console.log(
    `target-down (haproxy up, kong 503): current-key client sent ${stats.sent} requests to HAProxy during the failed rotation and rollback, ` +
      `rejected ${stats.rejected}, errors ${stats.errors}; run attempts ${run.attempts}`,
  );
  expect(stats.sent).toBeGreaterThan(50);
  expect([stats.rejected, stats.errors]).toEqual([0, 0]);
});
