/**
 * Two fleet commands at once (src/cli/fleet.ts): two operators, or a CI job retried while the
 * first still runs. Each command checked the store's and targets' running rotations and then
 * requested, so two of them that checked at the same moment each filled the same free slot:
 * --per-store and --per-target held per command, not per store. A command now claims the slots it
 * fills (fleet_slots) in a short transaction under one lock, requests outside it, and gives the
 * claim back once the runs are recorded: the other commands count the claim meanwhile, and are
 * never held up by a slow request (nor is vacuum, by a transaction left open across a pass).
 *
 * A slow request is made certain, not likely: a trigger makes each insert of a run wait for an
 * advisory lock the test holds until the other command has checked the slots, twice.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rotateFleet } from '../../src/cli/fleet.js';
import { startHarness, type Harness } from '../support/harness.js';
import { mostAtOnce } from '../support/runs.js';
import { journal, memoryConfig } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

const JOURNAL = `fleet-two-${randomUUID()}`;
const j = journal(JOURNAL);
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'rv-mass-fleet-two' });
  await h.apply(memoryConfig(JOURNAL, { 'two-a': '', 'two-b': '', 'two-c': '' }));
}, 120_000);
afterAll(async () => {
  await h?.stop();
});

it('two commands driving fleets of one store at once keep --per-store 1 between them; a slow request holds up neither the other command nor anything else', async () => {
  j.delayMs = 100; // each rotation's calls take a while: runs started together overlap
  const lock = new pg.Client({ connectionString: h.env.databaseUrl });
  await lock.connect();
  const gated = async () =>
    Number(
      (await lock.query<{ n: string }>(`SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND l.locktype = 'advisory' AND l.objid = 4242 AND a.datname = current_database()`)).rows[0]!
        .n,
    );
  await lock.query(`CREATE FUNCTION rv_mass_gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $$`);
  await lock.query('CREATE TRIGGER rv_mass_gate BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION rv_mass_gate()');
  const passes: string[] = [];
  let fleets: Promise<unknown>;
  try {
    await lock.query('SELECT pg_advisory_lock(4242)');
    const options = { dryRun: false, perStore: 1, perTarget: 10, storeRate: 1000, out: () => undefined };
    // Two selections of the same store, as two operators would type them: the first takes the store's one slot and its request waits.
    const first = rotateFleet(h.runtime, { all: true }, options);
    await until(async () => (await gated()) === 1, 30_000, "the first command's request waiting");
    // The second checks the slots (a progress line per pass) while that request is still in flight: it finds the slot taken, and requests nothing.
    const second = rotateFleet(h.runtime, { selector: 'two-c' }, { ...options, progressEveryMs: 0, quietEveryMs: 0, out: (line: string) => passes.push(line) });
    fleets = Promise.all([first, second]);
    await until(() => Promise.resolve(passes.length >= 3), 30_000, "the second command's passes while the first one's request waits");
    expect(await gated()).toBe(1);
    // No transaction is left open across the request (it would hold back vacuum, and pin a connection).
    const open = await lock.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'`);
    expect(Number(open.rows[0]!.n)).toBe(0);
  } finally {
    await lock.query('SELECT pg_advisory_unlock(4242)');
  }
  await fleets;
  await lock.query('DROP TRIGGER rv_mass_gate ON runs');
  await lock.end();
  const runs = await h.runtime.db.run.findMany({ where: { trigger: 'fleet' }, select: { startedAt: true, finishedAt: true, status: true } });
  expect(runs.every((r) => r.status === 'succeeded')).toBe(true);
  expect(mostAtOnce(runs)).toBe(1);
  expect(await h.runtime.db.$queryRaw`SELECT * FROM fleet_slots`).toEqual([]);
});
