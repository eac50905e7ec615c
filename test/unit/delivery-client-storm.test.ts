/**
 * A rotation storm cannot keep a caller of the client library waiting: a read that a change
 * (invalidate(), as the change stream calls it) made stale while it was out is sent again, a
 * few times at most; then the caller gets the newest answer (not cached, so the next call asks
 * again). A loopback HTTP server stands in for rekey and reports each request's change before
 * answering, as a secret rotating on every read would.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createClient, type RekeyClient } from '../../src/client/index.js';
import { type StandIn, standIn } from '../support/fake-http.js';

/** Where the old code's loop is cut, so the test ends either way. */
const STORM = 50;
let server: StandIn;
let url: string;
let requests = 0;
let client: RekeyClient | undefined;

beforeAll(async () => {
  server = await standIn((_request, response) => {
    requests++;
    // The secret rotates while this read is out: the stream's event arrives before the answer.
    if (requests <= STORM) client?.invalidate('k');
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ secret: 'k', version: requests, value: `v${requests}`, expiresAt: new Date(Date.now() + 60_000).toISOString() }));
  });
  url = server.url;
});
afterAll(() => server.stop());

it('a value superseded on every read is read again a bounded number of times, then handed out uncached', async () => {
  client = createClient({ url, credential: () => 'credential' });
  const value = await client.secret('k');
  expect(requests).toBeLessThanOrEqual(4);
  expect(value).toMatchObject({ secret: 'k', version: requests, value: `v${requests}` });
  // Not cached: the next call reads again.
  const before = requests;
  await client.secret('k');
  expect(requests).toBeGreaterThan(before);
});
