/**
 * `rekey agent` when a rendered file cannot be written any more (its directory gone: an unmounted
 * volume): the log says which file and why, as a code, and the value is in no message. A
 * loopback server stands in for rekey; its change stream tells the agent the secret rotated.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type Agent, type AgentLogEvent } from '../../src/agent/agent.js';
import { loadTemplate } from '../../src/agent/templates.js';
import { type StandIn, standIn } from '../support/fake-http.js';
import { agentOptions } from '../support/agent.js';

let server: StandIn;
let dir: string;
let agent: Agent | undefined;
let version = 1;
let streamOpened: (response: ServerResponse) => void = () => {};
const stream = new Promise<ServerResponse>((resolve) => (streamOpened = resolve));
const logs: AgentLogEvent[] = [];
let logged: (event: AgentLogEvent) => void = () => {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rekey-agent-render-'));
  server = await standIn((request, response) => {
    if (request.url === '/v1/events') {
      response.writeHead(200, { 'content-type': 'text/event-stream' }).write('retry: 10\n\n');
      return streamOpened(response);
    }
    response.writeHead(200, { 'content-type': 'application/json', etag: `"${version}"` }).end(JSON.stringify({ secret: 'k', version, value: `rk_live_value_${version}`, expiresAt: new Date(Date.now() + 300_000).toISOString() }));
  });
});
afterAll(async () => {
  await agent?.stop();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

it('logs which file could not be rendered and why (agent_render_failed with the file and an errno code), never the value', async () => {
  const volume = join(dir, 'volume');
  await mkdir(volume);
  await writeFile(join(dir, 'app.env.tmpl'), 'KEY={{ secret "k" }}\n');
  agent = await startAgent(agentOptions(server.url, {
    templates: [await loadTemplate(`${join(dir, 'app.env.tmpl')}:${join(volume, 'app.env')}`)],
    logger: (event) => {
      logs.push(event);
      logged(event);
    },
  }));
  expect(await readFile(join(volume, 'app.env'), 'utf8')).toBe('KEY=rk_live_value_1\n');
  await rm(volume, { recursive: true });
  const failed = new Promise<AgentLogEvent>((resolve) => (logged = (event) => event.code === 'agent_render_failed' && resolve(event)));
  version = 2;
  (await stream).write(`id: 2-0\nevent: rotated\ndata: ${JSON.stringify({ secret: 'k', version: 2 })}\n\n`);
  expect(await failed).toEqual({ code: 'agent_render_failed', file: join(volume, 'app.env'), reason: 'ENOENT' });
  expect(JSON.stringify(logs)).not.toContain('rk_live_value');
});
