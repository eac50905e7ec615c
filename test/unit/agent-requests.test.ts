/**
 * `rekey agent`'s loopback front (src/agent/agent.ts) against a loopback HTTP server standing in
 * for rekey (GET /v1/secrets/{name}, POST /v1/token; the change stream refused): what a local
 * caller's malformed request gets, and which relayed requests are refused.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { request as httpRequest, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AGENT_TOKEN_HEADER, startAgent, type Agent, type AgentLogEvent } from '../../src/agent/agent.js';
import { loadTemplate } from '../../src/agent/templates.js';
import { type StandIn, standIn } from '../support/fake-http.js';

import { REQUEST_TOKEN } from '../support/agent.js';
const VALUE = 'rk_live_agent_requests_value_0123456789';
let server: StandIn;
let streamOpened: (response: ServerResponse) => void = () => {};
const failingStream = new Promise<ServerResponse>((resolve) => (streamOpened = resolve));
let agent: Agent;
const logs: AgentLogEvent[] = [];

beforeAll(async () => {
  server = await standIn((request, response) => {
    if (request.url === '/v1/events' && request.headers.authorization === 'Bearer failing-credential') {
      // The stream of the agent that cannot start: held open, as rekey server holds it.
      response.writeHead(200, { 'content-type': 'text/event-stream' }).write('retry: 10\n\n');
      return streamOpened(response);
    }
    if (request.url === '/v1/secrets/not-granted') {
      // Refused once that agent's stream is open, so what its failed start leaves behind can be seen.
      return void failingStream.then(() => response.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'insufficient_scope' })));
    }
    if (request.url?.startsWith('/v1/secrets/')) {
      const secret = decodeURIComponent(request.url.slice('/v1/secrets/'.length));
      return void response.writeHead(200, { 'content-type': 'application/json', etag: '"1"' }).end(JSON.stringify({ secret, version: 1, value: VALUE, expiresAt: new Date(Date.now() + 300_000).toISOString() }));
    }
    if (request.url === '/v1/token') return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'token-1', token_type: 'Bearer', expires_in: 300 }));
    response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not_found' }));
  });
  agent = await startAgent({
    server: server.url,
    credential: () => Promise.resolve('credential'),
    requestToken: REQUEST_TOKEN,
    port: 0,
    secrets: [],
    audiences: [],
    templates: [],
    logger: (event) => logs.push(event),
  });
});
afterAll(async () => {
  await agent?.stop();
  await server.stop();
});

const get = async (path: string, headers: Record<string, string> = {}) => {
  const response = await fetch(`${agent.url}${path}`, { headers: { [AGENT_TOKEN_HEADER]: REQUEST_TOKEN, ...headers } });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

it('serves a value to a request carrying the per-host token', async () => {
  expect(await get('/v1/secrets/payments-api-key')).toMatchObject({ status: 200, body: { secret: 'payments-api-key', value: VALUE } });
});

it('answers a name that is not valid percent-encoding 400, not as a failure of its own', async () => {
  for (const path of ['/v1/secrets/%E0%A4%A', '/v1/secrets/a%2', '/v1/secrets/%ZZ', '/v1/secrets/ok/%C0%AF']) {
    expect(await get(path)).toEqual({ status: 400, body: { error: 'invalid_name' } });
  }
});

it('refuses a request relayed by a proxy, whether it says so with X-Forwarded-For or the standard Forwarded header', async () => {
  for (const headers of <Record<string, string>[]>[{ 'x-forwarded-for': '203.0.113.7' }, { forwarded: 'for=203.0.113.7' }, { forwarded: 'for="[2001:db8::1]";proto=https' }]) {
    expect(await get('/v1/secrets/payments-api-key', headers)).toEqual({ status: 401, body: { error: 'invalid_token' } });
    expect((await get('/v1/token?audience=api.example.com', headers)).status).toBe(401);
  }
});

/** A request with headers fetch() will not send as given (Host), straight over node:http. */
const raw = (path: string, headers: Record<string, string>) =>
  new Promise<number>((resolve, reject) => {
    const { port } = new URL(agent.url);
    httpRequest({ host: '127.0.0.1', port, path, headers: { [AGENT_TOKEN_HEADER]: REQUEST_TOKEN, ...headers } }, (response) => {
      response.resume();
      resolve(response.statusCode!);
    }).on('error', reject).end();
  });

