/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument -- answers are JSON, checked field by field */
/**
 * Audit verifications in the background (POST /api/v1/audit/verifications): answered 202 at
 * once, followed by GET from the record in Redis to the result the synchronous verify gives;
 * one at a time; a record altered in Redis is never shown as passed; a walk whose server died
 * is found abandoned and its lock taken over; closing the server stops its walk, and another
 * server takes a stopped or abandoned walk up again where it stopped.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { MAX_RESUMES, STALE_MS, Verifications, verificationsOf, type VerificationOptions } from '../../src/api/verifications.js';
import { call, tokenFor, type Answer } from '../support/api.js';
import { startHarness, type Harness } from '../support/harness.js';
import { runSql } from '../support/isolation.js';
import { memoryConfig } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

let h: Harness;
let admin: string;
let rotator: string;
/** While set, walks of the API's Verifications wait for it before they begin. */
let held: Promise<void> | undefined;

const post = (path: string, token: string, body: unknown = {}): Promise<Answer> => call(h, `/api/v1${path}`, { method: 'POST', token, body });
const get = (path: string, token = admin): Promise<Answer> => call(h, `/api/v1${path}`, { token });
const listed = async () => (await get('/audit/verifications')).json.items as Array<{ id: string; state: string }>;

/** Holds the next walks before they begin, until the returned function is called. */
function hold(): () => void {
  let open!: () => void;
  held = new Promise<void>((resolve) => (open = resolve));
  return () => {
    open();
    held = undefined;
  };
}

async function finished(id: string): Promise<Answer> {
  let answer!: Answer;
  await until(async () => (answer = await get(`/audit/verifications/${id}`)).json.state !== 'running', 20_000, `verification ${id} finished`);
  return answer;
}

beforeAll(async () => {
  // The API's instance, made before the admin API's, with the gate the tests hold; it does not look
  // for walks to take up again on its own (the tests ask other instances to, when they mean it).
  const theApis = (_app: unknown, runtime: Harness['runtime']) => void verificationsOf(runtime, { gate: () => held ?? Promise.resolve(), resumeEveryMs: 3_600_000 });
  h = await startHarness({ label: 'api-verifications', routes: [theApis, adminApiRoutes] });
  await h.apply(memoryConfig('api-verifications', { 'pay-api': 'grace: 1h' }));
  for (let i = 0; i < 3; i++) expect((await h.rotate('pay-api')).status).toBe('succeeded');
  admin = await tokenFor(h, 'admin', ['admin']);
  rotator = await tokenFor(h, 'rotator', ['rotate:pay-*']);
});
afterAll(() => h?.stop());

it('answers 202 at once and is followed to the result the synchronous verify gives; `since` too; listed newest first; admin only', async () => {
  expect((await post('/audit/verifications', rotator)).status).toBe(403);
  expect((await get('/audit/verifications', rotator)).status).toBe(403);
  const release = hold();
  const started = await post('/audit/verifications', admin);
  expect(started.status).toBe(202);
  expect(started.json).toMatchObject({ state: 'running', kind: 'whole', anchor: null, startedBy: 'token:admin', finishedAt: null, result: null });
  expect((await get(`/audit/verifications/${started.json.id}`)).json.state).toBe('running');
  release();
  const done = (await finished(started.json.id)).json;
  expect(done).toMatchObject({ state: 'passed', result: { ok: true, unkeyed: 0 }, error: null });
  expect(done.result.events).toBeGreaterThan(10);
  expect(Date.parse(done.finishedAt)).toBeGreaterThanOrEqual(Date.parse(done.startedAt));
  // The anchor it answered is one the synchronous verify accepts, as its own.
  const anchor: string = done.result.anchor;
  expect((await post('/audit/verify', admin, { anchor })).json.ok).toBe(true);

  const since = (await finished((await post('/audit/verifications', admin, { since: anchor })).json.id)).json;
  expect(since).toMatchObject({ state: 'passed', kind: 'since', anchor, result: { ok: true, since: anchor.split(':')[0] } });
  expect(since.result.events).toBeLessThan(done.result.events);
  // A forged anchor: the walk fails, naming it, as the synchronous one does; the anchor given, not the log, failed: no alarm.
  const notify = vi.spyOn(h.runtime.notifier, 'notify');
  const forged = `${anchor.slice(0, -64)}${'0'.repeat(64)}`;
  const refused = (await finished((await post('/audit/verifications', admin, { since: forged })).json.id)).json;
  expect(refused).toMatchObject({ state: 'failed', result: { ok: false, events: 0, problem: expect.stringMatching(/signature does not verify/) } });
  expect(notify.mock.calls.filter(([n]) => n.type === 'audit.verify-failed')).toEqual([]);
  notify.mockRestore();

  expect((await listed()).slice(0, 3).map((v) => v.id)).toEqual([refused.id, since.id, done.id]);
  expect((await post('/audit/verifications', admin, { anchor: 'nonsense' })).json.code).toBe('REKEY_API_INVALID_REQUEST');
  expect((await get('/audit/verifications/9b2f6a1e-1c1d-4e55-9d7a-1f0e2d3c4b5a')).json.code).toBe('REKEY_API_NOT_FOUND');
  const audited = await h.runtime.db.auditEvent.findMany({ where: { action: 'api.startAuditVerification' } });
  expect(audited.map((e) => e.actor)).toEqual(['token:admin', 'token:admin', 'token:admin']);
});

