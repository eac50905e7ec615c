/**
 * The client library renews at a random point of what is left of a lifetime, no two renewals
 * within a second unless the thing expires sooner, and never hands out past the expiry. A value's
 * expiry is the same instant E for every client (the server caps it at the secret's next scheduled
 * rotation) and a 304 keeps it: renewing at a fixed fraction of what is left brought every client
 * back again and again, the whole fleet at once in the last moments before E, just as the
 * rotation starts. A loopback server stands in for rekey with that fixed expiry; the clock is
 * vitest's fake Date, moved on in 10 ms steps at which every client's app asks for the value, and
 * Math.random is seeded, so the run is the same each time, however loaded the machine.
 */
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { createClient } from '../../src/client/index.js';
import { RENEW_FLOOR_MS, renewalDelay } from '../../src/client/renew.js';
import { type StandIn, standIn } from '../support/fake-http.js';

const CLIENTS = 20;
const STEP_MS = 10;
const T0 = Date.parse('2026-12-07T02:59:50.000Z');
/** The secret's next scheduled rotation: the expiry every client is given until then. */
const E = T0 + 10_000;
/** By client (its credential), the fake time of each request the server received. */
const requests = new Map<string, number[]>();
let server: StandIn;

/** mulberry32: the same numbers in [0, 1) each run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

beforeAll(async () => {
  vi.useFakeTimers({ toFake: ['Date'], now: T0 });
  vi.spyOn(Math, 'random').mockImplementation(seeded(20261207));
  server = await standIn((request: IncomingMessage, response) => {
    // No Date header: the client would read the fake clock's distance from the real one as the server's skew.
    response.sendDate = false;
    const now = Date.now();
    const who = String(request.headers.authorization);
    requests.set(who, [...(requests.get(who) ?? []), now]);
    // Before E: version 1, expiring at E (a 304 when the client has it). From E: version 2, expiring at the schedule after.
    const version = now < E ? 1 : 2;
    if (request.headers['if-none-match'] === `"${version}"`) return void response.writeHead(304, { etag: `"${version}"` }).end();
    const expiresAt = new Date(version === 1 ? E : E + 3_600_000).toISOString();
    response.writeHead(200, { 'content-type': 'application/json', etag: `"${version}"` }).end(JSON.stringify({ secret: 'k', version, value: `value-${version}`, expiresAt }));
  });
});
afterAll(async () => {
  vi.restoreAllMocks();
  vi.useRealTimers();
  await server?.stop();
});

it('renewalDelay() picks a point between 0.6 and 0.8 of what is left, no sooner than the floor, never after the expiry', () => {
  expect(renewalDelay(10_000, 0.8, () => 0)).toBeCloseTo(6_000, 6);
  expect(renewalDelay(10_000, 0.8, () => 0.999_999)).toBeCloseTo(8_000, 0);
  expect(renewalDelay(10_000, 1, () => 0.999_999)).toBeLessThanOrEqual(10_000);
  expect(renewalDelay(1_500, 0.8, () => 0)).toBe(RENEW_FLOOR_MS);
  expect(renewalDelay(600, 0.8, () => 0)).toBe(600);
  expect(renewalDelay(-5, 0.8, () => 0)).toBe(0);
});

it('clients made together renew at different times, at most twice each in the last second before the expiry, and hand out nothing past it', async () => {
  const clients = Array.from({ length: CLIENTS }, (_, i) => createClient({ url: server.url, credential: () => `client-${i}`, retry: { attempts: 1 } }));
  const handedOutLate: string[] = [];
  for (let t = T0; t < E + 500; t += STEP_MS) {
    vi.setSystemTime(t);
    const values = await Promise.all(clients.map((c) => c.secret('k')));
    // Version 1 expired at E: from then on only version 2 may be handed out.
    if (t >= E) handedOutLate.push(...values.filter((v) => v.version !== 2).map((v) => `${v.version} at E+${t - E}`));
  }
  for (const c of clients) c.close();
  expect(handedOutLate).toEqual([]);

  const times = [...requests.values()];
  expect(times).toHaveLength(CLIENTS);
  const lastSecond = times.map((t) => t.filter((at) => at >= E - 1_000 && at < E).length);
  console.log(`requests in the last second before E, by client: ${lastSecond.join(' ')}; in all: ${times.flat().length}`);
  expect(Math.max(...lastSecond)).toBeLessThanOrEqual(2);
  // Each client's first renewal (its second request): spread out, not one instant.
  const firstRenewals = times.map((t) => t[1]! - T0);
  expect(new Set(firstRenewals).size).toBeGreaterThan(CLIENTS / 2);
  expect(Math.max(...firstRenewals) - Math.min(...firstRenewals)).toBeGreaterThanOrEqual(1_000);
  for (const at of firstRenewals) {
    expect(at).toBeGreaterThanOrEqual(6_000);
    expect(at).toBeLessThanOrEqual(8_000 + STEP_MS);
  }
  // And every client came back for version 2 at E (the app asked then), once.
  expect(times.map((t) => t.filter((at) => at >= E).length)).toEqual(Array(CLIENTS).fill(1));
});
