/**
 * Usage-based protection through the redis-keyset middleware on the real Redis (issue 18): a
 * fastify API guarded by keysetAuth counts usage into Redis; the worker reads it every
 * INTERVAL_MS (one window). 30 per-client keys and two other secrets' keys get steady noisy
 * traffic on loopback (source networks 127.0.N.0/24), sent from a child process. Then:
 * - one client's key jumps 20x from 20 networks: throttled within two windows (the middleware
 *   answers 429 for that key alone), and the throttle is lifted after its cool-down once the
 *   spike stops (audit `usage.released`, 200 again);
 * - a key whose secret has a `revoke` rule is used from 20 networks: two windows later it goes
 *   down the leak path (a report of source `usage` naming the rule, `leak.reported` naming it
 *   too) and the middleware refuses it;
 * - the same revoke rule on a secret inside a rotation overlap (a previous version in its
 *   grace) audits `not-revoked`, and a throttle rule on another secret inside an overlap
 *   audits `not-throttled`: both keys keep working (200 only, no 429).
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createKeysetVerifier, keysetAuth, type KeysetVerifier } from '../../providers/redis-keyset/index.js';
import { unexpectedAnswers } from '../support/gateways/keyed-load.js';
import { keyedLoadProcess, type KeyedLoadProcess } from '../support/gateways/keyed-load-process.js';
import { startHarness, type Harness } from '../support/harness.js';
import { deleteKeys } from '../support/isolation.js';
import { until } from '../support/poll.js';
import { TEST_FINGERPRINT_KEY } from '../conformance/refs.js';
import { REDIS_URL } from '../support/services.js';

const P = `rekey-usage-${randomUUID().slice(0, 8)}:`;
const INTERVAL_MS = 1000;
const BUCKET_MS = 500;
const COOLDOWN_MS = 3000;
const family = `kf-${randomUUID().slice(0, 8)}`;
const revoking = `kr-${randomUUID().slice(0, 8)}`;
const overlapping = `ko-${randomUUID().slice(0, 8)}`;
const overlappingThrottle = `kt-${randomUUID().slice(0, 8)}`;
const clients = Array.from({ length: 30 }, (_, i) => `c${String(i + 1).padStart(2, '0')}`);
const STEADY = 4;
const SPIKE_SOURCES = Array.from({ length: 20 }, (_, i) => `127.0.${i + 1}.1`);

let h: Harness;
let verifier: KeysetVerifier;
let api: FastifyInstance;
let load: KeyedLoadProcess;
const keys = new Map<string, string>();

interface Anomaly {
  rule: string;
  action: string;
  done: string;
  windowEnd: string;
  windowMs: number;
  limit: number;
}

async function events(action: string, secret?: string): Promise<Array<{ secret: string; data: Anomaly }>> {
  const rows = await h.runtime.db.auditEvent.findMany({ where: { action, ...(secret ? { chain: secret } : {}) }, orderBy: { seq: 'asc' } });
  return rows.map((r) => ({ secret: r.chain, data: r.data as unknown as Anomaly }));
}


/** Each collection moves the last use of a used version forward: waits for `n` more. */
async function windows(n: number): Promise<void> {
  const seen = new Set<number>();
  await until(
    async () => {
      const v = await h.runtime.db.version.findFirst({ where: { secret: { name: `${family}/c01` }, state: 'current' }, select: { lastUsedAt: true } });
      if (v?.lastUsedAt) seen.add(v.lastUsedAt.getTime());
      return seen.size > n;
    },
    (n + 5) * INTERVAL_MS * 10,
    `${n} collection windows`,
  );
}

/**
 * The end of each collection window from now on, as the worker's checks record it (every check
 * moves the last use of the family's used keys to its read's time), until `stop`: windows
 * counted as they ran, however long a loaded machine made them.
 */
