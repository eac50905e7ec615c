/**
 * A credential read from a file (as docs/delivery.md's example does: `readFile(path, 'utf8')`)
 * often ends with a newline. The bearer header loses it (fetch trims a header value), so
 * `secret()` worked, while `token()` sent it inside `subject_token`, which no authenticator
 * takes: the same file passed one call and failed the other. The client sends the credential
 * without surrounding whitespace everywhere (no credential rekey takes holds any), as `rekey
 * agent` reads its files. A loopback HTTP server stands in for rekey and accepts exactly the key.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import { type StandIn, standIn } from '../support/fake-http.js';

const KEY = 'rk_cli_0123456789abcdefghijklmnopqrst';
let server: StandIn;
let url: string;

beforeAll(async () => {
  server = await standIn((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const json = (status: number, payload: object) => response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
      if (request.url === '/v1/token') {
        if (new URLSearchParams(body).get('subject_token') !== KEY) return json(400, { error: 'invalid_request' });
        return json(200, { access_token: 'minted', token_type: 'Bearer', expires_in: 300 });
      }
      if (request.headers.authorization !== `Bearer ${KEY}`) return json(401, { error: 'invalid_token' });
      json(200, { secret: 'k', version: 1, value: 'v1', expiresAt: new Date(Date.now() + 60_000).toISOString() });
    });
  });
  url = server.url;
});
afterAll(() => server.stop());

it('a credential file ending with a newline works for token() as for secret()', async () => {
  const client = createClient({ url, credential: () => `${KEY}\n`, credentialType: 'urn:ietf:params:oauth:token-type:access_token' });
  expect(await client.secret('k')).toMatchObject({ value: 'v1' });
  expect(await client.token('api.example.com')).toMatchObject({ token: 'minted' });
});
