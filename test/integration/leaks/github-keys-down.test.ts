// GitHub's key list cannot be loaded (api.github.com refusing the fetch: its anonymous rate
// limit, an egress outage): a genuine, correctly signed partner alert is then answered 503, so
// GitHub delivers it again later, not 401 as if its signature were bad. Nothing is recorded,
// and its address is not charged a failed authentication.
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send } from '../../support/gateways/index.js';
import { gatewaySecretYaml, post, providersYaml, startLeakEnv, storedValue, until, type LeakEnv } from './support.js';

let e: LeakEnv;
let server: Server;
/** What the stand-in for api.github.com answers: 403 (rate limited) or the key document. */
let status = 403;
const secret = `ghdown-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  e = await startLeakEnv('github-keys-down');
  const document = await readFile(e.github.keysFile, 'utf8');
  server = createServer((_req, res) => (status === 200 ? res.writeHead(200, { 'content-type': 'application/json' }).end(document) : res.writeHead(status).end()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/meta/public_keys/secret_scanning`;
  await e.h.apply(`${providersYaml(e)}\nsecrets:${gatewaySecretYaml(secret, 'onLeak: block-first')}\nleaks:\n  github: { publicKeys: "${url}", minRefresh: 1h }\n`);
  expect((await e.h.rotate(secret)).status).toBe('succeeded');
});
afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await e?.stop();
});

describe('GitHub secret scanning while its keys cannot be loaded', () => {
  it('answers a signed alert 503 (GitHub retries), records nothing, and leaves the key to the retry', async () => {
    const key = (await storedValue(e.h, secret)).reveal();
    const body = JSON.stringify([{ token: key, type: 'rekey_api_key', url: 'https://github.com/x/y/blob/main/z', source: 'content' }]);
    const answer = await post(e.h.serving!.url, '/webhooks/github-secret-scanning', body, e.github.headers(body));
    expect(answer.status).toBe(503);
    expect(answer.body).not.toContain(key);
    expect(await e.h.runtime.db.leakReport.count()).toBe(0);
    expect((await send(e.gateway.url, e.gateway.header, key)).status).toBe(200);

    // The keys can be fetched again: GitHub's next delivery of the same alert takes the leak path
    // (an early fetch comes at most every 10 s: until then the answer stays 503).
    status = 200;
    await until(async () => (await post(e.h.serving!.url, '/webhooks/github-secret-scanning', body, e.github.headers(body))).status === 200, 30_000, 'the alert accepted');
    await until(async () => (await send(e.gateway.url, e.gateway.header, key)).status === 401, 10_000, 'HAProxy refusing the key');
  });
});
