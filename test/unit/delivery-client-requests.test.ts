/**
 * Where the client library (src/client) sends its credential: only to the URL of the request it
 * means. A key service never redirects, so a 3xx (from the server, or a proxy in between) is an
 * error: neither the `subject_token` body nor the bearer credential follows it, to another host
 * or to another path. A secret name cannot move the request to another path either (`..` and
 * `.` segments are refused before anything is sent). Two loopback HTTP servers stand in for
 * rekey and for wherever a redirect points; each records what it received.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createClient, RekeyClientError, type ClientLogEvent } from '../../src/client/index.js';

const CREDENTIAL = 'credential-that-must-stay-home';

interface Seen {
  method: string;
  path: string;
  authorization?: string;
  body: string;
}

async function recorder(handle: (request: IncomingMessage, response: ServerResponse) => void): Promise<{ server: Server; url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      seen.push({ method: request.method!, path: request.url!, authorization: request.headers.authorization, body });
      handle(request, response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

let rekey: Awaited<ReturnType<typeof recorder>>;
let elsewhere: Awaited<ReturnType<typeof recorder>>;
/** Where rekey's stand-in redirects the next requests. */
let redirect: { status: number; location: () => string } | undefined;

beforeAll(async () => {
  elsewhere = await recorder((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  rekey = await recorder((request, response) => {
    if (redirect && request.url!.startsWith('/v1/')) return void response.writeHead(redirect.status, { location: redirect.location() }).end();
    response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
  });
});
afterEach(() => {
  rekey.seen.length = 0;
  elsewhere.seen.length = 0;
  redirect = undefined;
});
afterAll(async () => {
  for (const { server } of [rekey, elsewhere]) await new Promise((resolve) => server.close(resolve));
});

const client = (logs: ClientLogEvent[] = []) => createClient({ url: rekey.url, credential: () => CREDENTIAL, retry: { attempts: 2, baseMs: 1, maxMs: 5 }, logger: (event) => logs.push(event) });
const failure = (promise: Promise<unknown>) => promise.then(() => expect.unreachable('it resolved'), (error: unknown) => error);
/** Every request either server received that carried the credential, anywhere. */
const leaked = () => [...rekey.seen, ...elsewhere.seen].filter((s) => s.authorization?.includes(CREDENTIAL) || s.body.includes(CREDENTIAL));

for (const status of [301, 302, 303, 307, 308]) {
  it(`POST /v1/token answered ${status} to another host: the subject_token is not sent there, and the call fails as a protocol error`, async () => {
    redirect = { status, location: () => `${elsewhere.url}/collect` };
    const error = await failure(client().token('api.example.com'));
    expect(elsewhere.seen).toEqual([]);
    expect(rekey.seen.map((s) => s.path)).toEqual(['/v1/token']);
    expect(error).toBeInstanceOf(RekeyClientError);
    expect(error).toMatchObject({ code: 'protocol', status });
    expect(String((error as Error).message)).not.toContain(CREDENTIAL);
  });
}

it('GET /v1/secrets/{name} answered 307 to another path of the same host or to another host: the bearer credential is not sent there', async () => {
  redirect = { status: 307, location: () => '/api/v1/elsewhere' };
  const samehost = await failure(client().secret('payments-api-key'));
  redirect = { status: 308, location: () => `${elsewhere.url}/collect` };
  const otherhost = await failure(client().secret('payments-api-key'));
  expect(leaked().map((s) => s.path)).toEqual(['/v1/secrets/payments-api-key', '/v1/secrets/payments-api-key']);
  expect(rekey.seen.map((s) => s.path)).toEqual(['/v1/secrets/payments-api-key', '/v1/secrets/payments-api-key']);
  expect(elsewhere.seen).toEqual([]);
  expect(samehost).toMatchObject({ code: 'protocol', status: 307 });
  expect(otherhost).toMatchObject({ code: 'protocol', status: 308 });
});

it('GET /v1/events answered 307: the stream does not follow it, and logs the status it got', async () => {
  redirect = { status: 307, location: () => '/api/v1/elsewhere' };
  const logs: ClientLogEvent[] = [];
  const stop = client(logs).subscribe(() => {});
  try {
    await expect.poll(() => rekey.seen.length + elsewhere.seen.length, { timeout: 10_000 }).toBeGreaterThan(1);
    expect(leaked().map((s) => s.path)).toEqual(rekey.seen.filter((s) => s.path === '/v1/events').map((s) => s.path));
    await expect.poll(() => logs.some((e) => e.code === 'stream_retrying' && e.status === 307), { timeout: 10_000 }).toBe(true);
  } finally {
    stop();
  }
  expect(elsewhere.seen).toEqual([]);
});

for (const name of ['..', '../token', 'a/../../../api/v1/secrets', '.', './payments-api-key', 'a/./b', 'a/..']) {
  it(`refuses the secret name ${JSON.stringify(name)} before sending anything: a dot segment would move the request (and its credential) to another path`, async () => {
    const error = await failure(client().secret(name));
    expect(leaked().map((s) => s.path)).toEqual([]);
    expect(rekey.seen).toEqual([]);
    expect(error).toBeInstanceOf(RekeyClientError);
    expect(error).toMatchObject({ code: 'invalid_name' });
  });
}

it('sends a name with dots inside its segments, or characters URLs treat specially, as exactly that name', async () => {
  const c = client();
  for (const name of ['team/app.v2/key', 'a..b', '.hidden/x', 'x%2F..%2Fy', 'a?b#c']) await failure(c.secret(name));
  expect(rekey.seen.map((s) => s.path)).toEqual([
    '/v1/secrets/team/app.v2/key',
    '/v1/secrets/a..b',
    '/v1/secrets/.hidden/x',
    '/v1/secrets/x%252F..%252Fy',
    '/v1/secrets/a%3Fb%23c',
  ]);
});
