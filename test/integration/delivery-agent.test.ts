/**
 * `rekey agent` (src/agent) against a real `rekey server`: authenticated with a client key
 * read from a file, it serves values and tokens on loopback only to requests carrying the
 * per-host token (none, a wrong one, or one relayed with X-Forwarded-For are refused), renders
 * a template into a 0600 file, and refreshes its cache on the change stream within a second of
 * a rotation (promotion in PostgreSQL to the agent's refresh, measured; on a loaded machine within
 * twice a second client's refresh of the same rotation, measured beside it), re-rendering the file
 * and signalling the process that reads it.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AGENT_TOKEN_HEADER, startAgent, type Agent, type AgentLogEvent } from '../../src/agent/agent.js';
import { loadTemplate } from '../../src/agent/templates.js';
import { createClient, type ClientLogEvent } from '../../src/client/index.js';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { jwksRoutes } from '../../src/jwks/routes.js';
import { ACCESS_TOKEN_TYPE, currentVersion, storedValue, verifyServed } from '../support/delivery.js';
import { killOnExit } from '../support/gateways/process.js';
import { startHarness, type Harness } from '../support/harness.js';

import { REQUEST_TOKEN } from '../support/agent.js';
let h: Harness;
let agent: Agent;
let dir: string;
const logs: (AgentLogEvent & { at: number })[] = [];
const reloader = spawn(process.execPath, ['-e', "process.on('SIGHUP', () => console.log('reloaded')); setInterval(() => {}, 1000)"], { stdio: ['ignore', 'pipe', 'inherit'] });
killOnExit(reloader);
let reloads = 0;
reloader.stdout.on('data', (chunk: Buffer) => (reloads += chunk.toString().split('reloaded').length - 1));

beforeAll(async () => {
  h = await startHarness({ label: 'delivery-agent', routes: [deliveryRoutes, jwksRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  workloads:
    clients: [orders]
    store: { provider: vault }
    issuer: { type: random, prefix: rk_wl_ }
    grace: 1h
  api-signing: { store: { provider: vault }, issuer: { type: jwt-signing-key, alg: ES256 }, grace: 10m }
  payments-api-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_pay_ }, grace: 1h }
  ledger-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_led_ }, grace: 40d }
delivery:
  issuer: https://rekey.test
  authenticators:
    workloads: { type: client-key, secret: workloads }
  grants:
    api: { authenticator: workloads, subjects: ["workloads/*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 5m } }
    payments: { authenticator: workloads, subjects: ["workloads/orders"], value: { secret: payments-api-key, ttl: 5m } }
    ledger: { authenticator: workloads, subjects: ["workloads/orders"], value: { secret: ledger-key, ttl: 40d } }
  rateLimit: { max: 1000, window: 1m }
`);
  for (const secret of ['workloads/orders', 'api-signing', 'payments-api-key', 'ledger-key']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
  dir = await mkdtemp(join(tmpdir(), 'rekey-agent-'));
  const keyFile = join(dir, 'client-key');
  await writeFile(keyFile, await storedValue(h, 'workloads/orders'), { mode: 0o600 });
  await writeFile(join(dir, 'app.env.tmpl'), 'PAYMENTS_API_KEY={{ secret "payments-api-key" }}\nAPI_TOKEN={{ token "api.example.com" }}\n');
  agent = await startAgent({
    server: h.serving!.url,
    credential: async () => (await readFile(keyFile, 'utf8')).trim(),
    credentialType: ACCESS_TOKEN_TYPE,
    requestToken: REQUEST_TOKEN,
    port: 0,
    secrets: [],
    audiences: [],
    templates: [await loadTemplate(`${join(dir, 'app.env.tmpl')}:${join(dir, 'app.env')}`)],
    notify: { pid: () => Promise.resolve(reloader.pid), signal: 'SIGHUP' },
    logger: (event) => logs.push({ ...event, at: Date.now() }),
  });
}, 120_000);
afterAll(async () => {
  await agent?.stop();
  reloader.kill('SIGKILL');
  await h.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const get = async (path: string, headers: Record<string, string> = { [AGENT_TOKEN_HEADER]: REQUEST_TOKEN }) => {
  const response = await fetch(`${agent.url}${path}`, { headers });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

it('serves values and tokens only to requests carrying the per-host token', async () => {
  expect(new URL(agent.url).hostname).toBe('127.0.0.1');
  const value = await get('/v1/secrets/payments-api-key');
  expect(value).toMatchObject({ status: 200, body: { secret: 'payments-api-key', value: await storedValue(h, 'payments-api-key'), version: (await currentVersion(h, 'payments-api-key')).number } });
  const token = await get('/v1/token?audience=api.example.com');
  expect(token.status).toBe(200);
  expect((await verifyServed(h, token.body.access_token as string, { issuer: 'https://rekey.test', audience: 'api.example.com' })).payload.sub).toBe('workloads/orders');

  for (const headers of <Record<string, string>[]>[{}, { [AGENT_TOKEN_HEADER]: 'wrong' }, { [AGENT_TOKEN_HEADER]: `${REQUEST_TOKEN}x` }, { [AGENT_TOKEN_HEADER]: REQUEST_TOKEN, 'x-forwarded-for': '10.0.0.1' }]) {
    expect(await get('/v1/secrets/payments-api-key', headers)).toEqual({ status: 401, body: { error: 'invalid_token' } });
    expect((await get('/v1/token?audience=api.example.com', headers)).status).toBe(401);
  }
});

it('refuses a secret name whose decoded segments would take its request to the server elsewhere (`..`, `.`)', async () => {
  for (const path of ['/v1/secrets/..%2F..%2Fv1%2Fevents', '/v1/secrets/payments-api-key%2F..', '/v1/secrets/a%2F.%2Fb']) {
    expect(await get(path)).toEqual({ status: 400, body: { error: 'invalid_name' } });
  }
});

it('renders the template into a 0600 file', async () => {
  const file = join(dir, 'app.env');
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  const text = await readFile(file, 'utf8');
  expect(text).toContain(`PAYMENTS_API_KEY=${await storedValue(h, 'payments-api-key')}\n`);
  expect(text).toMatch(/^API_TOKEN=eyJ[\w-]+\.[\w-]+\.[\w-]+$/m);
});

it('refreshes its cache on the change stream within a second of a rotation, re-renders and signals', async () => {
  await expect.poll(() => logs.some((e) => e.code === 'stream_open'), { timeout: 30_000, interval: 20 }).toBe(true);
  // The bound's reference, measured on the same rotation: a second client beside the agent (the client the
  // agent is built on, in this process) follows the change stream and reads the promoted value itself. It
  // shares the path up to the agent (promotion, the change feed, the server's stream and its value read)
  // and the machine's load at that moment, not the agent's own handling of the change.
  const probeLogs: ClientLogEvent[] = [];
  const probe = createClient({ url: h.serving!.url, credential: () => storedValue(h, 'workloads/orders'), credentialType: ACCESS_TOKEN_TYPE, logger: (e) => probeLogs.push(e) });
  const probed: Array<{ version: number; at: number }> = [];
  const unsubscribe = probe.subscribe((change) => {
    if (change.type === 'rotated' && change.secret === 'payments-api-key') void probe.secret('payments-api-key').then((v) => probed.push({ version: v.version, at: Date.now() }));
  });
  try {
    await expect.poll(() => probeLogs.some((e) => e.code === 'stream_open'), { timeout: 30_000, interval: 20 }).toBe(true);
    const before = await currentVersion(h, 'payments-api-key');
    const reloadsBefore = reloads;
    expect((await h.rotate('payments-api-key', 60_000)).status).toBe('succeeded');
    const promoted = await currentVersion(h, 'payments-api-key');
    expect(promoted.number).toBeGreaterThan(before.number);
    const refreshed = () => logs.find((e) => e.code === 'agent_refreshed' && e.secret === 'payments-api-key' && e.version === promoted.number);
    const read = () => probed.find((p) => p.version === promoted.number);
    await expect.poll(() => refreshed() !== undefined && read() !== undefined, { timeout: 30_000, interval: 20 }).toBe(true);
    const latencyMs = refreshed()!.at - promoted.promotedAt!.getTime();
    const referenceMs = read()!.at - promoted.promotedAt!.getTime();
    // 1 s is the goal on a machine with a core to spare. On a loaded one every step waits for a core: the agent
    // may take up to twice its reference (two clients doing the same work at once, one of them served second).
    const bound = Math.max(1000, 2 * referenceMs);
    console.log(JSON.stringify({ agentRefreshAfterPromotionMs: latencyMs, referenceMs, boundMs: bound }));
    expect(latencyMs).toBeLessThan(bound);

    const value = await storedValue(h, 'payments-api-key');
    expect((await get('/v1/secrets/payments-api-key')).body).toMatchObject({ version: promoted.number, value });
    await expect.poll(() => readFile(join(dir, 'app.env'), 'utf8'), { timeout: 10_000, interval: 20 }).toContain(`PAYMENTS_API_KEY=${value}\n`);
    expect((await stat(join(dir, 'app.env'))).mode & 0o777).toBe(0o600);
    await expect.poll(() => reloads, { timeout: 10_000, interval: 20 }).toBeGreaterThan(reloadsBefore);
    expect(logs.some((e) => e.code === 'agent_signalled' && e.pid === reloader.pid)).toBe(true);
  } finally {
    unsubscribe();
    probe.close();
  }
}, 120_000);

it('refreshes a value that lives 40 days once, not in a loop (its renewal is further off than a timer reaches)', async () => {
  // 80% of 40 days is past setTimeout's limit (2^31-1 ms, 24.8 days), which Node runs after 1 ms instead.
  const ledgerLogs: AgentLogEvent[] = [];
  const ledger = await startAgent({
    server: h.serving!.url,
    credential: () => storedValue(h, 'workloads/orders'),
    credentialType: ACCESS_TOKEN_TYPE,
    requestToken: REQUEST_TOKEN,
    port: 0,
    secrets: ['ledger-key'],
    audiences: [],
    templates: [],
    logger: (event) => ledgerLogs.push(event),
  });
  try {
    // Gated on events: the stream's ready, handled (a refresh from the cache), then requests served one after another.
    await expect.poll(() => ledgerLogs.filter((e) => e.code === 'agent_refreshed').length, { timeout: 30_000, interval: 20 }).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < 20; i++) {
      const response = await fetch(`${ledger.url}/v1/secrets/ledger-key`, { headers: { [AGENT_TOKEN_HEADER]: REQUEST_TOKEN } });
      expect(response.status).toBe(200);
      await response.body?.cancel();
    }
    // At start, and on the stream's ready (from the cache); a reconnect's ready may add one.
    expect(ledgerLogs.filter((e) => e.code === 'agent_refreshed').length).toBeLessThanOrEqual(3);
  } finally {
    await ledger.stop();
  }
}, 60_000);

it('signals the process when one rendered file changed though another template could not be written', async () => {
  // Two files, the second in a directory that goes away (an unmounted volume): the first still changes with a rotation.
  const second = spawn(process.execPath, ['-e', "process.on('SIGHUP', () => console.log('reloaded')); console.log('listening'); setInterval(() => {}, 1000)"], { stdio: ['ignore', 'pipe', 'inherit'] });
  killOnExit(second);
  let secondOutput = '';
  second.stdout.on('data', (chunk: Buffer) => (secondOutput += chunk.toString()));
  const secondReloads = () => secondOutput.split('reloaded').length - 1;
  await expect.poll(() => secondOutput.includes('listening'), { timeout: 30_000, interval: 20 }).toBe(true);
  const volume = join(dir, 'volume');
  await mkdir(volume);
  await writeFile(join(dir, 'value.tmpl'), 'PAYMENTS_API_KEY={{ secret "payments-api-key" }}\n');
  await writeFile(join(dir, 'token.tmpl'), 'API_TOKEN={{ token "api.example.com" }}\n');
  const twoLogs: AgentLogEvent[] = [];
  const two = await startAgent({
    server: h.serving!.url,
    credential: () => storedValue(h, 'workloads/orders'),
    credentialType: ACCESS_TOKEN_TYPE,
    requestToken: REQUEST_TOKEN,
    port: 0,
    secrets: [],
    audiences: [],
    templates: [await loadTemplate(`${join(dir, 'value.tmpl')}:${join(dir, 'value.env')}`), await loadTemplate(`${join(dir, 'token.tmpl')}:${join(volume, 'token.env')}`)],
    notify: { pid: () => Promise.resolve(second.pid), signal: 'SIGHUP' },
    logger: (event) => twoLogs.push(event),
  });
  try {
    await expect.poll(() => twoLogs.some((e) => e.code === 'stream_open'), { timeout: 30_000, interval: 20 }).toBe(true);
    await expect.poll(secondReloads, { timeout: 10_000, interval: 20 }).toBe(1); // both files written at start
    await rm(volume, { recursive: true });
    expect((await h.rotate('payments-api-key', 60_000)).status).toBe('succeeded');
    const value = await storedValue(h, 'payments-api-key');
    await expect.poll(() => readFile(join(dir, 'value.env'), 'utf8'), { timeout: 30_000, interval: 20 }).toBe(`PAYMENTS_API_KEY=${value}\n`);
    await expect.poll(() => twoLogs.some((e) => e.code === 'agent_render_failed'), { timeout: 30_000, interval: 20 }).toBe(true);
    // The file the process reads changed: it is told, though the other file failed.
    await expect.poll(secondReloads, { timeout: 10_000, interval: 20 }).toBe(2);
  } finally {
    await two.stop();
    second.kill('SIGKILL');
  }
}, 120_000);

it('logs codes, numbers and secret names only', () => {
  const text = JSON.stringify(logs);
  expect(text).not.toMatch(/rk_(wl|pay)_|eyJ/);
});