it('keeps how far the walk came and its pace: every row, at the seq its anchor names', async () => {
  const walks = new Verifications(h.runtime, { batch: 1 });
  const { id } = await walks.start({}, 'test');
  await until(async () => (await walks.get(id))?.state !== 'running', 20_000, 'walk done');
  const done = (await walks.get(id))!;
  expect(done.state).toBe('passed');
  const anchorSeq = (done.result as { anchor: string }).anchor.split(':')[0];
  expect(done.progress).toMatchObject({ events: done.result!.events, seq: anchorSeq, from: '0', upper: anchorSeq, share: 1 });
  expect(done.progress!.perSecond).toBeGreaterThan(0);
});

it('one at a time: another is refused 409 naming the one that runs; once it ended the next starts', async () => {
  const release = hold();
  const first = await post('/audit/verifications', admin);
  expect(first.status).toBe(202);
  const second = await post('/audit/verifications', admin, { since: 'x' });
  expect(second.json.code).toBe('REKEY_API_INVALID_REQUEST'); // the request is checked first
  const refused = await post('/audit/verifications', admin);
  expect(refused.status).toBe(409);
  expect(refused.json).toMatchObject({ code: 'REKEY_API_CONFLICT', detail: expect.stringContaining(first.json.id) });
  release();
  expect((await finished(first.json.id)).json.state).toBe('passed');
  const next = await post('/audit/verifications', admin);
  expect(next.status).toBe(202);
  expect((await finished(next.json.id)).json.state).toBe('passed');
});

it('a record altered in Redis, or moved under another id, is answered tampered and nothing of it is shown; one of another release, unreadable', async () => {
  const release = hold();
  const { id } = (await post('/audit/verifications', admin)).json;
  release();
  const done = (await finished(id)).json;
  const key = `${h.env.prefix}:audit-verification:${id}`;
  const stored = JSON.parse((await h.runtime.redis.get(key))!) as { body: string; seal: string };
  const tamperedAnswer = { id, state: 'tampered', kind: null, anchor: null, startedBy: null, result: null };

  // Its count rewritten, the seal left as it was.
  await h.runtime.redis.set(key, JSON.stringify({ ...stored, body: stored.body.replace(`"events":${done.result.events}`, `"events":${done.result.events + 1}`) }));
  expect((await get(`/audit/verifications/${id}`)).json).toMatchObject(tamperedAnswer);
  // An unsealed record.
  await h.runtime.redis.set(key, stored.body);
  expect((await get(`/audit/verifications/${id}`)).json).toMatchObject(tamperedAnswer);
  // A genuine record of another verification, copied under this id.
  const other = (await listed()).find((v) => v.id !== id && v.state === 'passed')!;
  await h.runtime.redis.set(key, (await h.runtime.redis.get(`${h.env.prefix}:audit-verification:${other.id}`))!);
  expect((await get(`/audit/verifications/${id}`)).json).toMatchObject(tamperedAnswer);
  expect((await listed()).find((v) => v.id === id)).toMatchObject(tamperedAnswer);
  // Sealed under the audit key in a shape this release does not read (another release's): unreadable, not tampered.
  const changed = stored.body.replace('"state":"passed"', '"state":"paused"');
  await h.runtime.redis.set(key, JSON.stringify({ body: changed, seal: h.runtime.audit.sealOf(changed) }));
  expect((await get(`/audit/verifications/${id}`)).json).toMatchObject({ ...tamperedAnswer, state: 'unreadable' });
  // Put back, it reads as it was.
  await h.runtime.redis.set(key, JSON.stringify(stored));
  expect((await get(`/audit/verifications/${id}`)).json).toEqual(done);
});