function recordWindowEnds(): { ends: Set<number>; stop(): Promise<void> } {
  const ends = new Set<number>();
  let stopped = false;
  const polling = (async () => {
    while (!stopped) {
      const { _max } = await h.runtime.db.version.aggregate({ where: { secret: { name: { startsWith: `${family}/` } }, state: 'current' }, _max: { lastUsedAt: true } });
      if (_max.lastUsedAt) ends.add(_max.lastUsedAt.getTime());
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  return {
    ends,
    async stop() {
      stopped = true;
      await polling;
    },
  };
}

/**
 * Waits until `check` holds, for at most HELD_WINDOWS more collection windows as the worker ran them
 * that `held` says could trip the rule: `key`'s requests answered in the window were enough. A rule's
 * outcome is due within windows, not within a time: a loaded machine stretches a window of INTERVAL_MS
 * to several seconds, and can starve the generator, which then sends a fraction of its rate (at load 22-26,
 * with the generator still in this process, eight 1 s windows passed with too few of a key's requests to
 * come from over 10 networks).
 * `hangMs` only guards against a collector that stopped.
 */
async function withinWindows(check: () => Promise<boolean>, what: string, held: { key: string; holds: (w: AnsweredWindow) => boolean }, hangMs = 100_000): Promise<void> {
  const windowEnds = recordWindowEnds();
  const started = Date.now();
  const counted = () => answeredWindows(held.key, [...windowEnds.ends]).filter(held.holds).length;
  try {
    await until(async () => (await check()) || counted() > HELD_WINDOWS, hangMs, `${what} (or ${HELD_WINDOWS} windows that could trip it)`);
  } finally {
    await windowEnds.stop();
  }
  await load.synced();
  const shown = answeredWindows(held.key, [...windowEnds.ends]).map((w) => `${w.end - started} ms: ${w.answered}`).join(', ');
  const message = `${counted()} windows that could trip it (ends after the wait began, and requests answered in each: ${shown})`;
  if (!(await check())) throw new Error(`${what}: not within ${HELD_WINDOWS} windows that could trip it; ${message}`);
  console.info(`usage-redis-keyset: ${what} after ${message}`);
}

interface AnsweredWindow {
  end: number;
  ms: number;
  answered: number;
}

/** The collection windows between consecutive `ends` (ms), with how many of `key`'s requests were answered in each. */
function answeredWindows(key: string, ends: number[]): AnsweredWindow[] {
  const answered = load.sent(key).flatMap((r) => (r.end === undefined ? [] : [r.end]));
  const sorted = [...ends].sort((a, b) => a - b);
  return sorted.slice(1).map((end, i) => ({ end, ms: end - sorted[i]!, answered: answered.filter((at) => at > sorted[i]! && at <= end).length }));
}

/** A window held more of the key's requests than the many-networks rule's limit of networks. */
const manyNetworks = (key: string) => ({ key, holds: (w: AnsweredWindow) => w.answered > SOURCES_ABOVE });

/** The many-networks rule's limit: distinct networks in a window (a key's requests come from SPIKE_SOURCES in turn). */
const SOURCES_ABOVE = 10;

/** The spike's rate (requests/s): 20x; a window answering half of it is over the rule's limit (5x the baseline, at least minRate). */
const SPIKE_RATE = STEADY * 20;

/** The spike rule's minRate (requests/s): below it the rule never fires. */
const SPIKE_MIN_RATE = 10;

/**
 * The collection windows between consecutive `ends` (ms), with the rate of `key`'s requests answered
 * in each (as the generator's log has them) and whether it was over `limit`.
 */
function spikeWindows(key: string, ends: number[], limit: number): Array<{ end: number; rate: number; spiked: boolean }> {
  return answeredWindows(key, ends).map(({ end, ms, answered }) => {
    const rate = Math.round((answered / (ms / 1000)) * 10) / 10;
    return { end, rate, spiked: rate > limit };
  });
}

const statuses = (key: string) => Object.fromEntries(load.answers(key));
const count = (key: string, status: number) => statuses(key)[status] ?? 0;
/** What the collector needs at most to see a change: two windows, with room for a loaded machine. */
const SOON = 30 * INTERVAL_MS;
/**
 * The windows that could trip a rule before its outcome is audited: the revoke rule acts on the second,
 * and a window's last requests may be counted in the next (the middleware writes its counts every
 * flushMs), with one more for a window split across that.
 */
const HELD_WINDOWS = 4;

beforeAll(async () => {
  h = await startHarness({ label: 'usage-keyset' });
  const api0 = { type: 'redis-keyset', keyPrefix: `${P}keyset:`, channel: `${P}c`, usageCounters: { prefix: `${P}usage:`, bucketMs: BUCKET_MS }, drift: { interval: '1h' }, usage: { interval: `${INTERVAL_MS}ms` } };
  const revoke = `usage: { baseline: { halfLife: 20s, warmup: 3s }, rules: [{ name: many-networks, metric: sources, above: ${SOURCES_ABOVE}, action: revoke }] }`;
  await h.apply(`
providers:
  vault: { type: local }
  api: ${JSON.stringify(api0)}
usage:
  baseline: { halfLife: 20s, warmup: 3s }
  rules: [{ name: spike, metric: rate, factor: 5, minRate: ${SPIKE_MIN_RATE}, action: throttle, cooldown: ${COOLDOWN_MS}ms }]
secrets:
  ${family}:
    clients: [${clients.join(', ')}]
    store: { provider: vault }
    issuer: { type: random, prefix: rk_kf_ }
    targets: [{ provider: api, set: shared }]
  ${revoking}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_kr_ }
    targets: [{ provider: api, set: shared }]
    ${revoke}
  ${overlapping}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_ko_ }
    targets: [{ provider: api, set: shared }]
    grace: 1h
    ${revoke}
  ${overlappingThrottle}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_kt_ }
    targets: [{ provider: api, set: shared }]
    grace: 1h
    ${revoke.replace('action: revoke', 'action: throttle')}
`);
  const names = [...clients.map((c) => `${family}/${c}`), revoking, overlapping, overlappingThrottle];
  for (let i = 0; i < names.length; i += 8) await Promise.all(names.slice(i, i + 8).map(async (name) => expect((await h.rotate(name, 60_000)).status).toBe('succeeded')));
  // A second rotation: its previous version stays accepted for the grace hour (a rotation overlap).
  for (const name of [overlapping, overlappingThrottle]) expect((await h.rotate(name, 60_000)).status).toBe('succeeded');
  for (const name of names) keys.set(name, await h.currentValue(name));

  verifier = await createKeysetVerifier({ redisUrl: REDIS_URL, fingerprintKey: TEST_FINGERPRINT_KEY, keyset: 'shared', keyPrefix: `${P}keyset:`, channel: `${P}c`, usage: { prefix: `${P}usage:`, bucketMs: BUCKET_MS, flushMs: 200 }, throttledPerSecond: 1 });
  api = Fastify();
  api.addHook('onRequest', keysetAuth(verifier));
  api.get('/', () => ({ ok: true }));
  const url = await api.listen({ host: '127.0.0.1', port: 0 });
  // The traffic comes from a child process: sent from this one, which also runs the API and the worker, a
  // starved event loop would both send late and answer late (at load 16-24: 3-7 s windows, ~70 transport errors).
  load = await keyedLoadProcess({ url, header: 'x-api-key', streams: [...keys.values()].map((key) => ({ key, rate: STEADY })) });
}, 120_000);

// Each test's spike ends with it, failed or not: a spike left running would starve the next tests' windows.
afterEach(() => {
  for (const key of keys.values()) load?.set({ key, rate: STEADY });
});

afterAll(async () => {
  await load?.stop();
  await api?.close();
  await verifier?.close();
  await h?.stop();
  await deleteKeys(`${P}*`);
});

describe('usage rules through the redis-keyset middleware', () => {
  it('steady noisy traffic on 32 keys: no rule fires over the warm-up and several windows after it', async () => {
    await windows(8);
    expect(await events('usage.anomaly')).toEqual([]);
    await load.synced();
    for (const [name, key] of keys) expect({ name, unexpected: unexpectedAnswers(load.answers(key)) }).toEqual({ name, unexpected: {} });
    const used = await h.runtime.db.version.count({ where: { secret: { name: { startsWith: `${family}/` } }, state: 'current', lastUsedAt: { not: null } } });
    expect(used).toBe(clients.length);
  }, 120_000);

  it('a key jumping 20x from 20 networks is throttled within two windows (429 for it alone), and released after the cool-down', async () => {
    const name = `${family}/c07`;
    const spiked = keys.get(name)!;
    const windowEnds = recordWindowEnds();
    const spikeStart = Date.now();
    load.set({ key: spiked, rate: SPIKE_RATE, sources: SPIKE_SOURCES });
    try {
      await withinWindows(async () => (await events('usage.anomaly', name)).length > 0, 'the spike audited', { key: spiked, holds: (w) => w.answered / (w.ms / 1000) > SPIKE_RATE / 2 });
    } finally {
      await windowEnds.stop();
    }
    const [throttled] = await events('usage.anomaly', name);
    expect(throttled!.data).toMatchObject({ rule: 'spike', action: 'throttle', done: 'throttled' });
    const throttledAt = new Date(throttled!.data.windowEnd).getTime();
    expect(Math.max(...windowEnds.ends)).toBeGreaterThanOrEqual(throttledAt); // the windows were recorded up to the throttle
    // Within two windows of the spike: the throttling window is the first that held the spike or the next (the
    // middleware writes its counts every flushMs, so a window's last requests may be read in the next one). A
    // window held the spike when the key's requests answered in it (the middleware counts each as it is answered)
    // came at more than the rule's limit: a loaded machine can starve the generator, which then sends a
    // fraction of the spike rate and only later its full rate (at nice 10 beside two busy loops on its core, the
    // window after the spike began, 3.9 s long, held too little to be a spike), so windows counted from the
    // moment the rate was set would count windows no spike had reached.
    await load.synced();
    const asAnswered = spikeWindows(spiked, [...windowEnds.ends], Math.max(SPIKE_MIN_RATE, throttled!.data.limit));
    const firstSpiked = asAnswered.find((w) => w.spiked)?.end ?? throttledAt;
    const windowsToThrottle = asAnswered.filter((w) => w.end >= firstSpiked && w.end <= throttledAt).length;
    const shown = asAnswered.map((w) => `${w.end - spikeStart} ms: ${w.rate}/s`).join(', ');
    console.info(`usage-redis-keyset: windows (end after the spike was set: rate answered) ${shown}; limit ${throttled!.data.limit}/s`);
    expect(windowsToThrottle, `windows (end after the spike was set: rate answered) ${shown}; limit ${throttled!.data.limit}/s; throttled at ${throttledAt - spikeStart}`).toBeLessThanOrEqual(2);
    const before429 = count(spiked, 429);
    await until(() => Promise.resolve(count(spiked, 429) > before429 + 20), SOON, 'the middleware answers 429 to the throttled key');
    for (const [other, key] of keys) if (key !== spiked) expect({ other, unexpected: unexpectedAnswers(load.answers(key)) }).toEqual({ other, unexpected: {} });
    expect(new Set((await events('usage.anomaly')).map((a) => a.secret))).toEqual(new Set([name]));

    // The spike stops: after the cool-down, the first quiet window lifts the throttle.
    const calmed = Date.now();
    load.set({ key: spiked, rate: STEADY });
    await until(async () => (await events('usage.released', name)).length > 0, COOLDOWN_MS + SOON, 'the throttle released');
    const [released] = await h.runtime.db.auditEvent.findMany({ where: { action: 'usage.released', chain: name } });
    // Not before the cool-down counted from the throttle (which came after its window's end), nor before the spike stopped.
    expect(released!.at.getTime() - new Date(throttled!.data.windowEnd).getTime()).toBeGreaterThanOrEqual(COOLDOWN_MS);
    expect(released!.at.getTime()).toBeGreaterThanOrEqual(calmed);
    const before200 = count(spiked, 200);
    await until(() => Promise.resolve(count(spiked, 200) > before200 + 10), SOON, 'the released key gets 200 again');
  }, 120_000);

  it('a revoke rule takes the key down the leak path after two windows; the middleware refuses it', async () => {
    const key = keys.get(revoking)!;
    const version = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: revoking }, state: 'current' } });
    load.set({ key, rate: STEADY * 5, sources: SPIKE_SOURCES });
    await withinWindows(async () => (await events('usage.anomaly', revoking)).length > 0, 'the revoke rule fired', manyNetworks(key));
    const [anomaly] = await events('usage.anomaly', revoking);
    expect(anomaly!.data).toMatchObject({ rule: 'many-networks', action: 'revoke', done: 'revoked', windows: 2 });
    const report = await h.runtime.db.leakReport.findFirstOrThrow({ where: { versionId: version.id } });
    expect(report).toMatchObject({ source: 'usage', deliveryId: `many-networks:${version.id}` });
    const [reported] = await events('leak.reported', revoking);
    expect(reported!.data).toMatchObject({ source: 'usage', deliveryId: `many-networks:${version.id}` });
    await until(async () => (await h.runtime.db.version.findUniqueOrThrow({ where: { id: version.id } })).state === 'revoked', SOON, 'the version revoked');
    const before401 = count(key, 401);
    await until(() => Promise.resolve(count(key, 401) > before401 + 5), SOON, 'the middleware refuses the revoked key');
    expect(verifier.check(key)).toBeUndefined();
  }, 120_000);

  it('the same revoke rule, and a throttle rule, inside a rotation overlap audit not-revoked and not-throttled and leave the keys working', async () => {
    const cases = [
      { secret: overlapping, action: 'revoke', done: 'not-revoked: inside a rotation overlap' },
      { secret: overlappingThrottle, action: 'throttle', done: 'not-throttled: inside a rotation overlap' },
    ].map((c) => ({ ...c, key: keys.get(c.secret)! }));
    for (const { secret } of cases) expect(await h.runtime.db.version.count({ where: { secret: { name: secret }, state: 'previous' } })).toBe(1);
    for (const { key } of cases) load.set({ key, rate: STEADY * 5, sources: SPIKE_SOURCES });
    for (const { secret, action, done, key } of cases) {
      await withinWindows(async () => (await events('usage.anomaly', secret)).length > 0, `the ${action} rule fired`, manyNetworks(key));
      const [anomaly] = await events('usage.anomaly', secret);
      expect(anomaly!.data).toMatchObject({ rule: 'many-networks', action, done });
    }
    // A throttle would show as 429 within a second at 20 requests/s over the middleware's 1/s.
    const before200 = cases.map(({ key }) => count(key, 200));
    await until(() => Promise.resolve(cases.every(({ key }, i) => count(key, 200) > before200[i]! + 20)), SOON, 'the keys still accepted');
    for (const { key } of cases) load.set({ key, rate: STEADY });
    await load.synced();
    for (const { secret, key } of cases) {
      const fingerprints = (await h.runtime.db.version.findMany({ where: { secret: { name: secret } } })).map((v) => v.fingerprint!);
      expect(await h.runtime.db.leakReport.count({ where: { fingerprint: { in: fingerprints } } })).toBe(0);
      expect({ secret, unexpected: unexpectedAnswers(load.answers(key)) }).toEqual({ secret, unexpected: {} });
      expect(await h.runtime.db.version.count({ where: { secret: { name: secret }, state: 'current' } })).toBe(1);
    }
  }, 120_000);
});
