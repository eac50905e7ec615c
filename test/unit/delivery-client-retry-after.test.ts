/**
 * The client library's retries after a refusal that says when to come back (429 or 503 with
 * `Retry-After`, as `rekey server`'s admission answers when it is busy): no retry before that
 * time (delay-seconds, or an HTTP date read against the answer's Date), and clients refused together
 * do not all come back in the same millisecond; a time later
 * than the retry policy's maxMs ends the call `unavailable` at once instead of holding it. A loopback
 * HTTP server stands in for rekey: it refuses each client's first request, then answers.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createClient, type ClientLogEvent } from '../../src/client/index.js';

let server: Server;
let url: string;
/** Credentials refused once already. */
const refused = new Set<string>();

beforeAll(async () => {
  server = createServer((request, response) => {
    const credential = request.headers.authorization ?? '';
    if (!refused.has(credential)) {
      refused.add(credential);
      // A subject over a rate limit of few requests per window is told to come back later than the client's maxMs.
      if (credential === 'Bearer slow-subject') return void response.writeHead(429, { 'content-type': 'application/json', 'retry-after': '2' }).end('{"error":"slow_down"}');
      if (credential === 'Bearer behind-a-proxy') return void response.writeHead(503, { 'content-type': 'text/html', 'retry-after': '3600' }).end('<p>maintenance</p>');
      // An HTTP-date Retry-After, from a server whose clock is an hour ahead of the client's: 2 s by the server's Date.
      if (credential === 'Bearer dated') {
        const serverNow = Math.floor(Date.now() / 1000) * 1000 + 3_600_000;
        const headers = { 'content-type': 'application/json', date: new Date(serverNow).toUTCString(), 'retry-after': new Date(serverNow + 2000).toUTCString() };
        return void response.writeHead(503, headers).end('{"error":"temporarily_unavailable"}');
      }
      return void response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' }).end('{"error":"temporarily_unavailable"}');
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ secret: 'k', version: 1, value: 'v', expiresAt: new Date(Date.now() + 60_000).toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

it('retries a 503 no sooner than its Retry-After, and clients refused together at spread-out times', async () => {
  const delays = await Promise.all(
    [1, 2, 3, 4].map(async (n) => {
      const logs: ClientLogEvent[] = [];
      const client = createClient({ url, credential: () => `client-${n}`, logger: (event) => logs.push(event) });
      expect((await client.secret('k')).version).toBe(1);
      const retries = logs.filter((event) => event.code === 'retrying');
      expect(retries).toHaveLength(1);
      expect(retries[0]).toMatchObject({ status: 503, attempt: 1 });
      return retries[0]!.delayMs!;
    }),
  );
  expect(delays.every((delayMs) => delayMs >= 1000)).toBe(true);
  expect(new Set(delays).size, `delays ${delays.join(', ')} ms`).toBeGreaterThan(1);
}, 30_000);

it('gives up at once, not waiting, on a Retry-After longer than the retry policy\'s maxMs', async () => {
  // A subject over a rate limit told to come back in 2 s, with maxMs 500: a retry sooner is refused again, so none is sent.
  const logs: ClientLogEvent[] = [];
  const slow = createClient({ url, credential: () => 'slow-subject', retry: { baseMs: 1, maxMs: 500 }, logger: (event) => logs.push(event) });
  await expect(slow.secret('k')).rejects.toMatchObject({ code: 'unavailable', status: 429, error: 'slow_down' });
  // A proxy's maintenance page asks for an hour: the default policy (maxMs 10 s) does not hold the call that long.
  const proxied = createClient({ url, credential: () => 'behind-a-proxy', logger: (event) => logs.push(event) });
  await expect(proxied.secret('k')).rejects.toMatchObject({ code: 'unavailable', status: 503 });
  expect(logs.filter((event) => event.code === 'retrying')).toEqual([]);
  // Each was asked once; the next call is a new one.
  expect((await slow.secret('k')).version).toBe(1);
}, 30_000);

it('reads an HTTP-date Retry-After against the answer\'s Date, not the client\'s clock', async () => {
  const logs: ClientLogEvent[] = [];
  const client = createClient({ url, credential: () => 'dated', logger: (event) => logs.push(event) });
  expect((await client.secret('k')).version).toBe(1);
  const retries = logs.filter((event) => event.code === 'retrying');
  expect(retries).toHaveLength(1);
  // 2 s by the server's clock (plus jitter below the policy's first backoff of 200 ms); by the client's, an hour and 2 s.
  expect(retries[0]!.delayMs).toBeGreaterThanOrEqual(2000);
  expect(retries[0]!.delayMs).toBeLessThan(2200);
}, 30_000);
