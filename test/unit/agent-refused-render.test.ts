/**
 * `rekey agent` whose credential is revoked after it started: a timed refresh that fails renders
 * nothing (the files would be read with the refused credential too, and fail), and tries again
 * after its delay only; a credential rotated since (a new token file) is used at once. A
 * loopback server stands in for rekey: values live 1.25 s, so the first refresh comes after 1 s.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AGENT_TOKEN_HEADER, startAgent, type AgentLogEvent } from '../../src/agent/agent.js';
import { loadTemplate } from '../../src/agent/templates.js';
import { type StandIn, standIn } from '../support/fake-http.js';

import { REQUEST_TOKEN } from '../support/agent.js';
let server: StandIn;
let dir: string;
let revoked = false;
const reads: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rekey-agent-refused-'));
  server = await standIn((request, response) => {
    if (request.url === '/v1/events') return void response.writeHead(200, { 'content-type': 'text/event-stream' }).write('retry: 10\n\n');
    const credential = (request.headers.authorization ?? '').replace(/^Bearer /, '');
    reads.push(credential);
    if (revoked && credential !== 'rotated-credential') return void response.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_token"}');
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ secret: 'k', version: 1, value: 'v1', expiresAt: new Date(Date.now() + 1_250).toISOString() }));
  });
});
afterAll(async () => {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

it('renders nothing after a timed refresh refused, and uses a rotated credential at once', async () => {
  await writeFile(join(dir, 'app.env.tmpl'), 'KEY={{ secret "k" }}\n');
  const codes: string[] = [];
  let failures = 0;
  let secondFailure: () => void = () => {};
  const failedTwice = new Promise<void>((resolve) => (secondFailure = resolve));
  let credential = 'agent-credential';
  const agent = await startAgent({
    server: server.url,
    credential: () => Promise.resolve(credential),
    requestToken: REQUEST_TOKEN,
    port: 0,
    secrets: [],
    audiences: [],
    templates: [await loadTemplate(`${join(dir, 'app.env.tmpl')}:${join(dir, 'app.env')}`)],
    logger: (event: AgentLogEvent) => {
      if (!event.code.startsWith('agent_')) return;
      codes.push(event.code);
      if (event.code === 'agent_refresh_failed' && ++failures === 2) secondFailure();
    },
  });
  try {
    expect(await readFile(join(dir, 'app.env'), 'utf8')).toBe('KEY=v1\n');
    revoked = true;
    await failedTwice;
    const first = codes.indexOf('agent_refresh_failed');
    // Between the two tries: no rendering (it read the value again, and failed: one more request per failure).
    expect(codes.slice(first + 1, codes.lastIndexOf('agent_refresh_failed'))).toEqual([]);
    expect(reads).toEqual(['agent-credential', 'agent-credential']);
    expect(await readFile(join(dir, 'app.env'), 'utf8')).toBe('KEY=v1\n');

    credential = 'rotated-credential';
    const answer = await fetch(`${agent.url}/v1/secrets/k`, { headers: { [AGENT_TOKEN_HEADER]: REQUEST_TOKEN } });
    expect(answer.status).toBe(200);
    expect(reads.at(-1)).toBe('rotated-credential');
  } finally {
    await agent.stop();
  }
});
