/**
 * `rekey agent --on-revoke blank` (the default): a value revoked while the agent's change stream
 * was down is seen at the next `ready`, which names no current version for it; when it cannot be
 * fetched again, the rendered file is rewritten with its place empty, as after a `revoked` event
 * (test/integration/delivery-agent-revoked-file.test.ts), and the other value stays. A loopback
 * server stands in for rekey: its first stream ends, and the second starts with that `ready`.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type Agent, type AgentLogEvent } from '../../src/agent/agent.js';
import { loadTemplate } from '../../src/agent/templates.js';
import { agentOptions } from '../support/agent.js';
import { type StandIn, standIn } from '../support/fake-http.js';

let server: StandIn;
let agent: Agent | undefined;
let dir: string;
/** Whether `a` has a current version to hand out. */
let aCurrent = true;
const streams: ServerResponse[] = [];
let streamOpened: () => void = () => {};
let withdrawn: (event: AgentLogEvent) => void = () => {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rekey-agent-away-'));
  server = await standIn((request, response) => {
    if (request.url === '/v1/events') {
      response.writeHead(200, { 'content-type': 'text/event-stream' }).write('retry: 10\n\n');
      // A second connection: `a` was revoked meanwhile, and has no current version.
      if (streams.length) response.write(`event: ready\ndata: ${JSON.stringify({ secrets: [{ secret: 'a', version: aCurrent ? 1 : null }, { secret: 'b', version: 1 }] })}\n\n`);
      streams.push(response);
      return streamOpened();
    }
    const secret = request.url!.slice('/v1/secrets/'.length);
    // What the server answers for a secret with no current version (a Retry-After above the client's maxMs: at once, no retries).
    if (secret === 'a' && !aCurrent) return void response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '3600' }).end(JSON.stringify({ error: 'temporarily_unavailable' }));
    response.writeHead(200, { 'content-type': 'application/json', etag: '"1"' }).end(JSON.stringify({ secret, version: 1, value: `${secret}-value-1`, expiresAt: new Date(Date.now() + 300_000).toISOString() }));
  });
});
afterAll(async () => {
  await agent?.stop();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

it('blanks a value revoked while the stream was down, once the next ready shows it has no current version', async () => {
  await writeFile(join(dir, 'app.tmpl'), 'A={{ secret "a" }}\nB={{ secret "b" }}\n');
  const file = join(dir, 'app.env');
  const opened = new Promise<void>((resolve) => (streamOpened = resolve));
  agent = await startAgent(agentOptions(server.url, {
    templates: [await loadTemplate(`${join(dir, 'app.tmpl')}:${file}`)],
    logger: (event) => event.code === 'agent_withdrawn' && withdrawn(event),
  }));
  await opened;
  expect(await readFile(file, 'utf8')).toBe('A=a-value-1\nB=b-value-1\n');

  const told = new Promise<AgentLogEvent>((resolve) => (withdrawn = resolve));
  aCurrent = false;
  streams[0]!.end(); // the stream drops; the revocation's event is missed
  expect(await told).toEqual({ code: 'agent_withdrawn', secrets: ['a'], onRevoke: 'blank', files: 1 });
  expect(await readFile(file, 'utf8')).toBe('A=\nB=b-value-1\n');
  expect((await stat(file)).mode & 0o777).toBe(0o600);
});
