/**
 * The fleet rotation's limits (src/cli/fleet.ts), with in-process workers and a slow target so
 * that runs overlap: never more than --per-target at once at a target even where the store limit
 * would allow more, never more than --store-rate started in any second per store instance, and
 * the progress lines count done, failed and remaining with a rate and an ETA.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rotateFleet } from '../../src/cli/fleet.js';
import { startHarness, type Harness } from '../support/harness.js';
import { mostAtOnce } from '../support/runs.js';

const KEYSET = `rekey-fleet-limits-${randomUUID().slice(0, 8)}:`;
const SECRETS = 12;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'fleet-limits' });
  const secret = (i: number) => `  fl-${String(i).padStart(2, '0')}: { store: { provider: ${i % 2 ? 'vault-a' : 'vault-b'} }, issuer: { type: random }, targets: [slow] }\n`;
  await h.apply(`
providers:
  vault-a: { type: local }
  vault-b: { type: local }
  slow: { type: slow-keyset, keyPrefix: "${KEYSET}", delayMs: 150 }
secrets:
${Array.from({ length: SECRETS }, (_, i) => secret(i)).join('')}`);
}, 120_000);

afterAll(async () => {
  await h.stop();
});

it('holds the per-target limit where the per-store one would allow more, and reports progress', async () => {
  const lines: string[] = [];
  const result = await rotateFleet(h.runtime, { all: true }, { dryRun: false, perStore: 10, perTarget: 3, storeRate: 1000, out: (l) => lines.push(l), progressEveryMs: 0 });
  expect(result).toMatchObject({ selected: SECRETS, done: SECRETS, failed: 0, resumed: false });
  const runs = await h.runtime.db.run.findMany({ where: { trigger: 'fleet' }, select: { startedAt: true, finishedAt: true } });
  expect(runs).toHaveLength(SECRETS);
  const most = mostAtOnce(runs);
  expect(most).toBeLessThanOrEqual(3);
  expect(most).toBe(3); // the limit was what held them back: two stores would have allowed 20
  expect(lines[0]).toBe(`Fleet rotation: ${SECRETS} secrets, 2 store(s), 1 target(s); at most 10 at once per store (1000 started/s), 3 per target.`);
  const progress = lines.slice(1).map((l) => /^ {2}(\d+) done, (\d+) failed, (\d+) remaining \((\d+) running\); (\d+\.\d)\/s, ETA (.+)$/.exec(l));
  expect(progress.every(Boolean)).toBe(true);
  for (const m of progress) expect(Number(m![1]) + Number(m![2]) + Number(m![3])).toBe(SECRETS);
  expect(progress.at(-1)!.slice(1, 4)).toEqual([String(SECRETS), '0', '0']);
  expect(progress.some((m) => /^\d/.test(m![6]!))).toBe(true); // a time left, once a rate is known
});

it('starts at most --store-rate rotations per second per store instance', async () => {
  const result = await rotateFleet(h.runtime, { store: 'vault-a' }, { dryRun: false, perStore: 10, perTarget: 10, storeRate: 2, out: () => undefined });
  expect(result).toMatchObject({ selected: SECRETS / 2, done: SECRETS / 2, failed: 0 });
  const starts = (await h.runtime.db.run.findMany({ where: { trigger: 'fleet', idempotencyKey: { startsWith: `fleet:${result.fleet}:` } }, select: { startedAt: true } }))
    .map((r) => r.startedAt.getTime())
    .sort((a, b) => a - b);
  expect(starts).toHaveLength(SECRETS / 2);
  // Any three consecutive starts span about a second. The database stamps a start when its
  // statement runs, which can lag the command's start by tens of milliseconds on a loaded
  // machine (a span of 931 ms was seen at load 15); without the limit they span a few.
  for (let i = 2; i < starts.length; i++) expect(starts[i]! - starts[i - 2]!).toBeGreaterThanOrEqual(750);
});
