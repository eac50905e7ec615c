/**
 * OpenID Connect sign-in when the provider fails on the way (issue 16): the token endpoint
 * cannot be reached at the exchange. The browser is sent back to the sign-in page like any
 * refusal, and nothing logs the authorization code (it is in the callback's URL). And a flood
 * of unauthenticated starts, each of which keeps a flow in Redis, is cut off per source.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { dashboardRoutes, SIGN_IN_STARTS } from '../../src/dashboard/routes.js';
import { CLOSED_PORT } from '../support/closed-port.js';
import { testRedis } from '../support/redis.js';
import { startHarness, type Harness } from '../support/harness.js';
import { memoryConfig } from '../support/memory-provider.js';

let h: Harness;
let idp: Server;

beforeAll(async () => {
  h = await startHarness({ label: 'dashboard-oidc-errors', routes: [adminApiRoutes, dashboardRoutes] });
  // A discovery document whose token endpoint is a closed port: the exchange fails at the network.
  idp = createServer((request, response) => {
    const issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
    if (request.url !== '/.well-known/openid-configuration') return void response.writeHead(404).end();
    response.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `http://127.0.0.1:${CLOSED_PORT}/token`, jwks_uri: `${issuer}/jwks` }),
    );
  });
  await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', resolve));
  await h.apply(`${memoryConfig('dashboard-oidc-errors', { 'pay-api': 'grace: 1h' })}dashboard:
  oidc:
    issuer: http://127.0.0.1:${(idp.address() as AddressInfo).port}
    clientId: rekey-dashboard
    redirectUri: ${h.serving!.url}/ui/oidc/callback
    insecure: true
    groups: { sre: [read] }
`);
});

afterAll(async () => {
  await new Promise((resolve) => idp?.close(resolve));
  await h?.stop();
});

it('a token endpoint that cannot be reached: back to sign-in with a reason, and the code in no log line', async () => {
  const start = await fetch(`${h.serving!.url}/ui/oidc/start`, { redirect: 'manual' });
  expect(start.status).toBe(303);
  const state = new URL(start.headers.get('location')!).searchParams.get('state')!;
  const cookie = start.headers.get('set-cookie')!.split(';')[0]!;
  const code = 'authorization-code-0123456789-marker';
  const callback = await fetch(`${h.serving!.url}/ui/oidc/callback?state=${state}&code=${code}`, { redirect: 'manual', headers: { cookie } });
  expect(await callback.text()).not.toContain(code);
  expect([callback.status, callback.headers.get('location')]).toEqual([303, '/ui/?signin=exchange']);
  expect(callback.headers.get('set-cookie')).toMatch(/^__Host-rekey_oidc=; /);
  expect(h.logs.filter((line) => line.includes(code))).toEqual([]);
});

it('a source starting sign-ins without end gets 429 after its share; Redis keeps no more flows than that', async () => {
  const redis = testRedis();
  try {
    const flows = async () => (await redis.keys(`${h.env.prefix}:oidc-flow:*`)).length;
    const before = await flows();
    const statuses: number[] = [];
    for (let i = 0; i < SIGN_IN_STARTS.max + 5; i++) statuses.push((await fetch(`${h.serving!.url}/ui/oidc/start`, { redirect: 'manual' })).status);
    // Started, then refused: at most its share started (the test before took one of it).
    const started = statuses.indexOf(429);
    expect(started).toBeGreaterThanOrEqual(SIGN_IN_STARTS.max - 1);
    expect(statuses.slice(0, started).every((status) => status === 303)).toBe(true);
    expect(statuses.slice(started).every((status) => status === 429)).toBe(true);
    expect(await flows()).toBe(before + started);
  } finally {
    redis.disconnect();
  }
});
