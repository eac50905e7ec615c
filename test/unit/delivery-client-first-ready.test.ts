/**
 * A token obtained before the client followed the change stream, whose signing key was revoked
 * before the stream was open: no `revoked` event reaches the client, and its first `ready` (the
 * signing key with no current version) cannot say which key signed the cached token. The token
 * is forgotten at the first `ready`, as a missed revocation's would be: the next `token()` asks
 * the server, instead of handing out a token every gateway refuses until it expires. A loopback
 * HTTP server stands in for rekey (POST /v1/token, GET /v1/events).
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import { type StandIn, standIn } from '../support/fake-http.js';

let server: StandIn;
let minted = 0;
const open: ServerResponse[] = [];

beforeAll(async () => {
  server = await standIn((request, response) => {
    if (request.url === '/v1/token') {
      minted++;
      return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: `token-${minted}`, token_type: 'Bearer', expires_in: 300 }));
    }
    if (request.url === '/v1/events') {
      // Version 1 of the signing key, which signed token-1, leaked and was revoked before the client followed the stream.
      response.writeHead(200, { 'content-type': 'text/event-stream' }).write(`retry: 10\n\nevent: ready\ndata: ${JSON.stringify({ secrets: [{ secret: 'api-signing', version: null }] })}\n\n`);
      return void open.push(response);
    }
    response.writeHead(404).end();
  });
});
afterAll(() => server.stop());

it("forgets the tokens it holds at the stream's first ready", async () => {
  const client = createClient({ url: server.url, credential: () => 'credential' });
  expect((await client.token('api.example.com')).token).toBe('token-1');
  let ready: () => void = () => {};
  const readied = new Promise<void>((resolve) => (ready = resolve));
  const stop = client.subscribe((change) => change.type === 'ready' && ready());
  await readied;
  try {
    expect((await client.token('api.example.com')).token).toBe('token-2');
    // Once following, a token is kept until a change says otherwise.
    expect((await client.token('api.example.com')).token).toBe('token-2');
  } finally {
    stop();
    client.close();
  }
});
