/**
 * The periodic checks' schedule (src/target-schedule.ts) on a real applied config: each target
 * is bound to every secret naming it (from the applied config, without building a provider
 * instance), and a sliced schedule (the drift check's) covers a large target a slice per check,
 * every secret once per round, in the same order each round.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TargetSchedule } from '../../src/target-schedule.js';
import { startHarness, type Harness } from '../support/harness.js';

const SECRETS = 25;
const SLICE = 10;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'target-schedule', workers: false });
  const secrets = Array.from({ length: SECRETS }, (_, i) => `  ts-${String(i).padStart(2, '0')}: { store: { provider: vault }, issuer: { type: random }, targets: [${i % 5 ? 'big' : 'big, small'}] }\n`);
  await h.apply(`
providers:
  vault: { type: local }
  big: { type: redis-keyset, keyPrefix: "ts-big:" }
  small: { type: redis-keyset, keyPrefix: "ts-small:" }
secrets:
${secrets.join('')}`);
}, 120_000);

afterAll(async () => {
  await h.stop();
});

it('binds each target to its secrets and checks a large target a slice at a time, all of them each round', async () => {
  const checks: Array<{ target: string; secrets: string[]; periodMs: number }> = [];
  const schedule = new TargetSchedule({
    resolver: h.runtime.resolver,
    db: h.runtime.db,
    log: h.runtime.log,
    component: 'drift',
    interval: () => 1, // due at every tick
    orphanIntervalMs: undefined,
    slice: SLICE,
    run: (target, secrets, _intervalMs, periodMs) => Promise.resolve(void checks.push({ target, secrets, periodMs })),
  });
  const everyBound = await schedule.checkNow(undefined, (target, secrets) => Promise.resolve({ target, count: secrets.length }));
  expect(everyBound.sort((a, b) => a.target.localeCompare(b.target))).toEqual([
    { target: 'big', count: SECRETS },
    { target: 'small', count: SECRETS / 5 },
  ]);

  // Two rounds of three checks; a tick starts only what is due (the first within a millisecond's jitter).
  const bigChecks = () => checks.filter((c) => c.target === 'big');
  while (bigChecks().length < 6) {
    await schedule.tick();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await schedule.stop();
  const big = bigChecks().slice(0, 6);
  expect(big.map((c) => c.secrets.length)).toEqual([10, 10, 5, 10, 10, 5]);
  const first = big.slice(0, 3).flatMap((c) => c.secrets);
  expect(new Set(first).size).toBe(SECRETS);
  expect(big.slice(3).flatMap((c) => c.secrets)).toEqual(first);
  // A target bound to no more than a slice gets every secret at each check.
  expect(checks.filter((c) => c.target === 'small').every((c) => c.secrets.length === SECRETS / 5)).toBe(true);
  // Each check says how often its secrets come round: every interval, or every three for the sliced target.
  expect(new Set(checks.map((c) => `${c.target}:${c.periodMs}`))).toEqual(new Set(['big:3', 'small:1']));
});
