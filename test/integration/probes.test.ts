/**
 * /readyz and /metrics under a flood (issue 12 item 7): they answer from a probe taken at most
 * about once a second, so a hundred requests at once cost PostgreSQL and Redis one probe, not
 * a hundred; and /metrics can be served on a port of its own (REKEY_METRICS_PORT), away from
 * the port an ingress routes to. A PostgreSQL that refuses writes (a standby) is not ready.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildServer, PROBE_CACHE_MS } from '../../src/http/server.js';
import { startHarness, type Harness } from '../support/harness.js';
import { runSql } from '../support/isolation.js';
import { until } from '../support/poll.js';

let h: Harness;
let readyProbes = 0;
let metricsRenders = 0;

beforeAll(async () => {
  h = await startHarness({ label: 'probes', settings: { REKEY_METRICS_PORT: '0' } });
  // Count what reaches the stores of state (one SELECT 1 and one PING per probe) and the registry.
  const ready = h.runtime.ready.bind(h.runtime);
  h.runtime.ready = () => {
    readyProbes += 1;
    return ready();
  };
  const { registry } = h.runtime.metrics;
  const render = registry.metrics.bind(registry);
  registry.metrics = () => {
    metricsRenders += 1;
    return render();
  };
});
afterAll(() => h?.stop());

const flood = (url: string, n: number) => Promise.all(Array.from({ length: n }, () => fetch(url).then(async (r) => ({ status: r.status, body: await r.text() }))));

/**
 * How many probes (or renders) a flood that took `ms` may cost: one per PROBE_CACHE_MS it
 * lasted, plus the one in flight at its end. Quiet, a hundred requests take well under a
 * second (two at most); a loaded machine stretches the flood, not the cache.
 */
const allowed = (ms: number) => 1 + Math.ceil(ms / PROBE_CACHE_MS);

it('100 concurrent /readyz cost one database probe per second they take, and a later request probes again', async () => {
  const before = readyProbes;
  const started = performance.now();
  const answers = await flood(`${h.serving!.url}/readyz`, 100);
  const took = performance.now() - started;
  expect(answers.every((a) => a.status === 200 && (JSON.parse(a.body) as { postgres: boolean }).postgres)).toBe(true);
  expect(readyProbes - before).toBeGreaterThanOrEqual(1);
  expect(readyProbes - before).toBeLessThanOrEqual(allowed(took));
  // Not cached for ever: once the probe is about a second old, the next request takes a new one.
  const after = readyProbes;
  await until(async () => (await fetch(`${h.serving!.url}/readyz`)).ok && readyProbes > after, 20_000, 'a fresh probe');
});

it('/metrics on its own port: 100 concurrent scrapes render once per second they take; the main port serves no /metrics', async () => {
  const metricsUrl = h.serving!.metricsUrl!;
  expect(metricsUrl).toBeDefined();
  expect(metricsUrl).not.toBe(h.serving!.url);
  const before = metricsRenders;
  const started = performance.now();
  const answers = await flood(`${metricsUrl}/metrics`, 100);
  const took = performance.now() - started;
  expect(answers.every((a) => a.status === 200 && a.body.includes('rekey_rotations_total'))).toBe(true);
  expect(metricsRenders - before).toBeLessThanOrEqual(allowed(took));
  expect((await fetch(`${h.serving!.url}/metrics`)).status).toBe(404);
  // The metrics port serves metrics only: no receivers, no health endpoints an ingress could reach there.
  expect((await fetch(`${metricsUrl}/readyz`)).status).toBe(404);
  expect((await fetch(`${h.serving!.url}/readyz`)).status).toBe(200);
});

it('/readyz answers 503 while PostgreSQL refuses writes (a standby, a demoted primary the front still routes to), and 200 once the connections reach a writable server again', async () => {
  const ro = await startHarness({ label: 'probes-ro', workers: false });
  const app = await buildServer(ro.runtime);
  const database = pg.escapeIdentifier(new URL(ro.env.databaseUrl).pathname.slice(1));
  try {
    // Every session opened from now on is read-only, as on a standby: writes fail with SQLSTATE 25006.
    await runSql(ro.env.databaseUrl, [`ALTER DATABASE ${database} SET default_transaction_read_only = on`]);
    await expect(ro.runtime.db.$executeRaw`CREATE TEMP TABLE t (x int)`).rejects.toThrow();
    const refused = await app.inject('/readyz');
    expect({ status: refused.statusCode, body: refused.json<unknown>() }).toEqual({ status: 503, body: { postgres: false, redis: true } });
    // Writable again for new sessions; a pooled connection opened read-only stays so: it must not be kept.
    await runSql(ro.env.databaseUrl, ['SET default_transaction_read_only = off', `ALTER DATABASE ${database} RESET default_transaction_read_only`]);
    await until(async () => (await app.inject('/readyz')).statusCode === 200, 20_000, '/readyz 200 once the server takes writes');
  } finally {
    await app.close();
    await ro.stop();
  }
});
