/**
 * A fleet left unfinished long ago (src/cli/fleet.ts): its command was stopped and never run
 * again. Weeks later, after a breach, the same command must re-key every secret: the old fleet
 * is not resumed (its rotations, long past their grace, would count as this one's and those
 * secrets would keep the keys the breach exposed). A fleet stopped lately is still resumed.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { canonicalJson } from '../../src/config/load.js';
import { rotateFleet } from '../../src/cli/fleet.js';
import { startHarness, type Harness } from '../support/harness.js';
import { memoryConfig } from '../support/memory-provider.js';

const JOURNAL = `fleet-abandoned-${randomUUID()}`;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'rv-mass-fleet-abandoned' });
  await h.apply(memoryConfig(JOURNAL, { 'ab-a': 'grace: 1h', 'ab-b': 'grace: 1h' }));
}, 120_000);
afterAll(async () => {
  await h?.stop();
});

const options = { dryRun: false, perStore: 10, perTarget: 10, storeRate: 1000, progressEveryMs: 0 };

/** A fleet of `--all` started `ago` ms back whose command died after ab-a's rotation (which finished). */
async function leftUnfinished(ago: number): Promise<string> {
  const fleet = randomUUID();
  vi.useFakeTimers({ toFake: ['Date'] });
  try {
    vi.setSystemTime(Date.now() - ago);
    await h.runtime.db.$transaction((tx) => h.runtime.audit.append(tx, { actor: 'cli', action: 'fleet.started', data: { fleet, selection: canonicalJson({ all: true, graceMs: null }), secrets: 2 } }));
  } finally {
    vi.useRealTimers();
  }
  const run = await h.runtime.engine.requestRotation({ secret: 'ab-a', trigger: 'fleet', idempotencyKey: `fleet:${fleet}:ab-a` });
  if (run.status === 'stale') throw new Error('stale');
  expect((await h.waitForRun(run.run.id)).status).toBe('succeeded');
  return fleet;
}

const versions = (secret: string) => h.runtime.db.version.count({ where: { secret: { name: secret } } });

it('a fleet left unfinished 30 days ago is not resumed: the same command re-keys every secret in a new fleet', async () => {
  const old = await leftUnfinished(30 * 24 * 3600 * 1000);
  const before = await versions('ab-a');
  const lines: string[] = [];
  const result = await rotateFleet(h.runtime, { all: true }, { ...options, out: (line) => lines.push(line) });
  expect(result).toMatchObject({ resumed: false, selected: 2, done: 2, failed: 0 });
  expect(result.fleet).not.toBe(old);
  expect(await versions('ab-a')).toBe(before + 1); // rotated now, not counted from 30 days ago
  expect(lines[0]).toContain(`fleet ${old} of this selection, started 30d ago, never finished: not resumed`);
});

it('a fleet stopped an hour ago is resumed', async () => {
  const old = await leftUnfinished(3600 * 1000);
  const before = await versions('ab-a');
  const lines: string[] = [];
  const result = await rotateFleet(h.runtime, { all: true }, { ...options, out: (line) => lines.push(line) });
  expect(result).toMatchObject({ fleet: old, resumed: true, selected: 2, done: 2, failed: 0 });
  expect(await versions('ab-a')).toBe(before);
  expect(lines[0]).toMatch(new RegExp(`^Resuming fleet ${old} \\(started 1h ago\\): 2 secrets`));
  // The command that resumed it is in the audit log too: an incident's review sees every command that drove the fleet.
  const resumedBy = await h.runtime.db.auditEvent.findMany({ where: { action: 'fleet.resumed', data: { path: ['fleet'], equals: old } }, select: { actor: true, data: true } });
  expect(resumedBy.map((e) => [e.actor, (e.data as { secrets?: number }).secrets])).toEqual([[h.runtime.actor, 2]]);
});
