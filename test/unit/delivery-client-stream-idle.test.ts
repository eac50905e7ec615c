/**
 * The client's change stream (src/client/events.ts) on a connection that goes silent without
 * closing: the server's node lost, a NAT or load balancer dropping the flow, no FIN ever
 * arriving. `rekey server` sends a keep-alive comment every 15 s, so a stream that brings
 * nothing for three of them is dead: it is dropped and opened again (with `Last-Event-ID`),
 * instead of waiting for undici's 300 s body timeout while rotations and revocations go unseen.
 * A loopback server stands in for rekey: its first stream sends `ready` and an event, then stops
 * writing and keeps the socket open; the second sends what was missed.
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { follow, type SecretChange } from '../../src/client/events.js';
import type { ClientLogEvent } from '../../src/client/index.js';
import { type StandIn, standIn } from '../support/fake-http.js';

let server: StandIn;
let url: string;
let connections = 0;
const lastEventIds: (string | undefined)[] = [];
const silent: ServerResponse[] = [];

beforeAll(async () => {
  server = await standIn((request, response) => {
    if (request.url !== '/v1/events') return void response.writeHead(404).end();
    connections++;
    lastEventIds.push(request.headers['last-event-id'] as string | undefined);
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    response.write('retry: 10\n\n');
    if (connections === 1) {
      response.write(`event: ready\ndata: ${JSON.stringify({ secrets: [{ secret: 'payments-api-key', version: 7 }] })}\n\n`);
      response.write(`id: 1-0\nevent: rotated\ndata: ${JSON.stringify({ secret: 'payments-api-key', version: 8 })}\n\n`);
      // Then nothing, and no FIN: the socket stays open as a half-open connection's would.
      return void silent.push(response);
    }
    response.write(`id: 2-0\nevent: revoked\ndata: ${JSON.stringify({ secret: 'payments-api-key', version: 8 })}\n\n`);
    silent.push(response);
  });
  url = server.url;
});
afterAll(() => server.stop());

it('drops a stream that brings nothing (not even a keep-alive) for the idle limit, and resumes on a new one', async () => {
  const changes: SecretChange[] = [];
  const logs: ClientLogEvent[] = [];
  let revoked: () => void = () => {};
  const seen = new Promise<void>((resolve) => (revoked = resolve));
  const controller = new AbortController();
  const following = follow(
    { url, credential: () => Promise.resolve('credential'), policy: { attempts: 5, baseMs: 1, maxMs: 5 }, log: (event) => logs.push(event), fetch, idleMs: 300 },
    (change) => {
      changes.push(change);
      if (change.type === 'revoked') revoked();
    },
    controller.signal,
  );
  // A hang guard far above the idle limit (300 ms), far below undici's 300 s body timeout.
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([seen.then(() => 'resumed'), new Promise((resolve) => (timer = setTimeout(() => resolve('still waiting on the silent stream after 20 s'), 20_000)))]);
  clearTimeout(timer);
  controller.abort();
  await following;
  expect(outcome).toBe('resumed');
  expect(changes.map((c) => c.type)).toEqual(['ready', 'rotated', 'revoked']);
  expect(lastEventIds).toEqual([undefined, '1-0']);
  expect(logs.map((e) => e.code)).toEqual(expect.arrayContaining(['stream_idle', 'stream_retrying']));
});
