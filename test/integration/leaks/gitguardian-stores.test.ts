// GitGuardian sends no secret, only its HMSL hash: rekey matches it by reading live versions back
// from their stores (src/leaks/hmsl.ts). These tests give the receiver stores that fail or are slow,
// on a freshly started server (an index that has hashed nothing yet, as after every restart). The
// harness serves no leak routes of its own: each test's server is the only GitGuardian receiver,
// so its index's log lines are its own.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { RekeyError } from '../../../src/core/errors.js';
import type { ResolvedSecret } from '../../../src/core/resolved.js';
import type { SecretStore } from '../../../src/core/ports.js';
import { buildServer } from '../../../src/http/server.js';
import { hmslHash } from '../../../src/leaks/hmsl.js';
import { leakRoutes } from '../../../src/leaks/routes.js';
import { send } from '../../support/gateways/index.js';
import { gatewaySecretYaml, gitguardianHeaders, leaksYaml, post, providersYaml, startLeakEnv, storedValue, until, type LeakEnv } from './support.js';

let e: LeakEnv;
/** The id of the newest change the feed delivered in this process. */
let lastChange: string | undefined;
const down = `gg-down-${randomUUID().slice(0, 8)}`;
const others = Array.from({ length: 12 }, (_, i) => `gg-other-${i}-${randomUUID().slice(0, 6)}`);

beforeAll(async () => {
  e = await startLeakEnv('gitguardian-stores', { routes: [] });
  await e.h.apply(`${providersYaml(e)}\nsecrets:${[down, ...others].map((n) => gatewaySecretYaml(n)).join('')}\n${leaksYaml(e)}`);
  await e.h.runtime.changes.subscribe((change) => (lastChange = change.id));
  for (const name of [down, ...others]) expect((await e.h.rotate(name)).status).toBe('succeeded');
}, 120_000);
afterAll(() => e?.stop());

type Read = SecretStore['read'];
const resolver = () => e.h.runtime.resolver as { resolve: (secret: string) => Promise<ResolvedSecret> };
let restore: (() => void) | undefined;
afterEach(() => {
  restore?.();
  restore = undefined;
});

/** Every store read in this process goes through `read` (given the real one) until the test ends. */
function storesRead(read: (real: Read, ...args: Parameters<Read>) => ReturnType<Read>): void {
  const r = resolver();
  const original = r.resolve;
  r.resolve = async (secret) => {
    const resolved = await original.call(e.h.runtime.resolver, secret);
    const real = resolved.store.read.bind(resolved.store);
    const store = Object.assign(Object.create(Object.getPrototypeOf(resolved.store) as object) as SecretStore, resolved.store, { read: (...args: Parameters<Read>) => read(real, ...args) });
    return { ...resolved, store };
  };
  restore = () => (r.resolve = original);
}

/** A rekey server started now, beside the harness's: its GitGuardian receiver has hashed nothing yet. */
async function restartedServer(): Promise<{ url: string; app: FastifyInstance }> {
  const app = await buildServer(e.h.runtime, [leakRoutes], { metrics: false });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, app };
}

/** A store read as it fails during an outage (what a provider throws for a 5xx or a refused connection). */
const unreachable = () => Promise.reject(new RekeyError('REKEY_ERR_UNAVAILABLE', 'store unreachable', { provider: 'vault' }));
const incident = async (id: number, token: string) => JSON.stringify({ action: 'incident_triggered', incident: { id, hmsl_hash: await hmslHash(token) } });
const postIncident = (url: string, body: string) => post(url, '/webhooks/gitguardian', body, gitguardianHeaders(e.secrets.gitguardian, body));
const accepted = async (key: string) => (await send(e.gateway.url, e.gateway.header, key)).status === 200;

