/**
 * The `rekey agent` command itself, spawned as a process the way a sidecar container runs it
 * (delivery-agent.test.ts covers the agent's behaviour in process): its flags parsed, the
 * per-host token file created 0600 when missing, values and tokens served on loopback only with
 * that token, the cache refreshed on the change stream after a rotation (its JSON log line on
 * stderr), no value or token in its output, and SIGTERM ending it with exit code 0.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AGENT_TOKEN_HEADER } from '../../src/agent/agent.js';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { jwksRoutes } from '../../src/jwks/routes.js';
import { currentVersion, storedValue, verifyServed } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';
import { kill, spawnRekey, waitForOutput, type Child } from '../support/processes.js';

let h: Harness;
let dir: string;
let agent: Child;
let agentUrl: string;
let requestToken: string;

beforeAll(async () => {
  h = await startHarness({ label: 'delivery-agent-process', routes: [deliveryRoutes, jwksRoutes] });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  workloads: { clients: [orders], store: { provider: vault }, issuer: { type: random, prefix: rk_wl_ }, grace: 1h }
  api-signing: { store: { provider: vault }, issuer: { type: jwt-signing-key, alg: ES256 }, grace: 10m }
  payments-api-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_pay_ }, grace: 1h }
delivery:
  issuer: https://rekey.test
  authenticators:
    workloads: { type: client-key, secret: workloads }
  grants:
    api: { authenticator: workloads, subjects: ["workloads/*"], token: { signingKey: api-signing, audience: api.example.com, ttl: 5m } }
    payments: { authenticator: workloads, subjects: ["workloads/orders"], value: { secret: payments-api-key, ttl: 5m } }
`);
  for (const secret of ['workloads/orders', 'api-signing', 'payments-api-key']) expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
  dir = await mkdtemp(join(tmpdir(), 'rekey-agent-process-'));
  await writeFile(join(dir, 'client-key'), `${await storedValue(h, 'workloads/orders')}\n`, { mode: 0o600 });
  // Any free port (its URL is read from the output below): a random pick once collided with a port in use.
  agent = spawnRekey(
    ['agent', '--server', h.serving!.url, '--client-key-file', join(dir, 'client-key'), '--request-token-file', join(dir, 'agent-token'), '--port', '0', '--secret', 'payments-api-key', '--audience', 'api.example.com'],
    h.childEnv(),
  );
  const listening = /rekey agent: (http:\/\/127\.0\.0\.1:\d+)/;
  await waitForOutput(agent, listening);
  agentUrl = listening.exec(agent.output())![1]!;
  requestToken = (await readFile(join(dir, 'agent-token'), 'utf8')).trim();
}, 180_000);

afterAll(async () => {
  if (agent && agent.process.exitCode === null) await kill(agent);
  await h.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const get = async (path: string, headers: Record<string, string> = { [AGENT_TOKEN_HEADER]: requestToken }) => {
  const response = await fetch(`${agentUrl}${path}`, { headers });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

it('creates the per-host token file 0600 and serves only requests that carry its token', async () => {
  expect((await stat(join(dir, 'agent-token'))).mode & 0o777).toBe(0o600);
  expect(requestToken.length).toBeGreaterThanOrEqual(32);
  expect(await get('/v1/secrets/payments-api-key')).toMatchObject({ status: 200, body: { value: await storedValue(h, 'payments-api-key'), version: (await currentVersion(h, 'payments-api-key')).number } });
  const token = await get('/v1/token?audience=api.example.com');
  expect((await verifyServed(h, token.body.access_token as string, { issuer: 'https://rekey.test', audience: 'api.example.com' })).payload.sub).toBe('workloads/orders');
  expect((await get('/v1/secrets/payments-api-key', {})).status).toBe(401);
  expect((await get('/v1/secrets/payments-api-key', { [AGENT_TOKEN_HEADER]: 'wrong' })).status).toBe(401);
});

it('refreshes after a rotation, logging JSON lines of codes on stderr, never a value or token', async () => {
  await waitForOutput(agent, /"code":"stream_open"/, 60_000);
  expect((await h.rotate('payments-api-key', 60_000)).status).toBe('succeeded');
  const promoted = await currentVersion(h, 'payments-api-key');
  await waitForOutput(agent, new RegExp(`"code":"agent_refreshed","secret":"payments-api-key","version":${promoted.number}\\b`), 60_000);
  expect((await get('/v1/secrets/payments-api-key')).body).toMatchObject({ version: promoted.number, value: await storedValue(h, 'payments-api-key') });
  expect(agent.output()).not.toMatch(/rk_(wl|pay)_|eyJ/);
}, 120_000);

it('stops on SIGTERM with exit code 0', async () => {
  expect(await kill(agent, 'SIGTERM')).toBe(0);
});

it('refuses a --signal it could never send (HUP, as kill -HUP spells it) at start, exit 2, instead of starting and never signalling', async () => {
  // The process to signal is not running yet (no pid file): the agent would start, render, and fail to signal at the first change.
  const wrong = spawnRekey(
    ['agent', '--server', h.serving!.url, '--client-key-file', join(dir, 'client-key'), '--request-token-file', join(dir, 'agent-token'), '--port', '0', '--secret', 'payments-api-key', '--pid-file', join(dir, 'app.pid'), '--signal', 'HUP'],
    h.childEnv(),
  );
  try {
    // Whichever comes first: the refusal (exit) or the agent listening.
    const listening = waitForOutput(wrong, /rekey agent: http:/, 60_000).then(() => 'listening', () => 'exited');
    expect(await Promise.race([wrong.exited.then(() => 'exited'), listening])).toBe('exited');
    expect(await wrong.exited).toBe(2);
    expect(wrong.output()).toMatch(/--signal/);
  } finally {
    if (wrong.process.exitCode === null) await kill(wrong);
  }
}, 120_000);
