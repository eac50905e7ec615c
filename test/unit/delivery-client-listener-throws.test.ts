/**
 * A `subscribe()` listener that throws (the app's bug, or a change it cannot handle yet): the
 * change stream goes on, the next change arrives on the same connection, and the failure is
 * logged as a code. Taken for a broken connection, the throw closed the stream and opened a new
 * one a second later (authenticated anew), losing what the old one still carried. A loopback HTTP
 * server stands in for rekey (GET /v1/events).
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createClient, type ClientLogEvent, type SecretChange } from '../../src/client/index.js';
import { type StandIn, standIn } from '../support/fake-http.js';

let server: StandIn;
const connections: ServerResponse[] = [];
let connected: () => void = () => {};

beforeAll(async () => {
  server = await standIn((request, response) => {
    if (request.url !== '/v1/events') return void response.writeHead(404).end();
    response.writeHead(200, { 'content-type': 'text/event-stream' }).write(`retry: 10\n\nevent: ready\ndata: ${JSON.stringify({ secrets: [{ secret: 'k', version: 1 }] })}\n\n`);
    connections.push(response);
    connected();
  });
});
afterAll(() => server.stop());

it('keeps the stream open when the listener throws, and logs listener_failed', async () => {
  const logs: ClientLogEvent[] = [];
  const client = createClient({ url: server.url, credential: () => 'credential', logger: (event) => logs.push(event) });
  let thrown: () => void = () => {};
  const threw = new Promise<void>((resolve) => (thrown = resolve));
  let rotated: (change: SecretChange) => void = () => {};
  const next = new Promise<SecretChange>((resolve) => (rotated = resolve));
  const stop = client.subscribe((change) => {
    if (change.type === 'ready' && connections.length === 1) {
      thrown();
      throw new Error('the app could not handle it');
    }
    if (change.type === 'rotated') rotated(change);
  });
  try {
    await threw;
    connections[0]!.write(`id: 1-0\nevent: rotated\ndata: ${JSON.stringify({ secret: 'k', version: 2 })}\n\n`);
    const reconnected = new Promise<string>((resolve) => (connected = () => resolve('a second connection opened')));
    expect(await Promise.race([next, reconnected])).toEqual({ type: 'rotated', secret: 'k', version: 2 });
    expect(connections).toHaveLength(1);
    expect(logs).toContainEqual({ code: 'listener_failed' });
  } finally {
    stop();
    client.close();
  }
});