it('a walk whose server stopped writing is answered abandoned, and the next request takes its lock over', async () => {
  const release = hold();
  const { id } = (await post('/audit/verifications', admin)).json;
  // Seen by a replica whose clock is past the record's staleness: as when its server died.
  const later = new Verifications(h.runtime, { clock: () => Date.now() + STALE_MS + 1000 });
  expect((await later.get(id))?.state).toBe('abandoned');
  const taken = await later.start({}, 'test');
  expect(taken.state).toBe('running');
  release();
  await until(async () => (await later.get(taken.id))?.state === 'passed', 20_000, 'the new walk passed');
  // The old walk, alive after all, no longer holds the lock: it stops and writes nothing more, so it
  // releases nothing of the new one's (which released its own with its record) and never reads passed.
  await until(() => Promise.resolve(h.logs.some((line) => line.includes('another walk holds the lock') && line.includes(id))), 20_000, 'the old walk stopped');
  expect((await later.get(id))?.state).toBe('abandoned');
  expect(await h.runtime.redis.get(`${h.env.prefix}:audit-verification:running`)).toBeNull();
});

/** Another server's Verifications: rows read `batch` at a time, a checkpoint after every batch, stopped (closed) after the batch that reaches `stopAt`. */
function server(options: VerificationOptions & { stopAt?: bigint } = {}): { walks: Verifications; seen: bigint[] } {
  const seen: bigint[] = [];
  const walks: Verifications = new Verifications(h.runtime, {
    batch: 5,
    checkpointEveryMs: 0,
    ...options,
    onProgress: ({ seq }) => {
      seen.push(seq);
      if (options.stopAt !== undefined && seq >= options.stopAt) void walks.close();
    },
  });
  return { walks, seen };
}

const rowsUpTo = async (anchor: string) => h.runtime.db.auditEvent.count({ where: { seq: { lte: BigInt(anchor.split(':')[0]!) } } });

it('a walk its server stopped is taken up by another where it stopped, under the same id: every row checked once, the same answer as a whole walk', async () => {
  const rows = await h.runtime.db.auditEvent.findMany({ select: { seq: true }, orderBy: { seq: 'asc' } });
  const stopAt = rows[Math.floor(rows.length / 2)]!.seq;
  const first = server({ stopAt });
  const { id } = await first.walks.start({}, 'test');
  await until(async () => (await first.walks.get(id))?.state === 'stopped', 20_000, 'the walk stopped');
  const stopped = (await first.walks.get(id))!;
  // Its checkpoint is the batch it was told to stop at (it stopped before telling the next one).
  const after = first.seen.at(-1)!;
  expect(after).toBeGreaterThanOrEqual(stopAt);
  expect(stopped).toMatchObject({ state: 'stopped', result: null, resumed: [], progress: { seq: String(after) } });
  expect(stopped).not.toHaveProperty('checkpoint');

  const release = hold();
  const second = server({ gate: () => held ?? Promise.resolve() });
  expect(await second.walks.resume()).toBe(id);
  // Nobody else takes it up while it runs, and a new one is refused meanwhile.
  expect(await server().walks.resume()).toBeUndefined();
  expect((await post('/audit/verifications', admin)).json).toMatchObject({ code: 'REKEY_API_CONFLICT', detail: expect.stringContaining(id) });
  release();
  await until(async () => (await second.walks.get(id))?.state !== 'running', 20_000, 'the walk taken up ended');
  const done = (await second.walks.get(id))!;
  expect(done).toMatchObject({ id, state: 'passed', kind: 'whole', startedBy: 'test', resumed: [{ at: expect.any(String), after: String(after) }] });
  // The rows up to its checkpoint were not read again; every row up to its anchor was checked once.
  expect(second.seen[0]).toBeGreaterThan(after);
  const anchor = (done.result as { anchor: string }).anchor;
  expect(done.result!.events).toBe(await rowsUpTo(anchor));
  expect(done.progress).toMatchObject({ events: done.result!.events, share: 1 });
  expect((await post('/audit/verify', admin, { anchor })).json.ok).toBe(true);
  // A finished one is not taken up again.
  expect(await server().walks.resume()).toBeUndefined();
});

