/**
 * Fleet rotation (`rekey rotate --selector`, issue 15 item 4) with real processes: a `rekey worker`
 * and the `rekey rotate` command driving the fleet. The fleet keeps at most --per-store runs going;
 * a leak reported in the middle of it is blocked within the usual latency (its takedown and
 * emergency rotation have their own queue); the fleet command killed midway and run again resumes
 * the same fleet: every secret is rotated exactly once.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Child, kill, runRekey, spawnRekey, spawnWorker, waitForOutput } from '../support/processes.js';
import { startHarness, type Harness } from '../support/harness.js';

const KEYSET = `rekey-fleet-${process.pid}-${Date.now()}:`;
const FLEET = 60;
const PER_STORE = 6;
let h: Harness;
let worker: Child;

beforeAll(async () => {
  h = await startHarness({ label: 'fleet', workers: false });
  const secret = (name: string) => `  ${name}: { store: { provider: vault }, issuer: { type: random }, targets: [keys] }\n`;
  await h.apply(`
providers:
  vault: { type: local }
  keys: { type: redis-keyset, keyPrefix: "${KEYSET}", channel: "${KEYSET}c" }
secrets:
${secret('calm')}${secret('leaky')}${Array.from({ length: FLEET }, (_, i) => secret(`fleet-${String(i).padStart(3, '0')}`)).join('')}`);
  worker = spawnWorker(h.childEnv());
  await waitForOutput(worker, /rekey started/);
}, 180_000);

afterAll(async () => {
  await kill(worker);
  const redis = new Redis(h.settings.redisUrl);
  const keys = await redis.keys(`${KEYSET}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await h.stop();
});

it('a fleet rotation: per-store limit held, a leak mid-way blocked at once, the command killed and run again resumes without doubling', async () => {
  const db = h.runtime.db;
  for (const name of ['calm', 'leaky']) expect((await runRekey(['rotate', name, '--wait', '--timeout', '2m'], h.childEnv())).code).toBe(0);
  /** Reports the leak of v1 and waits until every target refuses it: report-to-blocked, in ms. */
  const leak = async (name: string) => {
    const reported = Date.now();
    await h.runtime.engine.revoke(name, 1);
    for (;;) {
      const { blockedAt } = (await db.version.findFirst({ where: { secret: { name }, number: 1 }, select: { blockedAt: true } }))!;
      if (blockedAt) return blockedAt.getTime() - reported;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  // The usual latency, on this machine now: the same leak path with no fleet running.
  const idleMs = await leak('calm');

  const dry = await runRekey(['rotate', '--selector', 'fleet-*', '--dry-run'], h.childEnv());
  expect(dry.stdout).toContain(`Fleet rotation: ${FLEET} secrets, 1 store(s), 1 target(s)`);
  expect(dry.stdout).toContain('Dry run: nothing rotated.');
  expect(await db.run.count({ where: { trigger: 'fleet' } })).toBe(0);

  const fleet = spawnRekey(['rotate', '--selector', 'fleet-*', '--per-store', String(PER_STORE)], h.childEnv());
  await waitForOutput(fleet, /^ {2}([1-9]\d*) done/m);

  // Mid-fleet: the leak of leaky's current key (rotate-then-revoke: an emergency rotation, then the takedown).
  const fleetMs = await leak('leaky');
  const unfinished = (await db.run.count({ where: { trigger: 'fleet', status: 'running' } })) + FLEET - (await db.run.count({ where: { trigger: 'fleet' } }));
  expect(unfinished).toBeGreaterThan(0); // the fleet was still going when the leak was blocked
  // Within the usual latency: what the idle leak took, with slack for a loaded 2-core machine (one worker process runs both).
  expect(fleetMs, `leak blocked ${fleetMs} ms after the report mid-fleet, ${idleMs} ms idle`).toBeLessThan(3 * idleMs + 1500);

  // Killed midway, run again: the same fleet, resumed.
  await kill(fleet);
  const before = await db.run.count({ where: { trigger: 'fleet' } });
  expect(before).toBeLessThan(FLEET);
  const rerun = await runRekey(['rotate', '--selector', 'fleet-*', '--per-store', String(PER_STORE)], h.childEnv());
  expect(rerun.stderr).toBe('');
  expect(rerun.code).toBe(0);
  expect(rerun.stdout).toMatch(/^Resuming fleet [0-9a-f-]{36} \(started \d+[a-z]+ ago\): 60 secrets/m);
  expect(rerun.stdout).toMatch(/ETA \d/); // progress lines name a rate and an ETA
  expect(rerun.stdout).toMatch(new RegExp(`Fleet [0-9a-f-]{36}: ${FLEET} rotated, 0 failed`));

  // Exactly one run and one version per secret; never more than PER_STORE runs at once.
  const runs = await db.run.findMany({ where: { trigger: 'fleet' }, select: { secretId: true, startedAt: true, finishedAt: true, status: true } });
  expect(runs).toHaveLength(FLEET);
  expect(new Set(runs.map((r) => r.secretId)).size).toBe(FLEET);
  expect(runs.every((r) => r.status === 'succeeded')).toBe(true);
  expect(await db.version.count({ where: { secret: { name: { startsWith: 'fleet-' } } } })).toBe(FLEET);
  const edges = runs.flatMap((r) => [[r.startedAt.getTime(), 1] as const, [r.finishedAt!.getTime(), -1] as const]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, step] of edges) most = Math.max(most, (open += step));
  expect(most).toBeLessThanOrEqual(PER_STORE);
  const audit = await db.auditEvent.findMany({ where: { action: { startsWith: 'fleet.' } }, select: { action: true } });
  expect(audit.map((e) => e.action)).toEqual(['fleet.started', 'fleet.resumed', 'fleet.finished']);
});