it('an incident for a live key whose store cannot be read is answered 503 with nothing recorded, and acted on when redelivered', async () => {
  const leaked = (await storedValue(e.h, down)).reveal();
  expect(await accepted(leaked)).toBe(true);
  const id = 5151;
  // Reads fail (an outage, throttling, a timeout) from before the server starts until the redelivery.
  storesRead(unreachable);
  const server = await restartedServer();
  try {
    const body = await incident(id, leaked);
    const answer = await fetch(new URL('/webhooks/gitguardian', server.url), { method: 'POST', headers: gitguardianHeaders(e.secrets.gitguardian, body), body });
    expect({ status: answer.status, retryAfter: answer.headers.get('retry-after') }).toEqual({ status: 503, retryAfter: '30' });
    // Nothing recorded or audited as unknown: GitGuardian delivers it again.
    expect(await e.h.runtime.db.leakReport.count({ where: { source: 'gitguardian' } })).toBe(0);
    expect(await e.h.runtime.db.auditEvent.count({ where: { actor: `leak/gitguardian/incident:${id}` } })).toBe(0);
    // The unreadable store is logged by name and error code, never with a value.
    const warned = e.h.logs.filter((l) => l.includes('hmsl index: live versions could not be read'));
    expect(warned.length).toBeGreaterThan(0);
    const { stores } = JSON.parse(warned.at(-1)!) as { stores: Array<{ store: string; errors: Record<string, number> }> };
    expect(stores.map((s) => [s.store, Object.keys(s.errors)])).toEqual([['vault', ['REKEY_ERR_UNAVAILABLE']]]);
    expect(e.h.logs.filter((l) => l.includes(leaked))).toEqual([]);

    // The store answers again; GitGuardian's redelivery (same incident, new timestamp) takes the key down.
    restore!();
    const again = await postIncident(server.url, body);
    expect(again).toEqual({ status: 200, body: JSON.stringify({ outcome: 'rotating', duplicate: false }) });
    await until(async () => !(await accepted(leaked)), 10_000, 'HAProxy refusing the leaked key');
  } finally {
    await server.app.close();
  }
});

interface PassDone {
  reason: string;
  live: number;
  hashed: number;
  unread: number;
}
/** Resolves once the index logs a pass, after `from` log lines, that `done` accepts. */
const pass = (from: number, done: (p: PassDone) => boolean) =>
  until(() => Promise.resolve(e.h.logs.slice(from).some((l) => l.includes('hmsl index: pass done') && done(JSON.parse(l) as PassDone))), 20_000, 'an hmsl index pass');

it('a cold index answers an incident well before it has read every live version, reading them side by side', async () => {
  const leaked = (await storedValue(e.h, others[11]!)).reveal();
  const live = await e.h.runtime.db.version.count({ where: { state: { in: ['current', 'pending', 'previous', 'retired', 'compromised'] }, storeVersionId: { not: null } } });
  expect(live).toBeGreaterThanOrEqual(13);
  // A store answering in 400 ms (a remote secret manager under load); nothing else is slow.
  const latencyMs = 400;
  let reading = 0;
  let most = 0;
  storesRead(async (real, ...args) => {
    most = Math.max(most, ++reading);
    await new Promise((resolve) => setTimeout(resolve, latencyMs));
    reading -= 1;
    return real(...args);
  });
  const server = await restartedServer();
  try {
    const started = performance.now();
    const answer = await postIncident(server.url, await incident(5252, leaked));
    const ms = performance.now() - started;
    expect(answer).toEqual({ status: 200, body: JSON.stringify({ outcome: 'rotating', duplicate: false }) });
    // One at a time, this is live × 400 ms (over 5 s); side by side, about one read.
    expect(ms).toBeLessThan((live * latencyMs) / 3);
    expect(most).toBeGreaterThan(1);
  } finally {
    await server.app.close();
  }
});

it('the receiver hashes live versions in the background when it starts and after each promotion', async () => {
  // The emergency rotations the tests above caused are over, and every change they published has been
  // delivered in this process: no promotion reaches the server below but the one this test makes.
  await until(
    async () => (await e.h.runtime.db.run.count({ where: { status: 'running' } })) === 0 && lastChange !== undefined && (await e.h.runtime.changes.since(lastChange))?.length === 0,
    20_000,
    'no run in progress and no change undelivered',
  );
  const from = e.h.logs.length;
  const server = await restartedServer();
  try {
    // Warmed at start, with no incident asking.
    await pass(from, (p) => p.reason === 'start' && p.hashed > 0 && p.unread === 0);
    const promoted = e.h.logs.length;
    expect((await e.h.rotate(others[9]!)).status).toBe('succeeded');
    await pass(promoted, (p) => p.reason === 'promotion');
    const keys = [(await storedValue(e.h, others[9]!)).reveal(), (await storedValue(e.h, others[8]!)).reveal()];
    // Every store down now: the incidents (the key promoted since the start, and one from before) are
    // matched from what was hashed already; a cold index would answer 503 (the first test).
    storesRead(unreachable);
    for (const [id, token] of [[5353, keys[0]!], [5454, keys[1]!]] as const) {
      const answer = await postIncident(server.url, await incident(id, token));
      expect(answer).toEqual({ status: 200, body: JSON.stringify({ outcome: 'rotating', duplicate: false }) });
    }
  } finally {
    await server.app.close();
  }
});
