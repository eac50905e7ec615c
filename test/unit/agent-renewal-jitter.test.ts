/**
 * `rekey agent` renews what it keeps at a random point of what is left of its lifetime (the
 * client library's renewalDelay()), so agents started together, holding a value whose expiry is
 * one instant for all of them (the secret's next scheduled rotation), do not come back together:
 * at 0.8 of what was left they all renewed within milliseconds of each other. A loopback server
 * stands in for rekey, with a fixed expiry E 8 s ahead. Math.random answers eight values at least
 * 1/8 apart in turn: at start each agent's client draws once and the agent once, in whatever order
 * the answers come, so the agents' four draws are four of the eight, at least 3/8 apart in all, and
 * their renewals are due at least 3/8 × 0.2 × 8 s = 600 ms apart, however the draws fall.
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { type StandIn, standIn } from '../support/fake-http.js';
import { agentOptions } from '../support/agent.js';

const AGENTS = 4;
const LIFETIME_MS = 8_000;
/** Eight values, each at least 1/8 from every other. */
const DRAWS = [0.0625, 0.5625, 0.3125, 0.8125, 0.1875, 0.6875, 0.4375, 0.9375];
let E = 0;
let server: StandIn;
const agents: Agent[] = [];
const streams: ServerResponse[] = [];
/** By agent (its credential), when each read reached the server. */
const reads = new Map<string, number[]>();
let read: () => void = () => {};

beforeAll(async () => {
  let draws = 0;
  vi.spyOn(Math, 'random').mockImplementation(() => DRAWS[draws++ % DRAWS.length]!);
  server = await standIn((request, response) => {
    if (request.url === '/v1/events') {
      response.writeHead(200, { 'content-type': 'text/event-stream' }).write('retry: 10\n\n');
      return void streams.push(response);
    }
    const who = String(request.headers.authorization);
    reads.set(who, [...(reads.get(who) ?? []), Date.now()]);
    response.writeHead(200, { 'content-type': 'application/json', etag: '"1"' }).end(JSON.stringify({ secret: 'k', version: 1, value: 'v1', expiresAt: new Date(E).toISOString() }));
    read();
  });
});
afterAll(async () => {
  await Promise.all(agents.map((agent) => agent.stop()));
  await server.stop();
  vi.restoreAllMocks();
});

it('agents started together renew at different times', async () => {
  E = Date.now() + LIFETIME_MS;
  const renewed = new Promise<void>((resolve) => (read = () => [...reads.values()].filter((times) => times.length >= 2).length === AGENTS && resolve()));
  agents.push(...(await Promise.all(Array.from({ length: AGENTS }, (_, i) => startAgent(agentOptions(server.url, { credential: () => Promise.resolve(`agent-${i}`), secrets: ['k'] }))))));
  const started = [...reads.values()].map((times) => times[0]!);
  await renewed;
  const renewals = [...reads.values()].map((times) => times[1]!).sort((a, b) => a - b);
  console.log(`agents started within ${Math.max(...started) - Math.min(...started)} ms; renewed at E-${renewals.map((at) => E - at).join(', E-')} ms`);
  // Due at least 600 ms apart in all; at 0.8 each, they came within a few ms of each other.
  expect(renewals.at(-1)! - renewals[0]!).toBeGreaterThanOrEqual(300);
  // Renewed while the value is still good (due 1.6 s before E at the latest).
  for (const at of renewals) expect(at).toBeLessThan(E);
}, 30_000);
