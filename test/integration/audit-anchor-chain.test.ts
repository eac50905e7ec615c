/**
 * The anchor job checks the log against the anchor it took last: events removed from the end
 * of a chain (which the chain alone cannot show) are caught by its next run, not only when an
 * operator runs `rekey audit verify --anchor` with an anchor kept somewhere.
 * Most runs check only what was appended since that anchor (verifySince); a row removed from the
 * middle of a chain before it is left to the daily full walk.
 * No workers here: the job is called by hand, so no scheduled run races the tampering.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LastAnchor, recordAnchor } from '../../src/audit-anchor.js';
import { headsAt, takeAnchor, verifyAudit, verifySince } from '../../src/db/audit-verify.js';
import { createLogger } from '../../src/log.js';
import { startHarness, type Harness } from '../support/harness.js';
import { runSql } from '../support/isolation.js';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ label: 'audit-anchor-chain', workers: false });
});
afterAll(() => h?.stop());

/** Runs `statements` as the table's owner with the append-only trigger off: what an attacker holding the owner role can do. */
const asOwner = (...statements: string[]) =>
  runSql(h.env.databaseUrl, ['ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update', ...statements, 'ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update']);

it('a run of the anchor job catches events removed since its last anchor, and names that anchor', async () => {
  const lines: string[] = [];
  const log = createLogger('warn', { write: (line: string) => void lines.push(line) });
  const deps = { db: h.runtime.db, audit: h.runtime.audit, log, actor: 'test', webhook: undefined, notifier: h.runtime.notifier, last: new LastAnchor(h.runtime.redis, h.env.prefix) };
  for (let i = 0; i < 3; i++) await h.runtime.audit.append(h.runtime.db, { actor: 'test', action: 'test.event', secret: 'tampered', data: { i } });
  const first = await recordAnchor(deps);
  const again = await recordAnchor(deps);
  const failures = () => lines.map((l) => JSON.parse(l) as { msg: string; seq?: string; problem?: string }).filter((l) => l.msg === 'audit log does not verify');
  expect(failures()).toEqual([]); // nothing changed: the last anchor still holds
  expect(again.seq).toBe(first.seq);

  const [tail] = await h.runtime.db.auditEvent.findMany({ where: { chain: 'tampered' }, orderBy: { seq: 'desc' }, take: 1 });
  await asOwner(`DELETE FROM audit_events WHERE seq = ${tail!.seq}`);
  await recordAnchor(deps);
  expect(failures()).toEqual([expect.objectContaining({ seq: again.seq, problem: expect.stringMatching(/^is the anchor, and the chains up to it are not what they were/) as unknown })]);
  // The alarm is raised once: the run after it checks against the anchor of the log as it is now.
  await recordAnchor(deps);
  expect(failures()).toHaveLength(1);
});

it('a kept anchor replaced by one without a signature (or by anything else) is an alarm, not a check skipped', async () => {
  const lines: string[] = [];
  const log = createLogger('warn', { write: (line: string) => void lines.push(line) });
  const last = new LastAnchor(h.runtime.redis, h.env.prefix);
  const deps = { db: h.runtime.db, audit: h.runtime.audit, log, actor: 'test', webhook: undefined, notifier: h.runtime.notifier, last };
  const failures = () => lines.map((l) => JSON.parse(l) as { msg: string; seq?: string; problem?: string }).filter((l) => l.msg === 'audit log does not verify');
  for (let i = 0; i < 3; i++) await h.runtime.audit.append(h.runtime.db, { actor: 'test', action: 'test.event', secret: 'rewound', data: { i } });
  await recordAnchor(deps);
  expect(failures()).toEqual([]);

  // Someone with the database and Redis but not REKEY_AUDIT_KEY removes the chain's last event and
  // keeps, in the anchor's place, one of the log as it is now: the digest anyone can compute, no signature.
  const [tail] = await h.runtime.db.auditEvent.findMany({ where: { chain: 'rewound' }, orderBy: { seq: 'desc' }, take: 1 });
  await asOwner(`DELETE FROM audit_events WHERE seq = ${tail!.seq}`);
  const now = await verifyAudit(h.runtime.db, h.runtime.audit);
  expect(now.ok).toBe(true); // the chain alone cannot show it
  const unsigned = now.ok ? now.anchor.split(':').slice(0, 2).join(':') : '';
  await last.set(unsigned);
  await recordAnchor(deps);
  expect(failures()).toEqual([expect.objectContaining({ seq: unsigned.split(':')[0], problem: expect.stringMatching(/^is the anchor, and it carries no signature/) as unknown })]);

  await last.set('not an anchor');
  await recordAnchor(deps);
  expect(failures()).toHaveLength(2);
  expect(failures()[1]).toEqual(expect.objectContaining({ seq: '0', problem: expect.stringMatching(/^is the anchor, and it is malformed/) as unknown }));
});

