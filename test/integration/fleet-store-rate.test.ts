/**
 * A fleet rotation's default start rate is each store's own (src/cli/fleet.ts, the store
 * module's `fleetStartsPerSecond`): Google Secret Manager's quota is per project and far below
 * AWS's per region, so one default for every store either throttles AWS for nothing or exceeds
 * Google's quota. A local store made to declare 2 starts a second stands in for such a store
 * beside a plain local one (10): without --store-rate each is held to its own rate.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rotateFleet } from '../../src/cli/fleet.js';
import local from '../../providers/local/index.js';
import { startHarness, testModules, type Harness } from '../support/harness.js';

const EACH = 6;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'fleet-store-rate', modules: testModules.with([{ ...local, type: 'rated-local', fleetStartsPerSecond: 2 }]) });
  const secrets = Array.from({ length: EACH }, (_, i) => `  sr-rated-${i}: { store: { provider: rated }, issuer: { type: random } }\n  sr-plain-${i}: { store: { provider: plain }, issuer: { type: random } }\n`);
  await h.apply(`
providers:
  rated: { type: rated-local }
  plain: { type: local }
secrets:
${secrets.join('')}`);
}, 120_000);

afterAll(() => h?.stop());

it('holds each store to its module\'s start rate when --store-rate is not given', async () => {
  const lines: string[] = [];
  const result = await rotateFleet(h.runtime, { all: true }, { dryRun: false, perStore: 10, perTarget: 10, out: (l) => lines.push(l) });
  expect(result).toMatchObject({ selected: 2 * EACH, done: 2 * EACH, failed: 0 });
  expect(lines[0]).toBe(`Fleet rotation: ${2 * EACH} secrets, 2 store(s), 0 target(s); at most 10 at once per store (plain 10/s, rated 2/s), 10 per target.`);
  const runs = await h.runtime.db.run.findMany({ where: { trigger: 'fleet', secret: { name: { startsWith: 'sr-rated-' } } }, select: { startedAt: true } });
  const starts = runs.map((r) => r.startedAt.getTime()).sort((a, b) => a - b);
  expect(starts).toHaveLength(EACH);
  // Any three consecutive starts span about a second (fleet-limits.test.ts: the database stamps a start up to tens of ms after the command's).
  for (let i = 2; i < starts.length; i++) expect(starts[i]! - starts[i - 2]!).toBeGreaterThanOrEqual(750);
}, 120_000);
