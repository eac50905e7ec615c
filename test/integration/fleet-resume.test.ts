/**
 * A fleet rotation resumed after its command was killed (src/cli/fleet.ts) rotates each secret
 * once, counting a secret whose request joined a rotation already running as that one: it is
 * not rotated a second time (which would cut the overlap of the key the first one replaced).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rotateFleet } from '../../src/cli/fleet.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

const JOURNAL = `fleet-resume-${randomUUID()}`;
const j = journal(JOURNAL);
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'fleet-resume' });
  await h.apply(memoryConfig(JOURNAL, { 'fr-a': 'grace: 1h', 'fr-b': 'grace: 1h' }));
});
afterAll(async () => {
  await h.stop();
});

const options = { dryRun: false, perStore: 10, perTarget: 10, storeRate: 1000, progressEveryMs: 0 };

it('a fleet killed after joining a running rotation, run again: the joined secret is not rotated a second time', async () => {
  // A manual rotation of fr-a is under way (held at issue) when the fleet starts: the fleet's request joins it.
  const issuing = j.hold('issue');
  const manual = await h.runtime.engine.requestRotation({ secret: 'fr-a', trigger: 'manual' });
  if (manual.status === 'stale') throw new Error('stale');
  await issuing.reached;
  // The command dies at its first progress line: after its requests, before any run has finished.
  const killed = rotateFleet(h.runtime, { all: true }, { ...options, out: (line) => {
    if (line.startsWith('  ')) throw new Error('killed');
  } });
  await expect(killed).rejects.toThrow('killed');
  const joined = await h.runtime.db.auditEvent.findMany({ where: { secret: 'fr-a', action: 'trigger.joined' } });
  expect(joined.map((e) => e.runId)).toEqual([manual.run.id]);
  issuing.release();
  expect((await h.waitForRun(manual.run.id)).status).toBe('succeeded');
  await until(async () => (await h.runtime.db.run.count({ where: { trigger: 'fleet', status: 'running' } })) === 0, 20_000, "fr-b's fleet run to finish");

  const lines: string[] = [];
  const resumed = await rotateFleet(h.runtime, { all: true }, { ...options, out: (line) => lines.push(line) });
  expect(lines[0]).toMatch(/^Resuming fleet /);
  expect(resumed).toMatchObject({ resumed: true, selected: 2, done: 2, failed: 0 });
  // One rotation of fr-a (the one the fleet joined), one version.
  expect(await h.runtime.db.run.count({ where: { secret: { name: 'fr-a' }, kind: 'rotation' } })).toBe(1);
  expect(await h.runtime.db.version.count({ where: { secret: { name: 'fr-a' } } })).toBe(1);
});

it('the same fleet command started twice at once makes one fleet, and each secret is rotated once by it', async () => {
  const selection = { selector: 'fr-*' };
  const versions = await h.runtime.db.version.count({ where: { secret: { name: { startsWith: 'fr-' } } } });
  const [a, b] = await Promise.all([rotateFleet(h.runtime, selection, { ...options, out: () => undefined }), rotateFleet(h.runtime, selection, { ...options, out: () => undefined })]);
  const started = await h.runtime.db.auditEvent.findMany({ where: { action: 'fleet.started', data: { path: ['selection'], string_contains: '"selector":"fr-*"' } } });
  expect(started).toHaveLength(1);
  expect(a.fleet).toBe(b.fleet);
  expect(a.done + b.done).toBeGreaterThanOrEqual(2);
  expect(await h.runtime.db.version.count({ where: { secret: { name: { startsWith: 'fr-' } } } })).toBe(versions + 2);
});
