/**
 * The client library while `rekey server` is down (every request answered 503) and a token it
 * holds is past its renewal time but still valid: the failed renewal hands out the cached token,
 * and the calls that follow are answered from the cache for a while too, instead of each
 * sending a new round of failing retries (and making its caller wait them out) before getting
 * the token already in hand. A loopback HTTP server stands in for rekey: it mints one token, then
 * answers 503 to everything.
 */
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { createClient, type ClientLogEvent } from '../../src/client/index.js';
import { type StandIn, standIn } from '../support/fake-http.js';

let server: StandIn;
let requests = 0;

beforeAll(async () => {
  server = await standIn((_request, response) => {
    requests++;
    if (requests === 1) return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'token-1', token_type: 'Bearer', expires_in: 300 }));
    response.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'temporarily_unavailable' }));
  });
});
afterAll(() => server.stop());
afterEach(() => vi.useRealTimers());

it('answers from the cache after a failed renewal, without a new round of retries on every call', async () => {
  const logs: ClientLogEvent[] = [];
  const client = createClient({ url: server.url, credential: () => 'credential', retry: { attempts: 2, baseMs: 1, maxMs: 5_000 }, logger: (event) => logs.push(event) });
  expect((await client.token('api.example.com')).token).toBe('token-1');
  // The clock moved on to past the renewal time (75% of 300 s), well before the expiry; timers stay real.
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(Date.now() + 240_000);
  expect((await client.token('api.example.com')).token).toBe('token-1'); // the renewal fails: 2 attempts
  const afterFailure = requests;
  expect(afterFailure).toBe(3);
  for (let call = 0; call < 5; call++) expect((await client.token('api.example.com')).token).toBe('token-1');
  expect(requests).toBe(afterFailure);
  expect(logs.filter((event) => event.code === 'token_refresh_failed')).toHaveLength(1);
  // Once the retry policy's maxMs has passed, the next call tries again.
  vi.setSystemTime(Date.now() + 5_001);
  expect((await client.token('api.example.com')).token).toBe('token-1');
  expect(requests).toBe(afterFailure + 2);
  client.close();
});
