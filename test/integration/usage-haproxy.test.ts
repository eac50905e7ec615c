/**
 * Usage-based protection through a real HAProxy (issue 18): 50 per-client keys of one secret
 * and one key of another secret get steady noisy traffic on loopback, sent from a child process
 * (keyedLoadProcess: this one runs the worker); the worker reads the
 * stick tables every second (one window). Noisy: each key has its own rate (5-9 requests/s,
 * above the rule's minRate, so the spike rule is judged in nearly every window), which wanders
 * every few seconds (x0.7-1.4, within half to one and a half of it) on top of the load's
 * per-tick noise, from one to three of its own source networks, redrawn as it wanders. No rule
 * fires over the warm-up (20 s) and 90 windows after it (4,500 key-windows judged), but for a
 * burst the generator really sent (a loaded machine can starve it, then it sends its full rates
 * again: burstAsSent, reported; with the rule's factor at 2 instead of 5 the steady test fails
 * on 32 anomalies that are no such burst). Then one
 * client's key jumps 20x from 20 new source networks: the spike rule throttles it (HAProxy
 * answers 429 for that key only) within two collection windows of the spike, while every other
 * key keeps getting 200. The other secret's key, under the same rule in observe mode, jumps the
 * same way: the anomaly is audited and nothing changes at the gateway.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRuntimeEndpoint, runtimeCommand } from '../../providers/haproxy/runtime-api.js';
import { startBackend, startHaproxy, type Backend, type HaproxyGateway } from '../support/gateways/index.js';
import { unexpectedAnswers } from '../support/gateways/keyed-load.js';
import { keyedLoadProcess, type KeyedLoadProcess } from '../support/gateways/keyed-load-process.js';
import { startHarness, type Harness } from '../support/harness.js';
import { until } from '../support/poll.js';

const family = `uf-${randomUUID().slice(0, 8)}`;
const watched = `uo-${randomUUID().slice(0, 8)}`;
const clients = Array.from({ length: 50 }, (_, i) => `c${String(i + 1).padStart(2, '0')}`);
/** Windows judged after the warm-up (two half-lives of 10 s after the first used window) in the steady test: a minute and a half. */
const STEADY_WINDOWS = 90;
const WARMUP_WINDOWS = 21;
const SPIKE_SOURCES = Array.from({ length: 20 }, (_, i) => `127.0.${i + 1}.1`);

let h: Harness;
let backend: Backend;
let haproxy: HaproxyGateway;
let load: KeyedLoadProcess;
let wander: ReturnType<typeof setInterval> | undefined;
const keys = new Map<string, string>();
/** Per key: its own base rate, current rate and networks (127.1.N.0/24 .. 127.3.N.0/24, none a spike network). */
const steady = new Map<string, { base: number; rate: number; networks: string[] }>();
/** Keys the wandering leaves alone (spiked). */
const pinned = new Set<string>();
let relevels = 0;

/** A random non-empty subset. */
function pick<T>(items: T[]): T[] {
  const chosen = items.filter(() => Math.random() < 0.5);
  return chosen.length ? chosen : [items[Math.floor(Math.random() * items.length)]!];
}

/** Every second, about a third of the keys change rate (x0.7-1.4, kept within 0.5-1.5 x base) and networks. */
function wanderEachSecond(): ReturnType<typeof setInterval> {
  return setInterval(() => {
    for (const [key, s] of steady) {
      if (pinned.has(key) || Math.random() > 1 / 3) continue;
      s.rate = Math.min(1.5 * s.base, Math.max(0.5 * s.base, s.rate * (0.7 + 0.7 * Math.random())));
      load.set({ key, rate: s.rate, sources: pick(s.networks) });
      relevels++;
    }
  }, 1000);
}

const rule = (action: string) => `{ name: spike, metric: rate, factor: ${FACTOR}, minRate: 5, action: ${action}, cooldown: 1m }`;


interface Anomaly {
  rule: string;
  action: string;
  done: string;
  value: number;
  windowEnd: string;
  windowMs: number;
}

async function anomalies(secret?: string): Promise<Array<{ secret: string; data: Anomaly }>> {
  const rows = await h.runtime.db.auditEvent.findMany({ where: { action: 'usage.anomaly', ...(secret ? { chain: secret } : {}) }, orderBy: { seq: 'asc' } });
  return rows.map((r) => ({ secret: r.chain, data: r.data as unknown as Anomaly }));
}

/** Each collection moves the last use of a version that was used forward: waits for `n` more. */
async function windows(n: number): Promise<void> {
  const name = `${family}/c01`;
  const seen = new Set<number>();
  await until(
    async () => {
      const v = await h.runtime.db.version.findFirst({ where: { secret: { name }, state: 'current' }, select: { lastUsedAt: true } });
      if (v?.lastUsedAt) seen.add(v.lastUsedAt.getTime());
      return seen.size > n;
    },
    (n + 10) * 2000,
    `${n} collection windows`,
  );
}

