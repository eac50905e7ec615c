/**
 * `rekey agent` stopped (SIGTERM) while a refresh the change stream asked for is still out: the
 * answer that comes after stop() is rendered nowhere, and nothing more is asked of the server
 * with the agent's credential. A loopback server stands in for rekey: it holds the refresh's
 * read until the agent has stopped.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent } from '../../src/agent/agent.js';
import { loadTemplate } from '../../src/agent/templates.js';
import { type StandIn, standIn } from '../support/fake-http.js';
import { agentOptions } from '../support/agent.js';

let server: StandIn;
let reads = 0;
let streamOpened: (response: ServerResponse) => void = () => {};
const stream = new Promise<ServerResponse>((resolve) => (streamOpened = resolve));
let refreshArrived: (response: ServerResponse) => void = () => {};
const refresh = new Promise<ServerResponse>((resolve) => (refreshArrived = resolve));
let readAfterStop: () => void = () => {};
const afterStop = new Promise<void>((resolve) => (readAfterStop = resolve));

const answer = (response: ServerResponse, version: number) =>
  response.writeHead(200, { 'content-type': 'application/json', etag: `"${version}"` }).end(JSON.stringify({ secret: 'held', version, value: `value-${version}`, expiresAt: new Date(Date.now() + 300_000).toISOString() }));

beforeAll(async () => {
  server = await standIn((request, response) => {
    if (request.url === '/v1/events') {
      response.writeHead(200, { 'content-type': 'text/event-stream' }).write('retry: 10\n\n');
      return streamOpened(response);
    }
    if (request.url === '/v1/secrets/held') {
      reads++;
      if (reads === 1) return void answer(response, 1);
      if (reads === 2) return refreshArrived(response);
      readAfterStop();
      return void answer(response, reads);
    }
    response.writeHead(404).end();
  });
});
afterAll(() => server.stop());

it('renders nothing and reads nothing once stopped, though a refresh was out when it stopped', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rekey-agent-stop-'));
  try {
    await writeFile(join(dir, 'app.env.tmpl'), 'KEY={{ secret "held" }}\n');
    const agent = await startAgent(agentOptions(server.url, {
      templates: [await loadTemplate(`${join(dir, 'app.env.tmpl')}:${join(dir, 'app.env')}`)],
    }));
    expect(await readFile(join(dir, 'app.env'), 'utf8')).toBe('KEY=value-1\n');
    (await stream).write(`id: 1-0\nevent: rotated\ndata: ${JSON.stringify({ secret: 'held', version: 2 })}\n\n`);
    const held = await refresh;
    await agent.stop();
    answer(held, 2);
    // Rendering again after stop would read the value anew (stop() forgot the cache): a third read. A bound for its absence.
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([afterStop.then(() => 'read after stop'), new Promise((resolve) => (timer = setTimeout(() => resolve('nothing'), 3_000)))]);
    clearTimeout(timer);
    expect(outcome).toBe('nothing');
    expect(await readFile(join(dir, 'app.env'), 'utf8')).toBe('KEY=value-1\n');
  } finally {
    await rm(dir, { recursive: true, force: true, maxRetries: 5 });
  }
});
