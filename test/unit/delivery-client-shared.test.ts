/**
 * Callers of the client library asking for the same value at once share one request. A caller
 * that gives up (its AbortSignal fires) stops waiting, alone: the others still get the value
 * the shared request brings. A loopback HTTP server stands in for rekey and holds its answer
 * until the test lets it go.
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import { type HoldingStandIn, holdingStandIn } from '../support/fake-http.js';

let server: HoldingStandIn;
let url: string;

beforeAll(async () => {
  server = await holdingStandIn();
  url = server.url;
});
afterAll(() => server.stop());

it('one caller giving up does not fail the others sharing its request', async () => {
  const client = createClient({ url, credential: () => 'credential' });
  const first = new Promise<void>((resolve) => (server.arrived = resolve));
  const impatient = new AbortController();
  const a = client.secret('k', impatient.signal);
  const b = client.secret('k');
  await first;
  impatient.abort();
  await expect(a).rejects.toMatchObject({ code: 'aborted' });
  // The request still out (or one sent again) answers b.
  for (const response of server.held.splice(0)) answer(response);
  server.arrived = () => answer(server.held.shift()!);
  expect(await b).toMatchObject({ secret: 'k', version: 3, value: 'v3' });
  expect(server.requests).toBeLessThanOrEqual(2);
});

function answer(response: ServerResponse): void {
  if (response.writableEnded || response.destroyed) return;
  response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ secret: 'k', version: 3, value: 'v3', expiresAt: new Date(Date.now() + 60_000).toISOString() }));
}