const statuses = (key: string) => Object.fromEntries(load.answers(key));

/** The spike rule's factor and the baselines' half-life, as configured below. */
const FACTOR = 5;
const HALF_LIFE_MS = 10_000;

/**
 * Whether what the generator really sent to `key` jumped in the anomaly's window by at least 0.8 x
 * the rule's factor over its own learned rate: the product then acted on traffic that was not
 * steady at HAProxy. A loaded machine does that: a starved generator sends a fraction of its rates
 * for tens of seconds (the baselines learn that), then its full rates again (docs/benchmarks.md,
 * `usage` at load 22-29). The steady traffic as intended never does: its rates stay within 0.5-1.5
 * x their base (3x apart at the extremes, moving x0.7-1.4 a step) and a window's noise is a few
 * requests, so a rule firing on it still fails the test. Both figures are taken in the rule's
 * favour: the window holds every request in flight at any time in it (HAProxy counted it between
 * its sending and its answer), and the learned rate is an EWMA with the rule's half-life over one
 * second buckets of requests by when they were answered (by then HAProxy had counted them; a
 * starved HAProxy counts sent requests late), up to the window's start.
 */
function burstAsSent(key: string, anomaly: Anomaly): { sent: number; learned: number } | undefined {
  const end = new Date(anomaly.windowEnd).getTime();
  const start = end - anomaly.windowMs;
  const log = load.sent(key);
  const inWindow = log.filter((r) => r.start <= end && (r.end ?? Infinity) >= start).length;
  const sent = inWindow / (anomaly.windowMs / 1000);
  const first = log[0]?.start;
  if (first === undefined || first >= start) return undefined;
  const buckets = new Array<number>(Math.ceil((start - first) / 1000)).fill(0);
  for (const r of log) if (r.end !== undefined && r.end < start) buckets[Math.floor((r.end - first) / 1000)]!++;
  const weight = 1 - Math.pow(0.5, 1000 / HALF_LIFE_MS);
  let learned = buckets[0]!;
  for (const n of buckets.slice(1)) learned += weight * (n - learned);
  return sent >= 0.8 * FACTOR * learned ? { sent: Number(sent.toFixed(2)), learned: Number(learned.toFixed(2)) } : undefined;
}

/** Keys acted on for a burst the generator really sent (burstAsSent), with the figures; reported, not failed. */
const bursts = new Map<string, Array<{ rule: string; value: number; sent: number; learned: number }>>();

/** Anomalies of keys other than `except` that their own traffic as sent does not explain (expected: none). */
async function unexplained(except: ReadonlySet<string> = new Set()): Promise<Array<{ secret: string; data: Anomaly }>> {
  const left: Array<{ secret: string; data: Anomaly }> = [];
  for (const a of await anomalies()) {
    if (except.has(a.secret)) continue;
    const burst = burstAsSent(keys.get(a.secret)!, a.data);
    if (!burst) left.push(a);
    else if (!bursts.get(a.secret)?.some((b) => b.value === a.data.value)) bursts.set(a.secret, [...(bursts.get(a.secret) ?? []), { rule: a.data.rule, value: a.data.value, ...burst }]);
  }
  if (bursts.size) console.info('usage-haproxy: keys acted on for a burst the loaded generator really sent', Object.fromEntries(bursts));
  return left;
}

/**
 * What `name`'s key was answered besides 200 (unexpectedAnswers), with its transport errors by
 * code when there is any; a key acted on for a real burst (`bursts`) may also have met 429.
 */
function kept(name: string, key: string): { name: string; unexpected: Record<number, number>; errors: Record<string, number> } {
  const unexpected = unexpectedAnswers(load.answers(key));
  if (bursts.has(name)) delete unexpected[429];
  return { name, unexpected, errors: Object.keys(unexpected).length ? Object.fromEntries(load.errors(key)) : {} };
}

