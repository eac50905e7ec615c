/**
 * The client library against a server whose clock is not the client's: a value's `expiresAt` is
 * the server's time, so it is taken relative to the server's `Date` header. A client whose
 * clock is behind would otherwise keep a value long past its expiry (after a rotation, a leak's
 * revocation, while its stream is down or not followed); one whose clock is ahead would take every
 * value for expired already and read it anew, with an audited hand-out, on every call. A loopback
 * HTTP server stands in for rekey, its clock `skewMs` off the client's.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';

const TTL_MS = 300_000;
let server: Server;
let url: string;
let skewMs = 0;
let reads = 0;

beforeAll(async () => {
  server = createServer((_request, response) => {
    reads++;
    const serverNow = Date.now() + skewMs;
    response
      .writeHead(200, { 'content-type': 'application/json', date: new Date(serverNow).toUTCString() })
      .end(JSON.stringify({ secret: 'k', version: 1, value: 'v', expiresAt: new Date(serverNow + TTL_MS).toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

it('keeps a value no longer than its lifetime when the client clock is an hour behind the server', async () => {
  skewMs = 3_600_000;
  const client = createClient({ url, credential: () => 'credential' });
  const before = Date.now();
  const { expiresAt } = await client.secret('k');
  expect(expiresAt).toBeGreaterThan(before + TTL_MS - 5_000);
  expect(expiresAt).toBeLessThanOrEqual(Date.now() + TTL_MS);
});

it('caches a value when the client clock is ten minutes ahead of the server, instead of reading it on every call', async () => {
  skewMs = -600_000;
  reads = 0;
  const client = createClient({ url, credential: () => 'credential' });
  for (let call = 0; call < 3; call++) expect((await client.secret('k')).value).toBe('v');
  expect(reads).toBe(1);
});

it('takes expiresAt as it is when the clocks agree', async () => {
  skewMs = 0;
  const client = createClient({ url, credential: () => 'credential' });
  const before = Date.now();
  const { expiresAt } = await client.secret('k');
  expect(expiresAt).toBeGreaterThanOrEqual(before + TTL_MS);
  expect(expiresAt).toBeLessThanOrEqual(Date.now() + TTL_MS);
});
