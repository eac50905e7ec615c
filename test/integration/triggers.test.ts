/**
 * Triggers: the stale-job check (a trigger older than the secret's last promotion does
 * nothing, Infisical's pattern), schedules that follow `apply` in running workers without
 * a restart, and the server's health, readiness and metrics endpoints.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/core/engine.js';
import { RekeyError } from '../../src/core/errors.js';
import { startHarness, type Harness } from '../support/harness.js';
import { secretSchedulers } from '../support/redis.js';
import { journal } from '../support/memory-provider.js';

// wall-clock schedules: "* * * * * *" is what the schedule test is about (it fires every second, counted as such).
let h: Harness;
const JOURNAL = `triggers-${randomUUID()}`;
const config = (schedule: string) => `
providers:
  mem: { type: memory, journal: ${JOURNAL} }
secrets:
  timely:
    store: { provider: mem }
    issuer: { provider: mem }
    targets: [mem]
    grace: 200ms
${schedule}`;

beforeAll(async () => {
  h = await startHarness({ label: 'triggers', gaugesInterval: '1s' });
  await h.apply(config(''));
});
afterAll(() => h.stop());

describe('stale triggers', () => {
  it('a trigger requested before the last promotion does nothing, and says so in the audit log', async () => {
    const before = new Date();
    expect((await h.rotate('timely')).status).toBe('succeeded');
    const runs = await h.runtime.db.run.count();
    const result = await h.runtime.engine.requestRotation({ secret: 'timely', trigger: 'event', idempotencyKey: 'event:late', requestedAt: before });
    expect(result.status).toBe('stale');
    expect(await h.runtime.db.run.count()).toBe(runs);
    const audited = await h.runtime.db.auditEvent.findFirst({ where: { action: 'trigger.stale' } });
    expect(audited?.data).toMatchObject({ trigger: 'event', idempotencyKey: 'event:late' });
    // A trigger from after the promotion does rotate.
    const fresh = await h.runtime.engine.requestRotation({ secret: 'timely', trigger: 'event', idempotencyKey: 'event:fresh', requestedAt: new Date() });
    expect(fresh.status).toBe('queued');
  });

  it('a redelivered trigger (a job a killed worker never acknowledged) is audited once, and not at all once it made a run', async () => {
    const outcomes = (key: string) => h.runtime.db.auditEvent.count({ where: { action: { startsWith: 'trigger.' }, data: { path: ['idempotencyKey'], equals: key } } });
    await expect.poll(() => h.runtime.db.run.count({ where: { kind: 'rotation', status: 'running' } }), { timeout: 10_000 }).toBe(0);
    const requestedAt = new Date();
    const made = await h.runtime.engine.requestRotation({ secret: 'timely', trigger: 'event', idempotencyKey: 'event:redelivered', requestedAt });
    expect(made.status).toBe('queued');
    await expect.poll(async () => (await h.runtime.db.run.findUnique({ where: { idempotencyKey: 'event:redelivered' } }))?.status, { timeout: 10_000 }).toBe('succeeded');
    // Delivered again after its own run promoted: older than the promotion, but not a second outcome.
    expect((await h.runtime.engine.requestRotation({ secret: 'timely', trigger: 'event', idempotencyKey: 'event:redelivered', requestedAt })).status).toBe('stale');
    expect(await outcomes('event:redelivered')).toBe(0);

    for (let i = 0; i < 3; i++) {
      const late = await h.runtime.engine.requestRotation({ secret: 'timely', trigger: 'event', idempotencyKey: 'event:late-again', requestedAt: new Date(0) });
      expect(late.status).toBe('stale');
    }
    expect(await outcomes('event:late-again')).toBe(1);
  });
});

describe('a request whose job cannot be queued', () => {
  it('fails with REKEY_ERR_NOT_QUEUED naming the recorded run, which reconcile() then starts', async () => {
    await expect.poll(() => h.runtime.db.run.count({ where: { kind: 'rotation', status: 'running' } }), { timeout: 10_000 }).toBe(0);
    const deps = h.runtime.engine.deps;
    // Redis refusing the job after the run committed (a failover, Too many Cluster redirections).
    const queue = new Proxy(deps.queue, {
      get(target, prop) {
        if (prop === 'enqueueRun') return () => Promise.reject(new Error('Connection is closed.'));
        const member: unknown = Reflect.get(target, prop);
        return typeof member === 'function' ? (member as (...args: unknown[]) => unknown).bind(target) : member;
      },
    });
    const failing = new Engine({ ...deps, queue });
    const error = (await failing.requestRotation({ secret: 'timely', trigger: 'manual', idempotencyKey: 'manual:unqueued' }).catch((e: unknown) => e)) as RekeyError;
    expect(error).toBeInstanceOf(RekeyError);
    const run = await h.runtime.db.run.findUnique({ where: { idempotencyKey: 'manual:unqueued' } });
    expect(error).toMatchObject({ code: 'REKEY_ERR_NOT_QUEUED', retryable: true });
    expect(error.message).toContain(run!.id);
    expect(error.message).toContain('reconcile');
    // Not the queue's text: the message is built from the code and ids.
    expect(error.message).not.toContain('Connection is closed');
    // The harness reconciles every second: the run is started and finishes with no other request.
    await expect.poll(async () => (await h.runtime.db.run.findUnique({ where: { id: run!.id } }))?.status, { timeout: 15_000 }).toBe('succeeded');
  }, 30_000);
});

describe('schedules follow apply', () => {
  it('a schedule added by apply fires in the running workers, and stops when removed', async () => {
    const count = () => h.runtime.db.run.count({ where: { trigger: 'cron' } });
    expect(await count()).toBe(0);
    await h.apply(config('    schedule: { cron: "* * * * * *" }\n'));
    await expect.poll(count, { timeout: 10_000, interval: 200 }).toBeGreaterThanOrEqual(2);
    await h.apply(config(''));
    // Gate on Redis, not on time: the scheduler is gone and nothing it queued is left to run.
    const rotations = h.runtime.queues.queues.rotations;
    // (The cluster's audit anchor scheduler shares the queue: only the secret's own count.)
    const schedules = async () => (await secretSchedulers(rotations)).length;
    const queued = async () => (await rotations.getJobs(['waiting', 'delayed', 'prioritized', 'active'])).filter((j) => j?.name !== 'anchor').length;
    await expect.poll(schedules, { timeout: 10_000 }).toBe(0);
    await expect.poll(queued, { timeout: 10_000 }).toBe(0);
    await expect.poll(() => h.runtime.db.run.count({ where: { status: 'running' } }), { timeout: 10_000 }).toBe(0);
    const settled = await count();
    // Two more seconds of the former schedule's ticks: none of them may start a run.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await count()).toBe(settled);
    expect(await queued()).toBe(0);
  }, 30_000);
});

describe('health, readiness and metrics', () => {
  it('answer, and metrics reflect what happened', async () => {
    const url = h.serving!.url;
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ postgres: true, redis: true });
    // Gauges are sampled by the housekeeping job `gauges` (every second here): wait for a sample taken after the rotations.
    const scrape = async () => (await fetch(`${url}/metrics`)).text();
    await expect.poll(scrape, { timeout: 10_000, interval: 200 }).toMatch(/rekey_versions\{state="current"\} 1/);
    const metrics = await scrape();
    expect(metrics).toMatch(/rekey_rotations_total\{result="succeeded",trigger="manual"\} [1-9]/);
    expect(metrics).toMatch(/rekey_queue_jobs\{queue="rotations",state="waiting"\} \d/);
    // Every stale trigger audited is counted once: 'event:late' and 'event:late-again' (three
    // deliveries, one outcome); a redelivery of a trigger that made a run is not counted. The
    // every-second schedule above may add some: its jobs are requested at their due time, so a
    // tick picked up after a run promoted later than that is stale too, as a loaded machine
    // makes likely. So the count is the audit log's, and the stale triggers not from cron are named.
    const stale = (await h.runtime.db.auditEvent.findMany({ where: { action: 'trigger.stale' } })).map((e) => e.data as { trigger: string; idempotencyKey: string });
    expect(stale.filter((d) => d.trigger !== 'cron').map((d) => d.idempotencyKey).sort()).toEqual(['event:late', 'event:late-again']);
    expect(stale.filter((d) => d.trigger === 'cron').every((d) => d.idempotencyKey.startsWith('cron:timely:'))).toBe(true);
    expect(metrics).toMatch(new RegExp(`^rekey_triggers_skipped_total\\{reason="stale"\\} ${stale.length}$`, 'm'));
    expect(metrics).toMatch(/rekey_run_duration_seconds_count\{kind="rotation"\} [1-9]/);
  });

  it('every provider call is counted by provider, operation and outcome, with its duration', async () => {
    const scrape = async () => (await fetch(`${h.serving!.url}/metrics`)).text();
    const count = (text: string, labels: string) => Number(new RegExp(`^rekey_provider_calls_total\\{${labels}\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    const before = await scrape();
    journal(JOURNAL).fail('deploy:mem', 1, true); // the first deploy fails as unavailable; the retry succeeds
    expect((await h.rotate('timely', 30_000)).status).toBe('succeeded');
    const after = await scrape();
    const delta = (labels: string) => count(after, labels) - count(before, labels);
    expect(delta('provider="mem",op="target.deploy",outcome="unavailable"')).toBe(1);
    expect(delta('provider="mem",op="target.deploy",outcome="ok"')).toBe(1);
    for (const op of ['issuer.issue', 'store.writePending', 'store.read', 'issuer.verify', 'target.verify', 'store.promote']) {
      expect(delta(`provider="mem",op="${op}",outcome="ok"`), op).toBeGreaterThanOrEqual(1);
    }
    expect(after).toMatch(/rekey_provider_call_duration_seconds_count\{provider="mem",op="store.promote"\} [1-9]/);
    expect(after).toMatch(/rekey_provider_call_duration_seconds_bucket\{le="0.005",provider="mem",op="target.deploy"\} \d+/);
  }, 60_000);
});