beforeAll(async () => {
  backend = await startBackend();
  haproxy = await startHaproxy(backend.port, { usage: { throttledPer10s: 5 } });
  h = await startHarness({ label: 'usage-haproxy' });
  const { probe: _probe, ...gateway } = haproxy.providerConfig;
  // No probe: verify reads the live map, which keeps the 51 first rotations short.
  const edge = { type: 'haproxy', ...gateway, drift: { interval: '1h' }, usage: { interval: '1s' } };
  await h.apply(`
providers:
  vault: { type: local }
  edge: ${JSON.stringify(edge)}
usage:
  baseline: { halfLife: ${HALF_LIFE_MS / 1000}s }
  rules: [${rule('throttle')}]
secrets:
  ${family}:
    clients: [${clients.join(', ')}]
    store: { provider: vault }
    issuer: { type: random, prefix: rk_uf_ }
    targets: [edge]
  ${watched}:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_uo_ }
    targets: [edge]
    usage:
      baseline: { halfLife: ${HALF_LIFE_MS / 1000}s }
      rules: [${rule('observe')}]
`);
  const names = [...clients.map((c) => `${family}/${c}`), watched];
  // A few at a time: the harness's connection pool is small.
  for (let i = 0; i < names.length; i += 8) await Promise.all(names.slice(i, i + 8).map(async (name) => expect((await h.rotate(name, 60_000)).status).toBe('succeeded')));
  for (const name of names) keys.set(name, await h.currentValue(name));
  [...keys.values()].forEach((key, i) => {
    const base = 5 + 4 * Math.random();
    steady.set(key, { base, rate: base, networks: [1, 2, 3].map((n) => `127.${n}.${i}.1`) });
  });
  // Sent from a child process: this one also runs the worker, and starved it would send less, then its
  // full rates again (the bursts burstAsSent finds), and stamp its requests late.
  load = await keyedLoadProcess({ url: haproxy.url, header: haproxy.header, streams: [...steady].map(([key, s]) => ({ key, rate: s.rate, sources: pick(s.networks) })) });
  wander = wanderEachSecond();
}, 120_000);

afterAll(async () => {
  clearInterval(wander);
  await load?.stop();
  await h?.stop();
  await haproxy?.stop();
  await backend?.close();
});

describe('usage rules through HAProxy', () => {
  it(`steady noisy traffic on 51 keys: no rule fires over the warm-up and ${STEADY_WINDOWS} windows after it`, async () => {
    const started = Date.now();
    await windows(WARMUP_WINDOWS + STEADY_WINDOWS);
    await load.synced();
    expect(await unexplained()).toEqual([]);
    for (const [name, key] of keys) expect(kept(name, key)).toEqual({ name, unexpected: {}, errors: {} });
    const used = await h.runtime.db.version.count({ where: { secret: { name: { startsWith: `${family}/` } }, state: 'current', lastUsedAt: { not: null } } });
    expect(used).toBe(50);
    // The traffic did wander: about a third of the keys a second, and the keys' totals differ.
    expect(relevels).toBeGreaterThan(((Date.now() - started) / 1000) * 51 * 0.2);
    const totals = [...keys.values()].map((key) => statuses(key)[200]!).sort((a, b) => a - b);
    expect(totals.at(-1)! / totals[0]!).toBeGreaterThan(1.2);
  }, 300_000);

  it('a key jumping 20x from 20 new networks is throttled within two windows (429 for it alone); the same rule in observe mode changes nothing', async () => {
    const spiked = keys.get(`${family}/c07`)!;
    const observed = keys.get(watched)!;
    pinned.add(spiked).add(observed);
    const spikeStart = Date.now();
    load.set({ key: spiked, rate: steady.get(spiked)!.rate * 20, sources: SPIKE_SOURCES });
    load.set({ key: observed, rate: steady.get(observed)!.rate * 20, sources: SPIKE_SOURCES });

    await until(async () => (await anomalies(`${family}/c07`)).length > 0 && (await anomalies(watched)).length > 0, 60_000, 'both anomalies audited');
    const [throttled] = await anomalies(`${family}/c07`);
    expect(throttled!.data).toMatchObject({ rule: 'spike', action: 'throttle', done: 'throttled' });
    // The window that caught it is the first or second one holding spike traffic, by the windows' own lengths.
    expect(new Date(throttled!.data.windowEnd).getTime() - 2 * throttled!.data.windowMs).toBeLessThanOrEqual(spikeStart);
    const [seen] = await anomalies(watched);
    expect(seen!.data).toMatchObject({ rule: 'spike', action: 'observe', done: 'observed' });

    const before429 = statuses(spiked)[429] ?? 0;
    await until(() => Promise.resolve((statuses(spiked)[429] ?? 0) > before429 + 20), 30_000, 'HAProxy answers 429 to the throttled key');
    const map = await runtimeCommand(parseRuntimeEndpoint(haproxy.runtimeApi.unix), `show map ${haproxy.map}`, new AbortController().signal, 5000);
    const values = new Map(map.trim().split('\n').map((line) => [line.split(' ')[1]!, line.split(' ')[2]!]));
    expect(values.get(spiked)).toBe('throttled:c07');
    expect(values.get(observed)).toBe(watched);
    // Every other key, the observed one included, only ever got 200.
    // Only the spike's own anomalies: no other key was acted on but for a burst it really sent.
    await load.synced();
    expect(await unexplained(new Set([`${family}/c07`, watched]))).toEqual([]);
    for (const [name, key] of keys) if (key !== spiked) expect(kept(name, key)).toEqual({ name, unexpected: {}, errors: {} });
  }, 90_000);
});