it('answers only requests addressed to it on loopback: a page whose name was rebound to 127.0.0.1 (Host), or a browser page (Origin), is refused', async () => {
  const { port } = new URL(agent.url);
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`]) expect(await raw('/v1/secrets/payments-api-key', { host })).toBe(200);
  for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`, `127.0.0.1:${Number(port) + 1}`, `localhost.:${port}`]) {
    expect(await raw('/v1/secrets/payments-api-key', { host })).toBe(401);
    expect(await raw('/v1/token?audience=api.example.com', { host })).toBe(401);
  }
  for (const origin of ['https://evil.example', 'null', `http://127.0.0.1:${port}`]) expect(await raw('/v1/secrets/payments-api-key', { origin })).toBe(401);
});

it('refuses every method and path without the exact per-host token: none, a prefix, a longer one, the header twice', async () => {
  const send = (method: string, path: string, headers: Record<string, string | string[]>) =>
    new Promise<number>((resolve, reject) => {
      const { port } = new URL(agent.url);
      httpRequest({ host: '127.0.0.1', port, method, path, headers }, (response) => {
        response.resume();
        resolve(response.statusCode!);
      }).on('error', reject).end();
    });
  const wrong: Record<string, string | string[]>[] = [{}, { [AGENT_TOKEN_HEADER]: '' }, { [AGENT_TOKEN_HEADER]: REQUEST_TOKEN.slice(0, -1) }, { [AGENT_TOKEN_HEADER]: `${REQUEST_TOKEN}0` }, { [AGENT_TOKEN_HEADER]: [REQUEST_TOKEN, REQUEST_TOKEN] }];
  for (const method of ['GET', 'HEAD', 'OPTIONS', 'POST', 'DELETE']) {
    for (const path of ['/v1/secrets/payments-api-key', '/v1/token?audience=api.example.com', '/', '/unknown']) {
      for (const headers of wrong) expect(await send(method, path, headers), `${method} ${path} ${JSON.stringify(Object.keys(headers))}`).toBe(401);
    }
  }
  expect(await send('HEAD', '/v1/secrets/payments-api-key', { [AGENT_TOKEN_HEADER]: REQUEST_TOKEN })).toBe(405);
});

it('leaves nothing running when it cannot start (a template naming a secret not granted): its change stream is closed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rekey-agent-requests-'));
  try {
    await writeFile(join(dir, 'app.env.tmpl'), 'KEY={{ secret "not-granted" }}\n');
    const starting = startAgent({
      server: server.url,
      credential: () => Promise.resolve('failing-credential'),
      requestToken: REQUEST_TOKEN,
      port: 0,
      secrets: [],
      audiences: [],
      templates: [await loadTemplate(`${join(dir, 'app.env.tmpl')}:${join(dir, 'app.env')}`)],
    });
    await expect(starting).rejects.toMatchObject({ code: 'forbidden' });
    expect(await readFile(join(dir, 'app.env'), 'utf8').catch(() => 'absent')).toBe('absent');
    // Left open, the stream (and its reconnections) would keep `rekey agent` alive, serving nothing, instead of exiting.
    const stream = await failingStream;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      new Promise((resolve) => (stream.closed ? resolve('closed') : stream.once('close', () => resolve('closed')))),
      new Promise((resolve) => (timer = setTimeout(() => resolve('the failed agent still holds its change stream after 10 s'), 10_000))),
    ]);
    clearTimeout(timer);
    expect(outcome).toBe('closed');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('starts, with its file rendered, when the process of --pid-file has exited (a stale pid file): there is nothing to signal', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rekey-agent-requests-'));
  // A process that has exited: its pid is in no process table entry of ours now.
  const gone = spawn(process.execPath, ['-e', '']);
  const pid = gone.pid!;
  await new Promise((resolve) => gone.once('exit', resolve));
  const logs: AgentLogEvent[] = [];
  let started: Agent | undefined;
  try {
    await writeFile(join(dir, 'app.env.tmpl'), 'KEY={{ secret "payments-api-key" }}\n');
    started = await startAgent({
      server: server.url,
      credential: () => Promise.resolve('credential'),
      requestToken: REQUEST_TOKEN,
      port: 0,
      secrets: [],
      audiences: [],
      templates: [await loadTemplate(`${join(dir, 'app.env.tmpl')}:${join(dir, 'app.env')}`)],
      notify: { pid: () => Promise.resolve(pid), signal: 'SIGHUP' },
      logger: (event) => logs.push(event),
    });
    expect(await readFile(join(dir, 'app.env'), 'utf8')).toBe(`KEY=${VALUE}\n`);
    // Told once the files written at start have settled (the signal waits for a quiet second).
    await expect.poll(() => logs, { timeout: 10_000, interval: 20 }).toContainEqual({ code: 'agent_signal_failed', pid });
    expect(logs.map((e) => e.code)).not.toContain('agent_render_failed');
  } finally {
    await started?.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
