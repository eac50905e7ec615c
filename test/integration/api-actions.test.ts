/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- answers are JSON, checked field by field */
/**
 * Admin API actions (issue 16): rotate now, revoke a version, decommission, re-run a drift
 * check, verify the audit log. Each needs its scope on the secret, is an audit event naming the
 * token, and is answered again, without acting twice, for a retried Idempotency-Key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDEMPOTENCY_TTL_MS, IN_PROGRESS_MS, requestHash } from '../../src/api/idempotency.js';
import { adminApiRoutes } from '../../src/api/routes.js';
import { call, tokenFor, type Answer } from '../support/api.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

const JOURNAL = 'api-actions';
let h: Harness;
let rotator: string;
let revoker: string;
let reader: string;
let admin: string;
const answers: Answer[] = [];

/** Every answer is kept, to be searched for values at the end. */
async function post(path: string, token: string, options: { key?: string; body?: unknown } = {}): Promise<Answer> {
  const answer = await call(h, `/api/v1${path}`, { method: 'POST', token, ...(options.body !== undefined ? { body: options.body } : {}), ...(options.key ? { headers: { 'idempotency-key': options.key } } : {}) });
  answers.push(answer);
  return answer;
}

beforeAll(async () => {
  h = await startHarness({ label: 'api-actions', routes: [adminApiRoutes] });
  // The workers' own drift checks an hour apart: the drift-check tests find what they broke, not a target a background check already repaired (fresh-ci met it).
  const config = memoryConfig(JOURNAL, { 'pay-api': 'grace: 1h', 'pay-old': 'grace: 1h', other: 'grace: 1h' });
  const hourly = config.replace(`edge: { type: memory, journal: ${JOURNAL} }`, `edge: { type: memory, journal: ${JOURNAL}, drift: { interval: 1h } }`);
  expect(hourly).not.toBe(config);
  await h.apply(hourly);
  for (const name of ['pay-api', 'pay-old', 'pay-old', 'other']) expect((await h.rotate(name)).status).toBe('succeeded');
  rotator = await tokenFor(h, 'rotator', ['rotate:pay-*']);
  revoker = await tokenFor(h, 'revoker', ['revoke:pay-*']);
  reader = await tokenFor(h, 'reader', ['read']);
  admin = await tokenFor(h, 'admin', ['admin']);
});
afterAll(() => h?.stop());

const runsOf = (secret: string) => h.runtime.db.run.count({ where: { secret: { name: secret }, kind: 'rotation' } });
const apiEvents = (action: string) => h.runtime.db.auditEvent.findMany({ where: { action }, orderBy: { seq: 'asc' } });