it('a run that finds no anchor kept says so: a new installation once, or someone who removed it to skip the check', async () => {
  const lines: string[] = [];
  const log = createLogger('warn', { write: (line: string) => void lines.push(line) });
  const last = new LastAnchor(h.runtime.redis, h.env.prefix);
  const deps = { db: h.runtime.db, audit: h.runtime.audit, log, actor: 'test', webhook: undefined, notifier: h.runtime.notifier, last };
  const missing = () => lines.filter((l) => (JSON.parse(l) as { msg: string }).msg.startsWith('no audit anchor kept')).length;
  await recordAnchor(deps);
  expect(missing()).toBe(0); // the tests before kept one
  await h.runtime.redis.del(`${h.env.prefix}:audit:anchor`);
  await recordAnchor(deps);
  expect(missing()).toBe(1);
  await recordAnchor(deps);
  expect(missing()).toBe(1);
});

describe('runs that check only what was appended since the last anchor (walk: since)', () => {
  const append = async (chain: string, count: number) => {
    for (let i = 0; i < count; i++) await h.runtime.audit.append(h.runtime.db, { actor: 'test', action: 'test.event', secret: chain, data: { i } });
  };
  const deleteRow = (seq: bigint) => asOwner(`DELETE FROM audit_events WHERE seq = ${seq}`);
  const rowsOf = (chain: string) => h.runtime.db.auditEvent.findMany({ where: { chain }, orderBy: { seq: 'asc' } });

  it('reads only the rows after the anchor, from the heads it pins, found per chain as a DISTINCT ON over the table finds them', async () => {
    await append('since-a', 3);
    const { anchor } = await takeAnchor(h.runtime.db, h.runtime.audit, 'test');
    await append('since-a', 2);
    await append('since-b', 4);
    const checked = await verifySince(h.runtime.db, h.runtime.audit, anchor);
    expect(checked).toMatchObject({ ok: true, events: 6 });
    // headsAt at every seq of the log agrees with the plain query it replaced.
    const seqs = (await h.runtime.db.auditEvent.findMany({ select: { seq: true }, orderBy: { seq: 'asc' } })).map((r) => r.seq);
    for (const seq of [0n, ...seqs]) {
      const plain = await h.runtime.db.$queryRaw<Array<{ chain: string; hash: string }>>`
        SELECT DISTINCT ON (chain) chain, hash FROM audit_events WHERE seq <= ${seq} ORDER BY chain, seq DESC`;
      expect(await headsAt(h.runtime.db, seq)).toEqual(new Map(plain.map((r) => [r.chain, r.hash])));
    }
  });

  it('leaves a row removed from the middle of a chain before the anchor to the daily full walk, which the job makes when due', async () => {
    const lines: string[] = [];
    const log = createLogger('warn', { write: (line: string) => void lines.push(line) });
    const last = new LastAnchor(h.runtime.redis, h.env.prefix);
    const deps = { db: h.runtime.db, audit: h.runtime.audit, log, actor: 'test', webhook: undefined, notifier: h.runtime.notifier, last };
    const failures = () => lines.map((l) => JSON.parse(l) as { msg: string; seq?: string }).filter((l) => l.msg === 'audit log does not verify');
    await append('since-d', 3);
    // Full: checks against what the tests before left, then anchors the log as it is. (Before the
    // test below, whose edits would break every full walk after it.)
    await recordAnchor(deps);
    lines.length = 0;
    const [, middle] = await rowsOf('since-d');
    await deleteRow(middle!.seq);
    await recordAnchor({ ...deps, walk: 'since' });
    expect(failures()).toEqual([]); // not read: it is before the anchor, and not a head there
    await recordAnchor({ ...deps, walk: 'full' });
    expect(failures()).toEqual([expect.objectContaining({ seq: String(middle!.seq + 1n) })]);
  });

  it('catches a chain cut back to before the anchor, an edited row after it, and an anchor not signed under the key', async () => {
    await append('since-c', 3);
    const { anchor } = await takeAnchor(h.runtime.db, h.runtime.audit, 'test');
    await append('since-c', 2);
    const [, , third] = await rowsOf('since-c');
    await deleteRow(third!.seq); // the chain's head at the anchor
    expect(await verifySince(h.runtime.db, h.runtime.audit, anchor)).toMatchObject({ ok: false, seq: BigInt(anchor.split(':')[0]!), problem: expect.stringMatching(/^is the anchor, and the chains up to it are not what they were/) as unknown });

    const { anchor: later } = await takeAnchor(h.runtime.db, h.runtime.audit, 'test');
    await append('since-c', 1);
    const [edited] = (await rowsOf('since-c')).slice(-1);
    await asOwner(`UPDATE audit_events SET actor = 'someone-else' WHERE seq = ${edited!.seq}`);
    expect(await verifySince(h.runtime.db, h.runtime.audit, later)).toMatchObject({ ok: false, seq: edited!.seq, problem: expect.stringMatching(/does not match its hash/) as unknown });

    const [seq, digest] = later.split(':');
    expect(await verifySince(h.runtime.db, h.runtime.audit, `${seq}:${digest}`)).toMatchObject({ ok: false, problem: expect.stringMatching(/carries no signature/) as unknown });
    expect(await verifySince(h.runtime.db, h.runtime.audit, `${seq}:${digest}:${'0'.repeat(64)}`)).toMatchObject({ ok: false, problem: expect.stringMatching(/signature does not verify/) as unknown });
    expect(await verifySince(h.runtime.db, h.runtime.audit, 'not an anchor')).toMatchObject({ ok: false, seq: 0n, problem: expect.stringMatching(/malformed/) as unknown });
  });
});