it('a `since` walk is taken up where it stopped too', async () => {
  const since = (await post('/audit/verify', admin)).json.anchor as string;
  for (let i = 0; i < 2; i++) expect((await h.rotate('pay-api')).status).toBe('succeeded');
  const first = server({ batch: 2, stopAt: BigInt(since.split(':')[0]!) + 1n });
  const { id } = await first.walks.start({ since }, 'test');
  await until(async () => (await first.walks.get(id))?.state === 'stopped', 20_000, 'the walk stopped');
  const second = server({ batch: 2 });
  expect(await second.walks.resume()).toBe(id);
  await until(async () => (await second.walks.get(id))?.state !== 'running', 20_000, 'the walk taken up ended');
  const done = (await second.walks.get(id))!;
  expect(done).toMatchObject({ state: 'passed', kind: 'since', anchor: since, result: { ok: true, since: since.split(':')[0] }, resumed: [{ after: String(first.seen.at(-1)) }] });
  const anchor = (done.result as { anchor: string }).anchor;
  expect(done.result!.events).toBe((await rowsUpTo(anchor)) - (await rowsUpTo(since)));
  expect(second.seen[0]).toBeGreaterThan(first.seen.at(-1)!);
});

it('a whole walk given an anchor, stopped below it, still checks the chains it pins when taken up', async () => {
  const rows = await h.runtime.db.auditEvent.findMany({ select: { seq: true }, orderBy: { seq: 'asc' } });
  const at = rows[Math.floor(rows.length / 2)]!.seq;
  // Signed under the audit key, pinning heads the log never had: as an anchor taken before rows up to it were rewritten.
  const body = `${at}:${'1'.repeat(64)}`;
  const anchor = `${body}:${h.runtime.audit.anchorMac(body)}`;
  const first = server({ stopAt: 1n });
  const { id } = await first.walks.start({ anchor }, 'test');
  await until(async () => (await first.walks.get(id))?.state === 'stopped', 20_000, 'the walk stopped');
  expect(first.seen.at(-1)).toBeLessThan(at);
  const second = server();
  expect(await second.walks.resume()).toBe(id);
  await until(async () => (await second.walks.get(id))?.state !== 'running', 20_000, 'the walk taken up ended');
  expect(await second.walks.get(id)).toMatchObject({ state: 'failed', result: { ok: false, seq: String(at), problem: expect.stringMatching(/is the anchor, and the chains up to it are not what they were/) } });
});

it('rows below where a walk stopped, rewritten before it is taken up: it fails there and raises the alarm', async () => {
  const first = server({ stopAt: 1n });
  const { id } = await first.walks.start({}, 'test');
  await until(async () => (await first.walks.get(id))?.state === 'stopped', 20_000, 'the walk stopped');
  const after = first.seen.at(-1)!;
  // The head of a chain at the checkpoint, its hash rewritten (as a deleted or edited last row would leave it).
  const head = (await h.runtime.db.auditEvent.findMany({ where: { seq: { lte: after } }, orderBy: { seq: 'desc' }, take: 1 }))[0]!;
  const asOwner = (statement: string) => runSql(h.env.databaseUrl, ['ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update', statement, 'ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update']);
  const notify = vi.spyOn(h.runtime.notifier, 'notify');
  await asOwner(`UPDATE audit_events SET hash = '${'0'.repeat(64)}' WHERE seq = ${head.seq}`);
  try {
    const second = server();
    expect(await second.walks.resume()).toBe(id);
    await until(async () => (await second.walks.get(id))?.state !== 'running', 20_000, 'the walk taken up ended');
    expect(await second.walks.get(id)).toMatchObject({ state: 'failed', result: { ok: false, seq: String(after), problem: expect.stringMatching(/where this walk stopped, and the chains up to it are not what they were/) } });
    expect(notify.mock.calls.map(([n]) => n.id)).toContain(`audit.verify-failed.${after}`);
    expect(second.seen).toEqual([]);
  } finally {
    notify.mockRestore();
    await asOwner(`UPDATE audit_events SET hash = '${head.hash}' WHERE seq = ${head.seq}`);
  }
});

