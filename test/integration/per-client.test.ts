/**
 * Per-client keys (issue 6): `clients: [acme, globex]` gives each client its own key,
 * rotated on the schedule and revocable alone. Through the real HAProxy: each key maps
 * to its client (the backend sees who called), and revoking acme's key leaves globex
 * working. `rekey status <family>` shows the clients.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rekey } from '../support/cli.js';
import { send, startBackend, haproxyProviderYaml, startHaproxy, type Backend, type HaproxyGateway } from '../support/gateways/index.js';
import { startHarness, type Harness } from '../support/harness.js';
import { secretSchedulers } from '../support/redis.js';
import { laterSchedule } from '../support/schedules.js';

let h: Harness;
let backend: Backend;
let gateway: HaproxyGateway;
const family = `partners-${randomUUID().slice(0, 6)}`;
// Weekly, first due 12 hours from now: a firing during the run would replace the keys the tests compare.
const weekly = laterSchedule();

beforeAll(async () => {
  backend = await startBackend();
  gateway = await startHaproxy(backend.port);
  h = await startHarness({ label: 'per-client' });
  await h.apply(`
providers:
  vault: { type: local }
${haproxyProviderYaml(gateway)}
secrets:
  ${family}:
    clients: [acme, globex]
    store: { provider: vault, name: partners/api-key }
    issuer: { type: random, prefix: rk_partner_ }
    targets: [edge]
    schedule: { cron: "${weekly.cron}" }
    grace: 1h
`);
});
afterAll(async () => {
  await h?.stop();
  await gateway?.stop();
  await backend?.close();
});


it('each client gets its own key, scheduled and stored apart, labelled with the client at the gateway', async () => {
  expect((await h.runtime.db.secret.findMany({ orderBy: { name: 'asc' } })).map((s) => s.name)).toEqual([`${family}/acme`, `${family}/globex`]);
  const schedulers = await secretSchedulers(h.runtime.queues.queues.rotations);
  expect(schedulers.map((s) => s.key).sort()).toEqual([`rotate.${family}/acme`, `rotate.${family}/globex`]);
  for (const client of ['acme', 'globex']) expect((await h.rotate(`${family}/${client}`)).status).toBe('succeeded');
  const [acme, globex] = [await h.currentValue(`${family}/acme`), await h.currentValue(`${family}/globex`)];
  expect(acme).not.toBe(globex);
  expect(await send(gateway.url, gateway.header, acme)).toMatchObject({ status: 200, body: 'consumer=acme' });
  expect(await send(gateway.url, gateway.header, globex)).toMatchObject({ status: 200, body: 'consumer=globex' });
  // The local store keeps one entry per client under the configured name.
  const entries = await h.runtime.db.localStoreVersion.findMany({ where: { destroyedAt: null }, select: { secret: true } });
  expect(new Set(entries.map((e) => e.secret))).toEqual(new Set(['partners/api-key/acme', 'partners/api-key/globex']));
});

it('revoking one client leaves every other client working', async () => {
  const [acme, globex] = [await h.currentValue(`${family}/acme`), await h.currentValue(`${family}/globex`)];
  const acmeVersion = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: `${family}/acme` }, state: 'current' } });
  await h.runtime.engine.revoke(`${family}/acme`, acmeVersion.number);
  await expect.poll(async () => (await send(gateway.url, gateway.header, acme)).status, { timeout: 15_000 }).toBe(401);
  expect(await send(gateway.url, gateway.header, globex)).toMatchObject({ status: 200, body: 'consumer=globex' });
  // acme got a replacement (rotate-then-revoke); globex's versions are untouched.
  await expect.poll(async () => (await send(gateway.url, gateway.header, await h.currentValue(`${family}/acme`))).status, { timeout: 15_000 }).toBe(200);
  expect(await h.runtime.db.version.count({ where: { secret: { name: `${family}/globex` } } })).toBe(1);
});

it('rekey status <family> shows its clients', async () => {
  const env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix };
  const result = await rekey(['status', family], env);
  expect(result.code).toBe(0);
  expect(result.stdout).toContain(`${family}/acme (client acme of ${family})`);
  expect(result.stdout).toContain(`${family}/globex (client globex of ${family})`);
  expect(result.stdout).toMatch(/v2 {2}current/);
});
