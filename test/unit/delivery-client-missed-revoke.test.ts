/**
 * A signing key revoked while the client's change stream was down (a server restart, a network
 * cut) and the stream had no event id to resume from: the next connection starts with `ready`,
 * whose version of the signing key is no longer the one the last stream reported (null while a
 * leaked current version waits for its replacement). The cached tokens may be that key's, refused
 * everywhere now, so they are forgotten as a `revoked` event forgets them: the next `token()`
 * asks the server. A loopback HTTP server stands in for rekey (POST /v1/token, GET /v1/events).
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createClient, type SecretChange } from '../../src/client/index.js';
import { type StandIn, standIn } from '../support/fake-http.js';

let server: StandIn;
let url: string;
let minted = 0;
let connections = 0;
const open: ServerResponse[] = [];

beforeAll(async () => {
  server = await standIn((request, response) => {
    if (request.url === '/v1/token') {
      minted++;
      return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: `token-${minted}`, token_type: 'Bearer', expires_in: 300 }));
    }
    if (request.url === '/v1/events') {
      connections++;
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write('retry: 10\n\n');
      if (connections === 1) {
        // The first stream: the signing key at version 1, then the server goes away.
        return void response.end(`event: ready\ndata: ${JSON.stringify({ secrets: [{ secret: 'api-signing', version: 1 }] })}\n\n`);
      }
      // Meanwhile version 1 leaked and was revoked: its replacement is not promoted yet.
      response.write(`event: ready\ndata: ${JSON.stringify({ secrets: [{ secret: 'api-signing', version: null }] })}\n\n`);
      return void open.push(response);
    }
    response.writeHead(404).end();
  });
  url = server.url;
});
afterAll(() => server.stop());

it('a ready after a reconnection that shows a followed version changed forgets the cached tokens', async () => {
  const client = createClient({ url, credential: () => 'credential', retry: { attempts: 2, baseMs: 1, maxMs: 5 } });
  expect((await client.token('api.example.com')).token).toBe('token-1');
  const readies: SecretChange[] = [];
  let second: () => void = () => {};
  const reconnected = new Promise<void>((resolve) => (second = resolve));
  const stop = client.subscribe((change) => {
    if (change.type === 'ready') readies.push(change);
    if (readies.length === 2) second();
  });
  await reconnected;
  try {
    expect((await client.token('api.example.com')).token).toBe('token-2');
  } finally {
    stop();
    client.close();
  }
});
