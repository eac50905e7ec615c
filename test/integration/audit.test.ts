/**
 * Invariant 7: every state change writes an audit event; the log is hash-chained and
 * `rekey audit verify` detects tampering, naming the row; with an anchor kept from an
 * earlier verify, it also detects rows deleted from the end of a chain.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import pg from 'pg';
import { GENESIS, takeOf } from '../../src/db/audit.js';
import { verifyAudit } from '../../src/db/audit-verify.js';
import { OutboxNotifier } from '../../src/db/outbox.js';
import { transaction } from '../../src/db/sql.js';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';
import { runSql } from '../support/isolation.js';
import { journal, memoryConfig } from '../support/memory-provider.js';

let h: Harness;
const JOURNAL = `audit-${randomUUID()}`;

beforeAll(async () => {
  h = await startHarness({ label: 'audit' });
  await h.apply(memoryConfig(JOURNAL, { audited: 'grace: 100ms, retry: { attempts: 1, backoff: 10ms }' }));
  for (let i = 0; i < 3; i++) await h.rotate('audited');
  journal(JOURNAL).fail('verify:edge', 1, false);
  await h.rotate('audited');
  for (let i = 0; i < 500 && (await h.runtime.db.version.count({ where: { state: { in: ['previous', 'retired'] } } })) > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
});
afterAll(() => h.stop());

/** The full lifecycle each end state must have been audited through (grace cuts aside). */
const LIFECYCLE: Record<string, string[]> = {
  current: ['issuing', 'issued', 'pending', 'current'],
  failed: ['issuing', 'issued', 'pending', 'failed'],
  revoked: ['issuing', 'issued', 'pending', 'current', 'previous', 'retired', 'revoked'],
};

it('records every version state change and every delivery change', async () => {
  const versions = await h.runtime.db.version.findMany({ include: { deliveries: true } });
  expect(versions.map((v) => v.state).sort()).toEqual(['current', 'failed', 'revoked', 'revoked']);
  for (const version of versions) {
    const events = await h.runtime.db.auditEvent.findMany({ where: { versionId: version.id }, orderBy: { seq: 'asc' } });
    const states = events.filter((e) => e.action.startsWith('version.')).map((e) => e.action.slice('version.'.length));
    // A grace cut is audited too, but only when the next rotation promoted inside the
    // 100 ms grace (timing): then it sits between previous and retired.
    const cut = states.indexOf('grace-cut');
    if (cut !== -1) expect(states.slice(cut - 1, cut + 2)).toEqual(['previous', 'grace-cut', 'retired']);
    expect(states.filter((state) => state !== 'grace-cut'), `v${version.number}`).toEqual(LIFECYCLE[version.state]);
    expect(version.deliveries.length).toBeGreaterThan(0);
    for (const delivery of version.deliveries) {
      const last = events.filter((e) => e.action.startsWith('delivery.') && (e.data as { target: string }).target === delivery.target).at(-1);
      expect(last?.action).toBe(`delivery.${delivery.status}`);
    }
  }
});

