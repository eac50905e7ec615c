/**
 * `rekey agent --on-revoke blank` (the default) withdraws from the rendered files the value that
 * was revoked, and only that one:
 * - a `revoked` event for a previous version, after the files moved on to its successor, leaves
 *   them as they are even when the refetch fails (a network blip during a rotate-then-revoke leak
 *   does not blank the good value);
 * - a value revoked while the agent's change stream was down is seen at the next `ready`, which
 *   names no current version for it; when it cannot be fetched again, the file is rewritten with
 *   its place empty, as after a `revoked` event (test/integration/delivery-agent-revoked-file.test.ts),
 *   and the other value stays.
 * A loopback server stands in for rekey: its first stream carries the events, then ends; the
 * second starts with that `ready`.
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
/** The current version of each secret; `a`'s null: none to hand out. */
const versions: Record<string, number | null> = { a: 1, b: 1 };
/** Whether reads of `a` fail (a network blip: 503). */
let aFails = false;
const streams: ServerResponse[] = [];
let streamOpened: () => void = () => {};
const logs: AgentLogEvent[] = [];
let waiting: { code: AgentLogEvent['code']; resolve: (event: AgentLogEvent) => void } | undefined;
const next = (code: AgentLogEvent['code']) => new Promise<AgentLogEvent>((resolve) => (waiting = { code, resolve }));
const file = () => join(dir, 'app.env');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rekey-agent-away-'));
  server = await standIn((request, response) => {
    if (request.url === '/v1/events') {
      response.writeHead(200, { 'content-type': 'text/event-stream' }).write('retry: 10\n\n');
      // A second connection: `a` was revoked meanwhile, and has no current version.
      if (streams.length) response.write(`event: ready\ndata: ${JSON.stringify({ secrets: Object.entries(versions).map(([secret, version]) => ({ secret, version })) })}\n\n`);
      streams.push(response);
      return streamOpened();
    }
    const secret = request.url!.slice('/v1/secrets/'.length);
    const version = versions[secret];
    // What the server answers for a secret with no current version, or in a blip (a Retry-After above the client's maxMs: at once, no retries).
    if (version === null || (secret === 'a' && aFails)) return void response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '3600' }).end(JSON.stringify({ error: 'temporarily_unavailable' }));
    response.writeHead(200, { 'content-type': 'application/json', etag: `"${version}"` }).end(JSON.stringify({ secret, version, value: `${secret}-value-${version}`, expiresAt: new Date(Date.now() + 300_000).toISOString() }));
  });
});
afterAll(async () => {
  await agent?.stop();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

it('leaves the files as they are when a previous version is revoked after they moved on, though the refetch fails', async () => {
  await writeFile(join(dir, 'app.tmpl'), 'A={{ secret "a" }}\nB={{ secret "b" }}\n');
  const opened = new Promise<void>((resolve) => (streamOpened = resolve));
  agent = await startAgent(agentOptions(server.url, {
    templates: [await loadTemplate(`${join(dir, 'app.tmpl')}:${file()}`)],
    logger: (event) => {
      logs.push(event);
      if (event.code === waiting?.code && (event.code !== 'agent_rendered' || event.files > 0)) waiting.resolve(event);
    },
  }));
  await opened;
  expect(await readFile(file(), 'utf8')).toBe('A=a-value-1\nB=b-value-1\n');
  const events = streams[0]!;
  // a rotated: the file moves on to a-value-2.
  const rendered = next('agent_rendered');
  versions.a = 2;
  events.write(`id: 1-0\nevent: rotated\ndata: ${JSON.stringify({ secret: 'a', version: 2 })}\n\n`);
  await rendered;
  expect(await readFile(file(), 'utf8')).toBe('A=a-value-2\nB=b-value-1\n');
  // Version 1 revoked (a rotate-then-revoke leak), the refetch failing on a blip.
  const failed = next('agent_refresh_failed');
  aFails = true;
  events.write(`id: 2-0\nevent: revoked\ndata: ${JSON.stringify({ secret: 'a', version: 1 })}\n\n`);
  await failed;
  // Then b rotates: its rendering comes after anything the revocation queued (the agent renders one thing at a time),
  // and fails, reading a (still failing): the file keeps its text.
  const renderFailed = next('agent_render_failed');
  versions.b = 2;
  events.write(`id: 3-0\nevent: rotated\ndata: ${JSON.stringify({ secret: 'b', version: 2 })}\n\n`);
  expect(await renderFailed).toEqual({ code: 'agent_render_failed', file: file(), reason: 'unavailable' });
  expect(logs.map((event) => event.code)).not.toContain('agent_withdrawn');
  expect(await readFile(file(), 'utf8')).toBe('A=a-value-2\nB=b-value-1\n');
});

it('blanks a value revoked while the stream was down, once the next ready shows it has no current version', async () => {
  aFails = false;
  const told = next('agent_withdrawn');
  versions.a = null;
  streams[0]!.end(); // the stream drops; the revocation's event is missed
  expect(await told).toEqual({ code: 'agent_withdrawn', secrets: ['a'], onRevoke: 'blank', files: 1 });
  // b as the client has it now (version 2, fetched when it rotated).
  expect(await readFile(file(), 'utf8')).toBe('A=\nB=b-value-2\n');
  expect((await stat(file())).mode & 0o777).toBe(0o600);
});