describe('rotate now', () => {
  it('queues a rotation audited as the token, which a worker completes', async () => {
    const answer = await post('/secrets/pay-api/rotate', rotator);
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ status: 'queued' });
    expect((await h.waitForRun(answer.json.runId)).status).toBe('succeeded');
    const started = await h.runtime.db.auditEvent.findFirstOrThrow({ where: { runId: answer.json.runId, action: 'run.started' } });
    expect(started.actor).toBe('token:rotator');
    expect((await apiEvents('api.rotateSecret')).map((e) => [e.actor, e.secret])).toEqual([['token:rotator', 'pay-api']]);
  });

  it('a retried Idempotency-Key makes one run and gets the first answer again; the same key for another request is refused', async () => {
    const before = await runsOf('pay-api');
    const first = await post('/secrets/pay-api/rotate', rotator, { key: 'deploy-42' });
    const again = await post('/secrets/pay-api/rotate', rotator, { key: 'deploy-42' });
    expect(again.status).toBe(202);
    expect(again.json).toEqual(first.json);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await runsOf('pay-api')).toBe(before + 1);
    expect((await post('/secrets/pay-old/rotate', rotator, { key: 'deploy-42' })).json.code).toBe('REKEY_API_IDEMPOTENCY_MISMATCH');
    await h.waitForRun(first.json.runId);
  });

  it('a retry that takes over an abandoned claim (its server died after the run was made, before the answer) joins that run: one rotation (invariant 6)', async () => {
    const before = await runsOf('pay-api');
    const first = await post('/secrets/pay-api/rotate', rotator, { key: 'deploy-43' });
    expect(first.status).toBe(202);
    await h.waitForRun(first.json.runId);
    // As a server that died before settling leaves it: the claim without an answer, past IN_PROGRESS_MS.
    const abandoned = new Date(Date.now() - IN_PROGRESS_MS - 60_000);
    expect(await h.runtime.db.$executeRaw`UPDATE api_idempotency SET status = NULL, response = NULL, created_at = ${abandoned} WHERE key = 'deploy-43'`).toBe(1);
    const again = await post('/secrets/pay-api/rotate', rotator, { key: 'deploy-43' });
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBeNull(); // it acted, and the engine's key made it join
    expect(again.json).toEqual({ runId: first.json.runId, status: 'joined' });
    expect(await runsOf('pay-api')).toBe(before + 1);
  });

  it("a key used again for another secret once its answer expired rotates that secret, not answered with the first secret's run", async () => {
    const first = await post('/secrets/pay-api/rotate', admin, { key: 'nightly-7' });
    expect(first.status).toBe(202);
    await h.waitForRun(first.json.runId);
    await h.runtime.db.apiIdempotency.updateMany({ where: { key: 'nightly-7' }, data: { createdAt: new Date(Date.now() - IDEMPOTENCY_TTL_MS - 60_000) } });
    await h.runtime.housekeeping.runNow('idempotency-purge');
    const before = await runsOf('other');
    const other = await post('/secrets/other/rotate', admin, { key: 'nightly-7' });
    expect({ status: other.status, sameRun: other.json.runId === first.json.runId, answer: other.json.status }).toEqual({ status: 202, sameRun: false, answer: 'queued' });
    expect(await runsOf('other')).toBe(before + 1);
    await h.waitForRun(other.json.runId);
  });

  it("the server's housekeeping purges answers past their TTL and keeps the others", async () => {
    const key = (k: string) => ({ tokenId_key: { tokenId: '00000000-0000-4000-8000-000000000001', key: k } });
    const old = new Date(Date.now() - IDEMPOTENCY_TTL_MS - 60_000);
    await h.runtime.db.apiIdempotency.createMany({ data: [{ ...key('stale').tokenId_key, request: 'r', createdAt: old }, { ...key('fresh').tokenId_key, request: 'r' }] });
    await h.runtime.housekeeping.runNow('idempotency-purge');
    expect(await h.runtime.db.apiIdempotency.findUnique({ where: key('stale') })).toBeNull();
    expect(await h.runtime.db.apiIdempotency.findUnique({ where: key('fresh') })).not.toBeNull();
  });

  it('a retry of a request that never answered (its server died mid-request) acts once the claim is abandoned, not "in progress" for a day', async () => {
    const { id: tokenId } = await h.runtime.db.apiToken.findUniqueOrThrow({ where: { name: 'rotator' } });
    // What a server killed between its claim and its answer leaves behind.
    const claimed = { tokenId, key: 'died', request: requestHash('POST', '/api/v1/secrets/pay-api/rotate', {}) };
    await h.runtime.db.apiIdempotency.create({ data: { ...claimed, createdAt: new Date(Date.now() - IN_PROGRESS_MS - 60_000) } });
    const before = await runsOf('pay-api');
    const retries = await Promise.all([post('/secrets/pay-api/rotate', rotator, { key: 'died' }), post('/secrets/pay-api/rotate', rotator, { key: 'died' })]);
    // One takes the claim over and acts; the other sees it in progress (or, once answered, its answer).
    const acted = retries.filter((r) => r.status === 202);
    expect({ acted: acted.length > 0, others: retries.every((r) => r.status === 202 || r.json.code === 'REKEY_API_IDEMPOTENCY_IN_PROGRESS') }).toEqual({ acted: true, others: true });
    expect(new Set(acted.map((r) => r.json.runId)).size).toBe(1);
    expect(await runsOf('pay-api')).toBe(before + 1);
    await h.waitForRun(acted[0]!.json.runId);
    expect((await post('/secrets/pay-api/rotate', rotator, { key: 'died' })).headers.get('idempotent-replayed')).toBe('true');
  });

  it('20 concurrent retries with one key: one run, every answer the same run or "in progress"', async () => {
    const before = await runsOf('pay-old');
    const all = await Promise.all(Array.from({ length: 20 }, () => post('/secrets/pay-old/rotate', rotator, { key: 'burst' })));
    const runIds = new Set(all.filter((a) => a.status === 202).map((a) => a.json.runId));
    expect(runIds.size).toBe(1);
    expect(all.every((a) => a.status === 202 || a.json.code === 'REKEY_API_IDEMPOTENCY_IN_PROGRESS')).toBe(true);
    expect(await runsOf('pay-old')).toBe(before + 1);
    await h.waitForRun([...runIds][0]);
  });

  it('needs rotate on the secret: 403 for other secrets, for read and for revoke tokens; 404 for unknown ones', async () => {
    expect((await post('/secrets/other/rotate', rotator)).json.code).toBe('REKEY_API_FORBIDDEN');
    expect((await post('/secrets/pay-api/rotate', reader)).json.code).toBe('REKEY_API_FORBIDDEN');
    expect((await post('/secrets/pay-api/rotate', revoker)).json.code).toBe('REKEY_API_FORBIDDEN');
    expect((await post('/secrets/pay-nope/rotate', rotator)).json.code).toBe('REKEY_API_NOT_FOUND');
  });
});

