/**
 * `close()` forgets every token and value, those still on their way too: an answer that arrives
 * after it fills no cache (the next call asks the server again) and sends nothing more. A
 * loopback HTTP server stands in for rekey and holds its answer until the test lets it go.
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

const answer = (response: ServerResponse) =>
  response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ secret: 'k', version: 3, value: 'v3', expiresAt: new Date(Date.now() + 60_000).toISOString() }));

it('a value read while the client is closed is not kept', async () => {
  const client = createClient({ url, credential: () => 'credential' });
  const first = new Promise<void>((resolve) => (server.arrived = resolve));
  const out = client.secret('k');
  await first;
  client.close();
  answer(server.held.shift()!);
  await out.catch(() => undefined);
  expect(server.requests).toBe(1);
  // Nothing kept: the next call asks the server.
  server.arrived = () => answer(server.held.shift()!);
  expect(await client.secret('k')).toMatchObject({ version: 3 });
  expect(server.requests).toBe(2);
});
