/**
 * OpenID Connect sign-in when the provider fails on the way (issue 16): the token endpoint
 * cannot be reached at the exchange. The browser is sent back to the sign-in page like any
 * refusal, and nothing logs the authorization code (it is in the callback's URL).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { dashboardRoutes } from '../../src/dashboard/routes.js';
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
      JSON.stringify({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: 'http://127.0.0.1:1/token', jwks_uri: `${issuer}/jwks` }),
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