describe('revoke and decommission', () => {
  it('revokes a version through the leak path, as the token', async () => {
    const answer = await post('/secrets/pay-old/versions/1/revoke', revoker, { key: 'rev-1' });
    expect(answer.status).toBe(200);
    expect(answer.json.outcome).toMatch(/^revok/);
    await until(async () => (await h.runtime.db.version.findFirst({ where: { secret: { name: 'pay-old' }, number: 1 } }))?.state === 'revoked', 20_000, 'v1 revoked');
    expect((await h.runtime.db.auditEvent.findFirstOrThrow({ where: { action: 'leak.reported', secret: 'pay-old' } })).actor).toBe('token:revoker');
    expect((await post('/secrets/pay-old/versions/99/revoke', revoker)).json.code).toBe('REKEY_API_NOT_FOUND');
    expect((await post('/secrets/pay-old/versions/1/revoke', rotator)).status).toBe(403);
  });

  it('decommission: 409 while the secret is configured; once removed, every key is retired and revoked', async () => {
    expect((await post('/secrets/pay-api/decommission', revoker)).json.code).toBe('REKEY_API_CONFLICT');
    await h.apply(memoryConfig(JOURNAL, { 'pay-old': 'grace: 1h', other: 'grace: 1h' }));
    const answer = await post('/secrets/pay-api/decommission', revoker);
    expect(answer.status).toBe(202);
    expect(answer.json.versions.length).toBeGreaterThanOrEqual(2);
    await until(async () => (await h.runtime.db.version.count({ where: { secret: { name: 'pay-api' }, state: { notIn: ['revoked', 'failed'] } } })) === 0, 30_000, 'every key of pay-api revoked');
    expect((await apiEvents('api.decommissionSecret')).map((e) => e.actor)).toEqual(['token:revoker']);
  });
});

