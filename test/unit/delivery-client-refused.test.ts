/**
 * A credential the server refused (revoked: 401 on a read, 400 `invalid_request` on an exchange)
 * is not sent again for the retry policy's maxMs: the calls meanwhile fail `unauthenticated`
 * from memory, so an app (or `rekey agent` serving one) asking in a loop does not hammer the
 * server. A different credential (a rotated token file) is sent at once, and the same one is
 * sent again once maxMs has passed (a client key restored is picked up). A loopback server
 * stands in for rekey; only Date is faked, to pass maxMs without waiting.
 */
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { createClient } from '../../src/client/index.js';
import { type StandIn, standIn } from '../support/fake-http.js';

let server: StandIn;
const accepted = new Set<string>();
const sent: string[] = [];

beforeAll(async () => {
  server = await standIn((request, response) => {
    if (request.url === '/v1/token') {
      sent.push('exchange');
      return void response.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid_request"}');
    }
    const credential = (request.headers.authorization ?? '').replace(/^Bearer /, '');
    sent.push(credential);
    if (!accepted.has(credential)) return void response.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_token"}');
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ secret: 'k', version: 1, value: 'v', expiresAt: new Date(Date.now() + 60_000).toISOString() }));
  });
});
afterAll(() => server.stop());
afterEach(() => vi.useRealTimers());

it('sends a refused credential once per maxMs, a new one at once', async () => {
  vi.useFakeTimers({ toFake: ['Date'] });
  let credential = 'revoked-key';
  let reads = 0;
  const client = createClient({ url: server.url, credential: () => (reads++, credential), retry: { maxMs: 5_000 } });
  for (let call = 0; call < 5; call++) await expect(client.secret('k')).rejects.toMatchObject({ code: 'unauthenticated', status: 401 });
  expect(sent).toEqual(['revoked-key']);

  // Restored at the server: picked up once maxMs has passed, not before.
  accepted.add('revoked-key');
  await expect(client.secret('k')).rejects.toMatchObject({ code: 'unauthenticated' });
  vi.setSystemTime(Date.now() + 5_001);
  expect((await client.secret('k')).value).toBe('v');
  expect(sent).toEqual(['revoked-key', 'revoked-key']);

  // A rotated credential file: the new credential is sent at once, though the last was refused a moment ago.
  accepted.delete('revoked-key');
  client.invalidate('k');
  await expect(client.secret('k')).rejects.toMatchObject({ code: 'unauthenticated' });
  credential = 'rotated-key';
  accepted.add('rotated-key');
  // Read once, compared with the refused one and sent (a credential callback may be costly: a cloud identity token).
  reads = 0;
  expect((await client.secret('k')).value).toBe('v');
  expect(reads).toBe(1);
  expect(sent).toEqual(['revoked-key', 'revoked-key', 'revoked-key', 'rotated-key']);
});

it('remembers a refusal by endpoint: a credential the token exchange refused is still sent to read a value', async () => {
  sent.length = 0;
  accepted.add('exchange-refused');
  const client = createClient({ url: server.url, credential: () => 'exchange-refused' });
  for (let call = 0; call < 3; call++) await expect(client.token('api')).rejects.toMatchObject({ code: 'unauthenticated', status: 400, error: 'invalid_request' });
  expect((await client.secret('k')).value).toBe('v');
  expect(sent).toEqual(['exchange', 'exchange-refused']);
});
