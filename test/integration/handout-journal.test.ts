/**
 * The hand-out journal (src/db/handouts.ts): hand-outs that arrive together share a
 * transaction, the next batch's BEGIN, check and takes go in the same write as the previous
 * batch's insert and COMMIT, the audit chain they append to stays linear and verifies, a
 * version that fails the check is refused without failing its batch, a batch whose connection
 * dies is run once more on a new connection, and a failed insert fails the next batch sent
 * behind it too, both run again and each recorded once. A hand-out that arrives while a
 * batch's check and take are under way is recorded by that batch, when the check covered its
 * versions.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { HandOut } from '../../src/core/delivery.js';
import { verifyAudit } from '../../src/db/audit-verify.js';
import { HandoutJournal } from '../../src/db/handouts.js';
import { currentVersion } from '../support/delivery.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let journal: HandoutJournal;
let version: string;

beforeAll(async () => {
  h = await startHarness({ label: 'handout-journal' });
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  payments-api-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_pay_ }, grace: 1h }
`);
  expect((await h.rotate('payments-api-key', 60_000)).status).toBe('succeeded');
  version = (await currentVersion(h, 'payments-api-key')).id;
  journal = new HandoutJournal(h.runtime.db, h.runtime.audit);
});
afterAll(async () => {
  await journal?.close();
  await h?.stop();
});

const handOut = (subject: string, handed = version): HandOut => ({
  handed: [handed],
  relied: [],
  event: { actor: `subject:${subject}`, action: 'delivery.value', secret: 'payments-api-key', versionId: handed, data: { subject } },
});

const recordedEvents = (actorPrefix: string) => h.runtime.db.auditEvent.count({ where: { action: 'delivery.value', actor: { startsWith: actorPrefix } } });

it('records hand-outs that arrive together in shared transactions, one linear chain that verifies', async () => {
  const before = { ...journal.stats };
  const recorded = await Promise.all(Array.from({ length: 300 }, (_, i) => journal.record(handOut(`batch:${i}`))));
  expect(recorded.every(Boolean)).toBe(true);
  expect(journal.stats.records - before.records).toBe(300);
  expect(journal.stats.batches - before.batches).toBeLessThan(300);
  expect(await recordedEvents('subject:batch:')).toBe(300);
  expect(await verifyAudit(h.runtime.db, h.runtime.audit)).toMatchObject({ ok: true });
});

it('refuses a hand-out whose version fails the check, records nothing for it, and records the others of its batch', async () => {
  const unknown = randomUUID();
  const [passed, refused] = await Promise.all([journal.record(handOut('check:1')), journal.record(handOut('check:2', unknown))]);
  expect([passed, refused]).toEqual([true, false]);
  expect(await h.runtime.db.auditEvent.count({ where: { versionId: unknown } })).toBe(0);
  expect(await verifyAudit(h.runtime.db, h.runtime.audit)).toMatchObject({ ok: true });
});

/** The first lock wait of another backend than `client`'s (and than `not`), once there is one (pg_stat_activity read outside any transaction). */
async function lockWaiter(client: pg.Client, not = 0): Promise<number> {
  for (;;) {
    const { rows } = await client.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() AND pid <> $1", [not]);
    if (rows.length) return rows[0]!.pid;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

it('records a hand-out that arrives while a batch is being checked in that batch, when the check covered its versions', async () => {
  // A transaction holding the version's row keeps the first batch's check (FOR SHARE) waiting:
  // the later hand-outs arrive while its BEGIN, check and take are under way.
  const admin = new pg.Client({ connectionString: h.env.databaseUrl });
  const watch = new pg.Client({ connectionString: h.env.databaseUrl });
  await admin.connect();
  await watch.connect();
  const unknown = randomUUID();
  const before = journal.stats.batches;
  try {
    await admin.query('BEGIN');
    await admin.query('SELECT id FROM versions WHERE id = $1 FOR UPDATE', [version]);
    const first = journal.record(handOut('join:first'));
    await lockWaiter(watch);
    const late = journal.record(handOut('join:late'));
    // Its version was not among those the first batch checked: it waits for a check of its own.
    const other = journal.record(handOut('join:other', unknown));
    await admin.query('COMMIT');
    expect(await Promise.all([first, late, other])).toEqual([true, true, false]);
    // One transaction wrote both rows; the refused hand-out had one of its own.
    const { rows } = await watch.query<{ xmin: string }>("SELECT DISTINCT xmin::text AS xmin FROM audit_events WHERE actor IN ('subject:join:first', 'subject:join:late')");
    expect(rows).toHaveLength(1);
    expect(journal.stats.batches - before).toBe(2);
  } finally {
    await admin.end();
    await watch.end();
  }
  expect(await recordedEvents('subject:join:')).toBe(2);
  expect(await h.runtime.db.auditEvent.count({ where: { versionId: unknown } })).toBe(0);
  expect(await verifyAudit(h.runtime.db, h.runtime.audit)).toMatchObject({ ok: true });
});

it('runs a batch whose connection dies once more on a new connection, and later batches pass', async () => {
  // A transaction holding the version's row keeps the journal's check (FOR SHARE) waiting, so
  // its connection can be ended while the batch is under way.
  const admin = new pg.Client({ connectionString: h.env.databaseUrl });
  // pg_stat_activity is read outside the admin's transaction (a transaction sees one snapshot of it).
  const watch = new pg.Client({ connectionString: h.env.databaseUrl });
  await admin.connect();
  await watch.connect();
  try {
    await admin.query('BEGIN');
    await admin.query('SELECT id FROM versions WHERE id = $1 FOR UPDATE', [version]);
    const pending = Promise.all(Array.from({ length: 5 }, (_, i) => journal.record(handOut(`retry:${i}`))));
    const first = await lockWaiter(watch);
    await watch.query('SELECT pg_terminate_backend($1)', [first]);
    // The batch is run again on a new connection, which waits for the row in turn (the ended
    // backend may still be listed, waiting, for a moment: a busy machine showed it once more).
    const second = await lockWaiter(watch, first);
    expect(second).not.toBe(first);
    await admin.query('COMMIT');
    expect(await pending).toEqual([true, true, true, true, true]);
  } finally {
    await admin.end();
    await watch.end();
  }
  expect(await recordedEvents('subject:retry:')).toBe(5);
  expect(await journal.record(handOut('after'))).toBe(true);
  expect(await verifyAudit(h.runtime.db, h.runtime.audit)).toMatchObject({ ok: true });
});

it('runs again both the batch whose insert failed and the next batch, whose check and takes went behind it in the same write', async () => {
  const admin = new pg.Client({ connectionString: h.env.databaseUrl });
  const watch = new pg.Client({ connectionString: h.env.databaseUrl });
  await admin.connect();
  await watch.connect();
  // The first insert holding 'subject:poison' fails (a sequence is not rolled back, so once only).
  await admin.query('CREATE SEQUENCE handout_poison');
  await admin.query(`CREATE FUNCTION handout_poison() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.actor = 'subject:poison' AND nextval('handout_poison') = 1 THEN RAISE EXCEPTION 'poisoned insert'; END IF;
      RETURN NEW;
    END $$`);
  await admin.query('CREATE TRIGGER handout_poison BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION handout_poison()');
  // One request per batch, so none joins the poisoned one (see the test above): they form the next batch.
  const single = new HandoutJournal(h.runtime.db, h.runtime.audit, 1);
  try {
    // The poisoned batch's check waits on the version's row, so the next batch gathers meanwhile
    // and is opened in the write that carries the poisoned insert.
    await admin.query('BEGIN');
    await admin.query('SELECT id FROM versions WHERE id = $1 FOR UPDATE', [version]);
    const poisoned = single.record(handOut('poison'));
    await lockWaiter(watch);
    const behind = Promise.all(Array.from({ length: 3 }, (_, i) => single.record(handOut(`behind:${i}`))));
    await admin.query('COMMIT');
    expect(await poisoned).toBe(true);
    expect(await behind).toEqual([true, true, true]);
    // Failed once, then recorded on the second run.
    expect((await watch.query<{ last_value: string }>('SELECT last_value FROM handout_poison')).rows[0]!.last_value).toBe('2');
  } finally {
    await admin.query('DROP TRIGGER IF EXISTS handout_poison ON audit_events').catch(() => {});
    await single.close();
    await admin.end();
    await watch.end();
  }
  expect(await recordedEvents('subject:poison')).toBe(1);
  expect(await recordedEvents('subject:behind:')).toBe(3);
  expect(await verifyAudit(h.runtime.db, h.runtime.audit)).toMatchObject({ ok: true });
});
