/**
 * `rekey agent --pid-file`: rendered files that change a moment apart (two secrets of one
 * template rotated one after the other) are told to the process with one signal, once the
 * changes have settled, not one signal per change: a process that restarts on the signal would
 * be restarted again while it starts. A loopback server stands in for rekey; its change stream
 * tells the agent of each rotation, the second as soon as the first one's file is rendered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type Agent, type AgentLogEvent } from '../../src/agent/agent.js';
import { loadTemplate } from '../../src/agent/templates.js';
import { type StandIn, standIn } from '../support/fake-http.js';
import { agentOptions } from '../support/agent.js';

const QUIET_MS = 2_000;
const versions: Record<string, number> = { a: 1, b: 1 };
let server: StandIn;
let dir: string;
let agent: Agent | undefined;
let streamOpened: (response: ServerResponse) => void = () => {};
const stream = new Promise<ServerResponse>((resolve) => (streamOpened = resolve));
let child: ChildProcess;
const logs: AgentLogEvent[] = [];
let waiting: { code: AgentLogEvent['code']; resolve: () => void } | undefined;
const next = (code: AgentLogEvent['code']) => new Promise<void>((resolve) => (waiting = { code, resolve }));

beforeAll(async () => {
  child = spawn(process.execPath, ['-e', "process.on('SIGHUP', () => {}); setInterval(() => {}, 1000)"], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  dir = await mkdtemp(join(tmpdir(), 'rekey-agent-signal-'));
  server = await standIn((request, response) => {
    if (request.url === '/v1/events') {
      response.writeHead(200, { 'content-type': 'text/event-stream' }).write('retry: 10\n\n');
      return streamOpened(response);
    }
    const secret = request.url!.slice('/v1/secrets/'.length);
    const version = versions[secret]!;
    response.writeHead(200, { 'content-type': 'application/json', etag: `"${version}"` }).end(JSON.stringify({ secret, version, value: `${secret}-${version}`, expiresAt: new Date(Date.now() + 300_000).toISOString() }));
  });
});
afterAll(async () => {
  await agent?.stop();
  await server.stop();
  child?.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true, maxRetries: 5 });
});

it('signals once for changes a moment apart, after the last of them', async () => {
  await writeFile(join(dir, 'app.env.tmpl'), 'A={{ secret "a" }}\nB={{ secret "b" }}\n');
  const started = next('agent_signalled');
  agent = await startAgent(agentOptions(server.url, {
    templates: [await loadTemplate(`${join(dir, 'app.env.tmpl')}:${join(dir, 'app.env')}`)],
    notify: { pid: () => Promise.resolve(child.pid), signal: 'SIGHUP', quietMs: QUIET_MS },
    logger: (event) => {
      logs.push(event);
      if (event.code === waiting?.code && (event.code !== 'agent_rendered' || event.files > 0)) waiting.resolve();
    },
  }));
  await started; // the files written at start
  const events = await stream;
  const from = logs.length;
  const firstRendered = next('agent_rendered');
  versions.a = 2;
  events.write(`id: 1-0\nevent: rotated\ndata: ${JSON.stringify({ secret: 'a', version: 2 })}\n\n`);
  await firstRendered;
  const signalled = next('agent_signalled');
  versions.b = 2;
  events.write(`id: 2-0\nevent: rotated\ndata: ${JSON.stringify({ secret: 'b', version: 2 })}\n\n`);
  await signalled;
  expect(await readFile(join(dir, 'app.env'), 'utf8')).toBe('A=a-2\nB=b-2\n');
  const told = logs.slice(from).filter((event) => (event.code === 'agent_rendered' && event.files > 0) || event.code === 'agent_signalled');
  expect(told.map((event) => event.code)).toEqual(['agent_rendered', 'agent_rendered', 'agent_signalled']);
});