it('appends to one chain from many connections at once, and from a process of a release before audit_heads, keep the chain linear', async () => {
  const chain = 'audited';
  const append = (i: number) =>
    transaction(h.runtime.db, (tx) => h.runtime.audit.appendAll(tx, [{ actor: 'test', action: 'test.concurrent', secret: chain, data: { i } }, { actor: 'test', action: 'test.concurrent', secret: chain, data: { i, second: true } }]));
  // What a release before audit_heads did: the chain's advisory lock, then its head read from audit_events.
  const legacy = async (client: pg.Client, i: number) => {
    try {
      await client.query('BEGIN');
      await client.query(`SELECT pg_advisory_xact_lock_shared(hashtextextended('audit-append', 0))::text, pg_advisory_xact_lock(hashtextextended($1, 0))::text`, [`audit:${chain}`]);
      const { rows: [head] } = await client.query<{ prev: string | null; seq: string }>(
        `SELECT (SELECT hash FROM audit_events WHERE chain = $1 ORDER BY seq DESC LIMIT 1) AS prev, nextval(pg_get_serial_sequence('audit_events', 'seq')) AS seq`,
        [chain],
      );
      // Holds the chain a while, so the appends around it queue behind it.
      await client.query('SELECT pg_sleep(0.02)');
      const row = { seq: BigInt(head!.seq), chain, at: new Date(), actor: 'test', action: 'test.legacy', secret: chain, versionId: null, runId: null, data: { i }, prevHash: head!.prev ?? GENESIS, keyId: h.runtime.audit.keyId() };
      await client.query(
        `INSERT INTO audit_events (seq, chain, at, actor, action, secret, data, prev_hash, hash, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [row.seq.toString(), chain, row.at.toISOString().replace('Z', ''), row.actor, row.action, row.secret, JSON.stringify(row.data), row.prevHash, h.runtime.audit.hashOf(row), row.keyId],
      );
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
  };
  const clients = await Promise.all(Array.from({ length: 5 }, async () => {
    const client = new pg.Client({ connectionString: h.env.databaseUrl });
    await client.connect();
    return client;
  }));
  await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 8 === 0 ? legacy(clients[i / 8]!, i) : append(i))));
  expect(await h.runtime.db.auditEvent.count({ where: { action: { in: ['test.concurrent', 'test.legacy'] } } })).toBe(75);
  expect((await verifyAudit(h.runtime.db, h.runtime.audit)).ok).toBe(true);
  // The head row follows every append, the legacy ones included.
  const [last] = await h.runtime.db.auditEvent.findMany({ where: { chain }, orderBy: { seq: 'desc' }, take: 1 });
  expect((await h.runtime.db.auditHead.findUnique({ where: { chain } }))?.hash).toBe(last!.hash);
});

it("appends through a step's take (a chain found by its run or version) from many connections at once, beside appendAll's and a release's before audit_heads, keep the chain linear and its head at its last row", async () => {
  const chain = 'audited';
  const [version] = await h.runtime.db.version.findMany({ where: { secret: { name: chain } }, take: 1 });
  const [run] = await h.runtime.db.run.findMany({ where: { secret: { name: chain } }, take: 1 });
  // One to three events per take, through the version or the run, so the take's locks and numbers are all exercised.
  const stepAppend = (i: number) =>
    transaction(h.runtime.db, async (tx) => {
      const count = 1 + (i % 3);
      const [taken] = await tx.batch([takeOf(i % 2 ? { version: version!.id } : { run: run!.id }, count)]);
      expect(taken).toHaveLength(count);
      const events = Array.from({ length: count }, (_, k) => ({ actor: 'test', action: 'test.taken', secret: chain, data: { i, k } }));
      await h.runtime.audit.appendTaken(tx, events, taken!);
    });
  const append = (i: number) => transaction(h.runtime.db, (tx) => h.runtime.audit.appendAll(tx, [{ actor: 'test', action: 'test.taken', secret: chain, data: { i } }]));
  const before = await h.runtime.db.auditEvent.count({ where: { action: 'test.taken' } });
  await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 5 === 0 ? append(i) : stepAppend(i))));
  // 6 appendAll events, and 24 takes of 1, 2 or 3 (i % 3 over the others: 8 of each).
  expect((await h.runtime.db.auditEvent.count({ where: { action: 'test.taken' } })) - before).toBe(6 + 8 * (1 + 2 + 3));
  expect((await verifyAudit(h.runtime.db, h.runtime.audit)).ok).toBe(true);
  const [last] = await h.runtime.db.auditEvent.findMany({ where: { chain }, orderBy: { seq: 'desc' }, take: 1 });
  expect((await h.runtime.db.auditHead.findUnique({ where: { chain } }))?.hash).toBe(last!.hash);
});

it("moves the chain's head in rekey's own insert, without the trigger kept for earlier releases", async () => {
  const chain = `fresh-${randomUUID()}`;
  const events = [1, 2, 3].map((i) => ({ actor: 'test', action: 'test.head', secret: i === 2 ? 'audited' : chain, data: { i } }));
  const fired = await h.runtime.db.$transaction(async (tx) => {
    // Counts this transaction's plpgsql calls (pg_stat_xact_user_functions).
    await tx.$executeRawUnsafe(`SET LOCAL track_functions = 'pl'`);
    await h.runtime.audit.appendAll(tx, events);
    const [calls] = await tx.$queryRawUnsafe<Array<{ calls: bigint }>>(`SELECT coalesce(sum(calls), 0)::int8 AS calls FROM pg_stat_xact_user_functions WHERE funcname = 'audit_heads_follow'`);
    return Number(calls!.calls);
  });
  expect(fired).toBe(0);
  // A new chain (its head created by the take) and one with a head already: each at its last row.
  for (const name of [chain, 'audited']) {
    const [last] = await h.runtime.db.auditEvent.findMany({ where: { chain: name }, orderBy: { seq: 'desc' }, take: 1 });
    expect((await h.runtime.db.auditHead.findUnique({ where: { chain: name } }))?.hash, name).toBe(last!.hash);
  }
  expect((await verifyAudit(h.runtime.db, h.runtime.audit)).ok).toBe(true);
});

it('an anchor from an earlier verify catches rows deleted from the end of a chain, which the chain alone cannot', async () => {
  const env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix };
  const anchorOf = (stdout: string) => /^Anchor: (\d+:[0-9a-f]{64}:[0-9a-f]{64}) /m.exec(stdout)![1]!;
  const first = anchorOf((await rekey(['audit', 'verify'], env)).stdout);
  await h.rotate('audited');
  // Events appended after an anchor are fine.
  const later = await rekey(['audit', 'verify', '--anchor', first], env);
  expect(later.code).toBe(0);
  expect(later.stdout).toContain('anchor matches');
  const anchor = anchorOf(later.stdout);
  // --since checks only what came after the anchor, from the heads it pins, and prints a fresh one.
  const since = await rekey(['audit', 'verify', '--since', first], env);
  expect(since.code).toBe(0);
  expect(since.stdout).toMatch(new RegExp(`^Audit log intact since row ${first.split(':')[0]}: anchor matches, [1-9]\\d* events after it verified`, 'm'));
  expect(anchorOf(since.stdout).split(':')[0]).toBe(anchor.split(':')[0]);

  // Drop the secret's last three events: what is left is still a valid chain. The head row is
  // moved back too, as a careful attacker would (first, so no append in between follows the
  // dropped rows: a later append chaining onto a dropped row would give the deletion away).
  const last = (offset: number, column: 'seq' | 'hash') => `SELECT ${column} FROM audit_events WHERE chain = 'audited' ORDER BY seq DESC OFFSET ${offset} LIMIT 1`;
  await runSql(h.env.databaseUrl, [
    'BEGIN',
    // Appends wait on the head row from here on; the statements after see the last one before.
    `SELECT 1 FROM audit_heads WHERE chain = 'audited' FOR UPDATE`,
    `UPDATE audit_heads SET hash = (${last(3, 'hash')}) WHERE chain = 'audited'`,
    'ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update',
    `DELETE FROM audit_events WHERE chain = 'audited' AND seq > (${last(3, 'seq')})`,
    'ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update',
    'COMMIT',
  ]);
  expect((await rekey(['audit', 'verify'], env)).code).toBe(0);
  const caught = await rekey(['audit', 'verify', '--anchor', anchor], env);
  expect(caught.code).toBe(1);
  expect(caught.stdout).toContain(`row ${anchor.split(':')[0]} is the anchor, and the chains up to it are not what they were`);
  const caughtSince = await rekey(['audit', 'verify', '--since', anchor], env);
  expect(caughtSince.code).toBe(1);
  expect(caughtSince.stdout).toContain(`row ${anchor.split(':')[0]} is the anchor, and the chains up to it are not what they were`);
  const both = await rekey(['audit', 'verify', '--anchor', anchor, '--since', anchor], env);
  expect(both.code).toBe(2);
  expect(both.stderr).toContain('give one');
  const malformed = await rekey(['audit', 'verify', '--anchor', 'yesterday'], env);
  expect(malformed.code).toBe(2);
  expect(malformed.stderr).toContain('<seq>:<64 hex digits>');
});

it('verifies the chain, then names the row that was edited, then the row after one deleted', async () => {
  const env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix };
  const ok = await rekey(['audit', 'verify'], env);
  expect(ok.code).toBe(0);
  expect(ok.stdout).toMatch(/Audit log intact: \d+ events, hash chain verified/);
  // The operator's anchor refused (its signature forged), not the log: exit 1, and no alarm.
  const raised = vi.spyOn(OutboxNotifier.prototype, 'notify');
  const anchor = /^Anchor: (\S+)/m.exec(ok.stdout)![1]!;
  const forged = await rekey(['audit', 'verify', '--since', `${anchor.slice(0, -64)}${'0'.repeat(64)}`, '--json'], env);
  expect(forged.code).toBe(1);
  expect(JSON.parse(forged.stdout)).toMatchObject({ ok: false, anchorRefused: true });
  expect(raised).not.toHaveBeenCalled();

  // The secret's own chain: one hash chain per secret.
  const events = await h.runtime.db.auditEvent.findMany({ where: { chain: 'audited' }, orderBy: { seq: 'asc' }, select: { seq: true } });
  const edited = events[Math.floor(events.length / 2)]!.seq;
  const { actor } = await h.runtime.db.auditEvent.findUniqueOrThrow({ where: { seq: edited } });
  await runSql(h.env.databaseUrl, [
    'ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update',
    `UPDATE audit_events SET actor = 'mallory' WHERE seq = ${edited}`,
    'ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update',
  ]);
  const tampered = await rekey(['audit', 'verify'], env);
  expect(tampered.code).toBe(1);
  expect(tampered.stdout).toContain(`row ${edited} its content does not match its hash`);
  // The alarm the anchor job raises, raised by the operator's walk too (the same id: one notice).
  expect(raised.mock.calls.map(([n]) => [n.type, n.id])).toEqual([['audit.verify-failed', `audit.verify-failed.${edited}`]]);
  raised.mockRestore();

  // Put it back (the hash still matches the original), then delete the chain's next row instead.
  const index = events.findIndex((e) => e.seq === edited);
  const deleted = events[index + 1]!.seq;
  const following = events[index + 2]!.seq;
  await runSql(h.env.databaseUrl, [
    'ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update',
    `UPDATE audit_events SET actor = '${actor}' WHERE seq = ${edited}`,
    `DELETE FROM audit_events WHERE seq = ${deleted}`,
    'ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update',
  ]);
  const result = await verifyAudit(h.runtime.db, h.runtime.audit);
  expect(result.ok).toBe(false);
  if (!result.ok) {
    expect(result.seq).toBe(following);
    expect(result.problem).toMatch(/does not follow the row before it/);
  }
});

it('rows dropped from the end of a chain are given away by the next append, which follows the head row, not what is left', async () => {
  // A log of its own: the earlier tests left this one broken on purpose.
  const own = await startHarness({ label: 'audit-tail' });
  try {
    const append = (i: number) => transaction(own.runtime.db, (tx) => own.runtime.audit.append(tx, { actor: 'test', action: 'test.tail', secret: 'tail', data: { i } }));
    await append(1);
    await append(2);
    await runSql(own.env.databaseUrl, [
      'ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update',
      `DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events WHERE chain = 'tail')`,
      'ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update',
    ]);
    expect((await verifyAudit(own.runtime.db, own.runtime.audit)).ok).toBe(true);
    await append(3);
    const [appended] = await own.runtime.db.auditEvent.findMany({ where: { chain: 'tail' }, orderBy: { seq: 'desc' }, take: 1 });
    const result = await verifyAudit(own.runtime.db, own.runtime.audit);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.seq).toBe(appended!.seq);
      expect(result.problem).toMatch(/does not follow the row before it/);
    }
  } finally {
    await own.stop();
  }
});

it("a step's take through a row whose chain has no head row yet (its first event) creates the head, and the chain starts at GENESIS", async () => {
  const own = await startHarness({ label: 'audit-first' });
  try {
    const name = `first-${randomUUID()}`;
    const [secretId, versionId] = [randomUUID(), randomUUID()];
    await runSql(own.env.databaseUrl, [
      `INSERT INTO secrets (id, name, spec, spec_hash, updated_at) VALUES ('${secretId}', '${name}', '{}', 'x', now())`,
      `INSERT INTO versions (id, secret_id, number, state, updated_at) VALUES ('${versionId}', '${secretId}', 1, 'failed', now())`,
    ]);
    const events = ['test.first', 'test.second'].map((action) => ({ actor: 'test', action, secret: name, versionId }));
    const taken = await transaction(own.runtime.db, async (tx) => {
      const [answer] = await tx.batch([takeOf({ version: versionId }, 2)]);
      await own.runtime.audit.appendTaken(tx, events, answer!);
      return answer;
    });
    // The lock statement found the chain and locked it, but had no head row to read, so no row: appendTaken took the events' chain with TAKE.
    expect(taken).toEqual([]);
    const rows = await own.runtime.db.auditEvent.findMany({ where: { chain: name }, orderBy: { seq: 'asc' } });
    expect(rows.map((r) => r.action)).toEqual(['test.first', 'test.second']);
    expect(rows[0]!.prevHash).toBe(GENESIS);
    expect((await own.runtime.db.auditHead.findUnique({ where: { chain: name } }))?.hash).toBe(rows[1]!.hash);
    // A second take of the chain reads the head the first left.
    await transaction(own.runtime.db, async (tx) => {
      const [answer] = await tx.batch([takeOf({ version: versionId }, 1)]);
      expect(answer).toEqual([{ chain: name, prev: rows[1]!.hash, seq: expect.any(String) as string }]);
      await own.runtime.audit.appendTaken(tx, [{ actor: 'test', action: 'test.third', secret: name, versionId }], answer!);
    });
    expect((await verifyAudit(own.runtime.db, own.runtime.audit)).ok).toBe(true);
  } finally {
    await own.stop();
  }
});