it('an abandoned walk is taken up from its checkpoint; the old walk, alive after all, writes nothing more; at most MAX_RESUMES times', async () => {
  const release = hold();
  const first = server({ gate: () => held ?? Promise.resolve() });
  const { id } = await first.walks.start({}, 'test');
  // Seen by a replica whose clock is past the record's staleness: as when its server died before its first batch.
  const later = server({ clock: () => Date.now() + STALE_MS + 1000 });
  expect((await later.walks.get(id))?.state).toBe('abandoned');
  expect(await later.walks.resume()).toBe(id);
  release();
  await until(async () => (await later.walks.get(id))?.state === 'passed', 20_000, 'the walk taken up passed');
  expect((await later.walks.get(id))!.resumed).toEqual([{ at: expect.any(String), after: null }]);
  await until(() => Promise.resolve(h.logs.some((line) => line.includes('another walk holds the lock') && line.includes(id))), 20_000, 'the old walk stopped');
  expect((await later.walks.get(id))?.state).toBe('passed');

  // Stopped again and again: taken up MAX_RESUMES times, then left stopped.
  const again = server({ stopAt: 1n });
  const next = (await again.walks.start({}, 'test')).id;
  for (let i = 1; i <= MAX_RESUMES; i++) {
    await until(async () => (await again.walks.get(next))?.state === 'stopped', 20_000, 'the walk stopped');
    expect(await server({ stopAt: 1n }).walks.resume()).toBe(next);
  }
  await until(async () => (await again.walks.get(next))?.state === 'stopped', 20_000, 'the walk stopped');
  expect(await server().walks.resume()).toBeUndefined();
  expect((await again.walks.get(next))!.resumed).toHaveLength(MAX_RESUMES);
});

it('every server looks for a walk to take up again on its own (resumeEvery)', async () => {
  const first = server({ stopAt: 1n });
  const { id } = await first.walks.start({}, 'test');
  await until(async () => (await first.walks.get(id))?.state === 'stopped', 20_000, 'the walk stopped');
  const other = server({ resumeEveryMs: 20 });
  other.walks.resumeEvery();
  try {
    await until(async () => (await other.walks.get(id))?.state === 'passed', 20_000, 'taken up and passed');
  } finally {
    await other.walks.close();
  }
});

it('closing the server stops its walk between two batches', async () => {
  const walks = new Verifications(h.runtime, { batch: 1 });
  const { id } = await walks.start({}, 'test');
  await walks.close();
  expect(await walks.get(id)).toMatchObject({ state: 'stopped', result: null, error: null });
  expect((await walks.get(id))!.finishedAt).not.toBeNull();
  // Its lock is released: the next starts at once.
  const next = await post('/audit/verifications', admin);
  expect(next.status).toBe(202);
  await finished(next.json.id);
});

it('a log found tampered with raises audit.verify-failed, from the background walk and the synchronous one alike (one notice per row)', async () => {
  const notify = vi.spyOn(h.runtime.notifier, 'notify');
  const row = await h.runtime.db.auditEvent.findFirstOrThrow({ where: { chain: 'pay-api' }, orderBy: { seq: 'asc' }, skip: 2 });
  const asOwner = (statement: string) => runSql(h.env.databaseUrl, ['ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update', statement, 'ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update']);
  await asOwner(`UPDATE audit_events SET actor = 'mallory' WHERE seq = ${row.seq}`);
  // (The harness's hourly anchor job could raise the same notice meanwhile: each walk must add one.)
  const raised = () => notify.mock.calls.map(([n]) => n).filter((n) => n.type === 'audit.verify-failed');
  try {
    const failed = (await finished((await post('/audit/verifications', admin)).json.id)).json;
    expect(failed).toMatchObject({ state: 'failed', result: { ok: false, seq: String(row.seq), problem: expect.stringMatching(/does not match its hash/) } });
    const byBackground = raised().length;
    expect(byBackground).toBeGreaterThanOrEqual(1);
    expect((await post('/audit/verify', admin)).json).toMatchObject({ ok: false, seq: String(row.seq) });
    expect(raised().length).toBeGreaterThan(byBackground);
    for (const n of raised()) expect([n.id, n.data]).toEqual([`audit.verify-failed.${row.seq}`, expect.objectContaining({ seq: String(row.seq) })]);
    // A notice that cannot be written (PostgreSQL away a moment) is logged; the answer still says what the walk found.
    notify.mockRejectedValueOnce(new Error('outbox unavailable'));
    expect((await post('/audit/verify', admin)).json).toMatchObject({ ok: false, seq: String(row.seq) });
    expect(h.logs.filter((line) => line.includes('audit.verify-failed could not be raised') && line.includes(`"seq":"${row.seq}"`))).toHaveLength(1);
  } finally {
    notify.mockRestore();
    await asOwner(`UPDATE audit_events SET actor = '${row.actor}' WHERE seq = ${row.seq}`);
  }
  expect((await post('/audit/verify', admin)).json.ok).toBe(true);
});
