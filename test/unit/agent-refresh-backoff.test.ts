/**
 * `rekey agent` whose own credential was revoked (the server answers 401 to every read): each
 * value it keeps is tried again later and later (exponential backoff with jitter, capped), not
 * every 5 s for ever, in step with every other agent refused at the same moment. A loopback
 * server stands in for rekey; its change stream tells the agent the secret rotated, which makes
 * it try again at once (one failure each, each logged with the delay before the next try), the
 * server asked once: the client remembers the refused credential for its retry policy's maxMs.
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type Agent, type AgentLogEvent } from '../../src/agent/agent.js';
import { type StandIn, standIn } from '../support/fake-http.js';
import { agentOptions } from '../support/agent.js';

let server: StandIn;
let agent: Agent | undefined;
let reads = 0;
let streamOpened: (response: ServerResponse) => void = () => {};
const stream = new Promise<ServerResponse>((resolve) => (streamOpened = resolve));
const failures: Extract<AgentLogEvent, { code: 'agent_refresh_failed' }>[] = [];
let failed: () => void = () => {};

beforeAll(async () => {
  server = await standIn((request, response) => {
    if (request.url === '/v1/events') {
      response.writeHead(200, { 'content-type': 'text/event-stream' }).write('retry: 10\n\n');
      return streamOpened(response);
    }
    if (request.url === '/v1/secrets/denied') reads++;
    response.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_token' }));
  });
});
afterAll(async () => {
  await agent?.stop();
  await server.stop();
});

const nextFailure = () => new Promise<void>((resolve) => (failed = resolve));

it('tries a refused refresh again after a growing, jittered delay', async () => {
  let first = nextFailure();
  agent = await startAgent(agentOptions(server.url, {
    credential: () => Promise.resolve('revoked-credential'),
    secrets: ['denied'],
    logger: (event) => {
      if (event.code !== 'agent_refresh_failed') return;
      failures.push(event);
      failed();
    },
  }));
  await first;
  const events = await stream;
  for (let version = 2; version <= 6; version++) {
    first = nextFailure();
    events.write(`id: ${version}-0\nevent: rotated\ndata: ${JSON.stringify({ secret: 'denied', version })}\n\n`);
    await first;
  }
  const delays = failures.map((failure) => failure.delayMs);
  expect(failures.every((failure) => failure.secret === 'denied')).toBe(true);
  // The n-th failure in a row waits between half and all of min(60 s, 5 s·2^(n-1)).
  const caps = [5_000, 10_000, 20_000, 40_000, 60_000, 60_000];
  expect(delays).toHaveLength(caps.length);
  delays.forEach((delay, n) => {
    expect(delay).toBeGreaterThanOrEqual(caps[n]! / 2);
    expect(delay).toBeLessThanOrEqual(caps[n]!);
  });
  // The refused credential is sent once: the refreshes within the client's maxMs (10 s) are refused from its memory.
  expect(reads).toBe(1);
});