describe('drift check and audit verify', () => {
  it('a drift check finds a key the target lost and deploys it again', async () => {
    const edge = journal(JOURNAL).accepted.get('edge')!;
    const version = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'other' }, state: 'current' } });
    edge.delete(version.fingerprint!);
    const answer = await post('/secrets/other/drift-check', admin, { body: { repair: true } });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ inSync: false, targets: [{ target: 'edge', missing: [version.number], redeployed: [version.number] }] });
    expect(edge.has(version.fingerprint!)).toBe(true);
    expect((await post('/secrets/other/drift-check', admin)).json.inSync).toBe(true);
    expect((await post('/secrets/other/drift-check', admin, { body: { repair: 'yes' } })).json.code).toBe('REKEY_API_INVALID_REQUEST');
  });

  it("a drift check finds the store serving a version rekey rolled back as current: reported without repair, given back with it", async () => {
    const j = journal(JOURNAL);
    const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'other' }, state: 'current' } });
    j.fail('verify:edge', 1, false);
    expect((await h.rotate('other')).status).toBe('rolled_back');
    const failed = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'other' }, state: 'failed' }, orderBy: { number: 'desc' } });
    // The store's current stage back on the rolled-back version, as a promotion landing after the rollback leaves it.
    const held = j.stored.get(current.storeVersionId!)!;
    held.stages = ['previous'];
    j.stored.set(failed.storeVersionId!, { secret: 'other', versionId: failed.id, value: held.value, stages: ['current'] });
    const serving = () => [...j.stored.values()].filter((v) => v.secret === 'other' && v.stages.includes('current')).map((v) => v.versionId);
    const found = { provider: 'mem', found: 'not-live', storeCurrent: { storeVersionId: failed.storeVersionId, number: failed.number, state: 'failed' }, rekeyCurrent: current.number, error: null };

    const report = await post('/secrets/other/drift-check', admin, { body: { repair: false } });
    expect(report.json).toMatchObject({ inSync: false, store: { ...found, repaired: false } });
    expect(serving()).toEqual([failed.id]);
    const repaired = await post('/secrets/other/drift-check', admin);
    expect(repaired.json).toMatchObject({ inSync: false, store: { ...found, repaired: true } });
    expect(serving()).toEqual([current.id]);
    // The repair is recorded as the caller's, as the other actions are.
    expect((await h.runtime.db.auditEvent.findMany({ where: { action: 'store.drift', secret: 'other' } })).map((e) => e.actor)).toEqual(['token:admin']);
    expect((await post('/secrets/other/drift-check', admin)).json).toMatchObject({ inSync: true, store: { found: 'in-sync', storeCurrent: null, repaired: false } });
  });

  it('audit verify: admin only; the chain verifies, with the anchor it answered too', async () => {
    expect((await post('/audit/verify', rotator)).status).toBe(403);
    const answer = await post('/audit/verify', admin);
    expect(answer.json).toMatchObject({ ok: true });
    expect(answer.json.events).toBeGreaterThan(20);
    expect((await post('/audit/verify', admin, { body: { anchor: answer.json.anchor } })).json.ok).toBe(true);
    expect((await post('/audit/verify', admin, { body: { anchor: 'nonsense' } })).json.code).toBe('REKEY_API_INVALID_REQUEST');
    // `since`: only what was appended after the anchor (nothing here but the calls' own audit events).
    const since = await post('/audit/verify', admin, { body: { since: answer.json.anchor } });
    expect(since.json).toMatchObject({ ok: true, since: String(answer.json.anchor).split(':')[0] });
    expect(since.json.events).toBeLessThan(answer.json.events as number);
    expect((await post('/audit/verify', admin, { body: { since: answer.json.anchor, anchor: answer.json.anchor } })).json.code).toBe('REKEY_API_INVALID_REQUEST');
    expect((await apiEvents('api.verifyAudit')).length).toBeGreaterThanOrEqual(2);
  });
});

it('no answer of any action carries a value', () => {
  const j = journal(JOURNAL);
  const values = [...new Set([...j.values(), ...j.deployedValues])];
  expect(values.length).toBeGreaterThanOrEqual(5);
  expect(answers.length).toBeGreaterThan(30);
  for (const answer of answers) for (const value of values) expect(answer.text.includes(value)).toBe(false);
});