it('a walk of the anchor job says how far it has come while it runs (a day\'s full walk of a large log takes many minutes)', async () => {
  const lines: string[] = [];
  const log = createLogger('info', { write: (line: string) => void lines.push(line) });
  const deps = { db: h.runtime.db, audit: h.runtime.audit, log, actor: 'test', webhook: undefined, notifier: h.runtime.notifier, last: new LastAnchor(h.runtime.redis, h.env.prefix), progressEveryMs: 0 };
  // An anchor of the log as it is (the tests above left rows removed before theirs), then more than one batch of rows (1,000) after it.
  await recordAnchor(deps);
  await h.runtime.db.$transaction((tx) => h.runtime.audit.appendAll(tx, Array.from({ length: 1500 }, (_, i) => ({ actor: 'test', action: 'test.bulk', secret: 'bulk', data: { i } }))));
  const { seq } = await recordAnchor({ ...deps, walk: 'since' });
  const walking = lines.map((l) => JSON.parse(l) as { msg: string; walk?: string }).filter((l) => l.msg.startsWith('audit anchor: checking the log, '));
  expect(walking.length, lines.join('\n')).toBeGreaterThanOrEqual(1);
  expect(walking[0]).toMatchObject({ walk: 'since', msg: expect.stringMatching(new RegExp(`^audit anchor: checking the log, 1,000 events checked, up to row \\d+ of ${seq} \\(\\d+%\\)`)) as unknown });
});
