/**
 * Notifications end to end on real Redis (BullMQ) and PostgreSQL, delivered over HTTP to a
 * local receiver that checks Standard Webhooks signatures with the reference library: a failed
 * rotation makes one signed delivery per subscribed destination under a stable id, a receiver
 * that fails is sent the same id again, a leak report makes leak.received and leak.blocked
 * (with the time), a stuck run is reported, a notice relayed twice is delivered once, and no
 * body carries a secret's value. Every notice goes through the outbox and this process's relay.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordAnchor } from '../../src/audit-anchor.js';
import { Engine } from '../../src/core/engine.js';
import type { RunRecord } from '../../src/core/model.js';
import { notice, rotationGaveUp } from '../../src/core/notify.js';
import { createDb } from '../../src/db/client.js';
import { OutboxNotifier } from '../../src/db/outbox.js';
import { raiseRotationsDue } from '../../src/notify/due.js';
import { CLOSED_PORT } from '../support/closed-port.js';
import { dumpRedis } from '../support/dumps.js';
import { startHarness, type Harness } from '../support/harness.js';
import { runSql } from '../support/isolation.js';
import { journal } from '../support/memory-provider.js';
import { type NoticeReceiver, startNoticeReceiver } from '../support/notice-receiver.js';

const J = `notify-${randomUUID()}`;
const STUCK = `notify-stuck-${randomUUID()}`;
const STORE = `notify-store-${randomUUID()}`;
const j = journal(J);
const stuck = journal(STUCK);
const st = journal(STORE);
const WHSEC = `whsec_${randomBytes(32).toString('base64')}`;
let h: Harness;
let r: NoticeReceiver;

interface Body {
  type: string;
  timestamp: string;
  data: Record<string, string | number | boolean | null>;
}
const parse = (body: string) => JSON.parse(body) as Body;

/** Until no notice waits in the outbox, runs or waits for a retry: every delivery there will be has been made. */
async function settled(): Promise<void> {
  const waiting = async () =>
    (await h.runtime.db.notificationOutbox.count()) +
    Object.values(await h.runtime.notices.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized')).reduce((a, b) => a + b, 0);
  await expect.poll(waiting, { timeout: 20_000 }).toBe(0);
}

beforeAll(async () => {
  r = await startNoticeReceiver(WHSEC);
  process.env.NOTIFY_TEST_WHSEC = WHSEC;
  process.env.NOTIFY_TEST_SLACK = `${r.base}/slack`;
  h = await startHarness({ label: 'notifications' });
  const retry = 'retry: { attempts: 5, backoff: 100ms }';
  await h.apply(`
env: { allow: ["NOTIFY_TEST_*"] }
providers:
  mem: { type: memory, journal: ${J} }
  edge: { type: memory, journal: ${J}, drift: { interval: 1h } }
  mem2: { type: memory, journal: ${STUCK} }
  edge2: { type: memory, journal: ${STUCK} }
  mem3: { type: memory, journal: ${STORE} }
  edge3: { type: memory, journal: ${STORE}, drift: { interval: 1h } }
secrets:
  pay-key: { store: { provider: mem }, issuer: { provider: mem }, targets: [edge], grace: 1h, retry: { attempts: 1, backoff: 10ms } }
  stuck-key: { store: { provider: mem2 }, issuer: { provider: mem2 }, targets: [edge2], retry: { attempts: 1, backoff: 10ms } }
  store-key: { store: { provider: mem3 }, issuer: { provider: mem3 }, targets: [edge3], retry: { attempts: 1, backoff: 10ms } }
notifications:
  destinations:
    oncall: { type: webhook, url: "${r.base}/hooks/oncall", insecure: true, secret: "\${env:NOTIFY_TEST_WHSEC}", events: [rotation.failed, leak.received, leak.blocked], ${retry} }
    ops: { type: webhook, url: "${r.base}/hooks/ops", insecure: true, secret: "\${env:NOTIFY_TEST_WHSEC}", events: [secret.no-current, run.stuck, audit.verify-failed, rotation.due, drift.repeated], ${retry} }
    stores: { type: webhook, url: "${r.base}/hooks/stores", insecure: true, secret: "\${env:NOTIFY_TEST_WHSEC}", events: [store.drift], ${retry} }
    chat: { type: slack, url: "\${env:NOTIFY_TEST_SLACK}", insecure: true, events: [rotation.failed, leak.blocked], ${retry} }
  rotationDue: { every: 30d, within: 7d }
`);
});
afterAll(async () => {
  await h?.stop();
  await r?.close();
});

describe('notifications', () => {
  it('a failed rotation makes exactly one signed delivery per subscribed destination, under a stable id', async () => {
    j.fail('deploy:edge', 1, false);
    const run = await h.rotate('pay-key');
    expect(run.status).toBe('rolled_back');
    await expect.poll(() => r.accepted('/hooks/oncall').length + r.accepted('/slack').length + r.accepted('/hooks/ops').length, { timeout: 20_000 }).toBe(3);

    const [webhook] = r.accepted('/hooks/oncall');
    expect(webhook!.id).toBe(`rotation.failed.${run.id}`);
    expect(webhook!.signatureValid).toBe(true);
    expect(parse(webhook!.body)).toMatchObject({
      type: 'rekey.rotation.failed',
      data: { id: `rotation.failed.${run.id}`, secret: 'pay-key', runId: run.id, status: 'rolled_back', step: 'deploy', code: 'REKEY_ERR_DENIED' },
    });
    const [slack] = r.accepted('/slack');
    const text = (JSON.parse(slack!.body) as { text: string }).text;
    expect(text).toContain('Rotation failed');
    expect(text).toContain('pay-key');
    expect(text).toContain(`rotation.failed.${run.id}`);
    // Its first rotation failed: the secret has no current version.
    const [noCurrent] = r.accepted('/hooks/ops');
    expect(noCurrent!.id).toBe(`secret.no-current.${run.id}`);
    expect(parse(noCurrent!.body).type).toBe('rekey.secret.no-current');

    // Raised again (a retried job raises it again): the queue keeps one delivery per id.
    await rotationGaveUp(h.runtime.engine.deps, run, { status: 'rolled_back', step: 'deploy', error: 'REKEY_ERR_DENIED' });
    await settled();
    expect(r.deliveries.filter((d) => d.id === `rotation.failed.${run.id}` || d.path === '/slack')).toHaveLength(2);
  });

  it('a receiver answering 500 twice then 200 is sent the same id again, signed each time', async () => {
    expect((await h.rotate('pay-key')).status).toBe('succeeded');
    r.failNext('/hooks/oncall', 500, 2);
    j.fail('verify:edge', 1, false);
    const run = await h.rotate('pay-key');
    expect(run.status).toBe('rolled_back');
    const id = `rotation.failed.${run.id}`;
    await expect.poll(() => r.accepted('/hooks/oncall').filter((d) => d.id === id).length, { timeout: 20_000 }).toBe(1);
    await settled();
    const tries = r.deliveries.filter((d) => d.id === id && d.path === '/hooks/oncall');
    expect(tries.map((d) => d.status)).toEqual([500, 500, 204]);
    expect(tries.every((d) => d.signatureValid)).toBe(true);
    expect(new Set(tries.map((d) => d.body)).size).toBe(1);
    const metrics = await (await fetch(`${h.serving!.url}/metrics`)).text();
    expect(Number(/rekey_notifications_total\{destination="oncall",event="rotation.failed",outcome="retrying"\} (\d+)/.exec(metrics)?.[1])).toBe(2);
    expect(metrics).toMatch(/rekey_notifications_total\{destination="oncall",event="rotation.failed",outcome="delivered"\} 2/);
    // The secret kept its current version: no secret.no-current for this run.
    expect(r.deliveries.some((d) => d.id === `secret.no-current.${run.id}`)).toBe(false);
  });

  it("a receiver answering 429 or 503 with Retry-After is not sent the notice again before the time it named", async () => {
    const cases = [
      // Seconds: counted from the answer that named them.
      { status: 429, retryAfter: () => '2', earliest: (_header: string, firstAt: number) => firstAt + 2000 },
      // An HTTP date (whole seconds): not before it, however long the rotation took before the first try.
      { status: 503, retryAfter: () => new Date(Date.now() + 4000).toUTCString(), earliest: (header: string) => Date.parse(header) },
    ];
    for (const { status, retryAfter, earliest } of cases) {
      const header = retryAfter();
      r.failNext('/hooks/oncall', status, 1, header);
      j.fail('verify:edge', 1, false);
      const run = await h.rotate('pay-key');
      expect(run.status).toBe('rolled_back');
      const id = `rotation.failed.${run.id}`;
      await expect.poll(() => r.accepted('/hooks/oncall').filter((d) => d.id === id).length, { timeout: 20_000 }).toBe(1);
      const tries = r.deliveries.filter((d) => d.id === id && d.path === '/hooks/oncall');
      expect(tries.map((d) => d.status)).toEqual([status, 204]);
      // The destination's own backoff is 100 ms; the receiver asked for later (100 ms of slack for the two clocks' reads).
      const early = earliest(header, tries[0]!.at) - tries[1]!.at;
      expect({ status, early: early <= 100 ? 'none' : early }).toEqual({ status, early: 'none' });
    }
  });

  it('a rotation.failed that cannot be recorded leaves the run at rollback; driving it again raises it', async () => {
    // A real outbox on a PostgreSQL that is not there: writing the notice fails.
    const nowhere = createDb(`postgresql://postgres@127.0.0.1:${CLOSED_PORT}/none`, 1);
    try {
      const cut = new Engine({ ...h.runtime.engine.deps, notifier: new OutboxNotifier(nowhere) });
      const { repo } = h.runtime.engine.deps;
      // A run nobody queued yet, driven here first: its last attempt fails and rolls back.
      const { run } = (await repo.createRotationRun({ secret: 'pay-key', trigger: 'manual', idempotencyKey: `cut-${randomUUID()}`, graceMs: null, audit: { actor: 'test' } })) as { run: RunRecord };
      j.fail('deploy:edge', 1, false);
      await expect(cut.driveRotation(run.id, { final: true })).rejects.toThrow();
      expect(await repo.getRun(run.id)).toMatchObject({ status: 'running', step: 'rollback' });
      expect(r.deliveries.some((d) => d.id === `rotation.failed.${run.id}`)).toBe(false);
      // reconcile() (every second here) queues the open run; the worker finishes the rollback and raises the notice.
      expect((await h.waitForRun(run.id)).status).toBe('rolled_back');
      await expect.poll(() => r.accepted('/hooks/oncall').filter((d) => d.id === `rotation.failed.${run.id}`).length, { timeout: 20_000 }).toBe(1);
      expect(parse(r.accepted('/hooks/oncall').find((d) => d.id === `rotation.failed.${run.id}`)!.body).data).toMatchObject({ status: 'rolled_back', step: 'rollback', code: 'REKEY_ERR_DENIED' });
    } finally {
      await nowhere.$disconnect();
    }
  });

  it('a notice relayed again (a relay that died after queuing it, before deleting its row) is delivered once', async () => {
    const again = notice({}, 'leak.received', randomUUID(), 'pay-key', { leakId: 'test', source: 'cli', version: null, fingerprint: null, outcome: 'unknown', receivedAt: new Date().toISOString() });
    // What that relay left: the jobs queued, and the row still in the outbox (this process's relay takes it next).
    await h.runtime.notices.enqueue([again]);
    await h.runtime.notifier.notify(again);
    await expect.poll(() => r.accepted('/hooks/oncall').filter((d) => d.id === again.id).length, { timeout: 20_000 }).toBe(1);
    await settled();
    expect(r.deliveries.filter((d) => d.id === again.id)).toHaveLength(1);
  });

  it('a leak report makes leak.received and leak.blocked, with the time it took', async () => {
    const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'pay-key' }, state: 'current' } });
    const receivedAt = new Date();
    const record = await h.runtime.engine.reportLeak({ source: 'webhook', deliveryId: randomUUID(), fingerprint: current.fingerprint!, receivedAt });
    expect(record.outcome).toBe('rotating');
    await expect.poll(() => r.accepted('/hooks/oncall').filter((d) => d.id === `leak.blocked.${current.id}`).length, { timeout: 20_000 }).toBe(1);
    await settled();

    const received = r.accepted('/hooks/oncall').filter((d) => d.id === `leak.received.${record.id}`);
    expect(received).toHaveLength(1);
    expect(parse(received[0]!.body).data).toMatchObject({ secret: 'pay-key', source: 'webhook', version: current.number, outcome: 'rotating', receivedAt: receivedAt.toISOString() });
    const blocked = parse(r.accepted('/hooks/oncall').find((d) => d.id === `leak.blocked.${current.id}`)!.body).data;
    expect(blocked).toMatchObject({ secret: 'pay-key', version: current.number, fingerprint: current.fingerprint!.slice(0, 12), receivedAt: receivedAt.toISOString() });
    expect(Date.parse(String(blocked.blockedAt))).toBeGreaterThanOrEqual(receivedAt.getTime());
    expect(blocked.seconds).toBe((Date.parse(String(blocked.blockedAt)) - receivedAt.getTime()) / 1000);
    expect(r.accepted('/slack').some((d) => d.body.includes(`leak.blocked.${current.id}`))).toBe(true);
  });

  it('a run stuck past its retry budget is reported once', async () => {
    stuck.fail('deploy:edge2', 1, false);
    stuck.fail('revoke', Infinity, true); // the rollback cannot finish
    const result = await h.runtime.engine.requestRotation({ secret: 'stuck-key', trigger: 'manual' });
    if (result.status === 'stale') throw new Error('stale');
    const id = `run.stuck.${result.run.id}`;
    // reconcile (every second here) queues the run again each time it fails, until attempts pass 5 x retry.attempts.
    await expect.poll(() => r.accepted('/hooks/ops').filter((d) => d.id === id).length, { timeout: 30_000 }).toBe(1);
    expect(parse(r.accepted('/hooks/ops').find((d) => d.id === id)!.body).data).toMatchObject({ secret: 'stuck-key', kind: 'rotation', step: 'rollback', code: 'REKEY_ERR_UNAVAILABLE' });
    stuck.reset();
    await h.waitForRun(result.run.id, 20_000);
    await settled();
    expect(r.deliveries.filter((d) => d.id === id)).toHaveLength(1);
  });

  it('rotation.due: once per current version of a secret without a schedule, from `within` before it is due', async () => {
    const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'pay-key' }, state: 'current' } });
    const deps = { db: h.runtime.db, resolver: h.runtime.resolver, notifier: h.runtime.notifier };
    // Promoted just now: due in 30 days, not within 7.
    expect(await raiseRotationsDue(deps)).toBe(0);
    const later = () => new Date(current.promotedAt!.getTime() + 24 * 86_400_000);
    expect(await raiseRotationsDue({ ...deps, now: later })).toBe(1);
    expect(await raiseRotationsDue({ ...deps, now: later })).toBe(1); // every replica, every pass: one notice
    await expect.poll(() => r.accepted('/hooks/ops').filter((d) => d.id === `rotation.due.${current.id}`).length, { timeout: 20_000 }).toBe(1);
    await settled();
    expect(r.deliveries.filter((d) => d.id === `rotation.due.${current.id}`)).toHaveLength(1);
    expect(parse(r.accepted('/hooks/ops').find((d) => d.id === `rotation.due.${current.id}`)!.body).data).toMatchObject({
      secret: 'pay-key',
      version: current.number,
      dueAt: new Date(current.promotedAt!.getTime() + 30 * 86_400_000).toISOString(),
      overdue: false,
    });
  });

  it('the anchor job raises audit.verify-failed when the log does not verify', async () => {
    const row = await h.runtime.db.auditEvent.findFirstOrThrow({ orderBy: { seq: 'desc' }, skip: 3 });
    await runSql(h.env.databaseUrl, [
      'ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update',
      `UPDATE audit_events SET actor = 'mallory' WHERE seq = ${row.seq}`,
      'ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update',
    ]);
    const anchor = () => recordAnchor({ db: h.runtime.db, audit: h.runtime.audit, log: h.runtime.log, actor: 'test', webhook: undefined, notifier: h.runtime.notifier });
    await anchor();
    await anchor();
    const id = `audit.verify-failed.${row.seq}`;
    await expect.poll(() => r.accepted('/hooks/ops').filter((d) => d.id === id).length, { timeout: 20_000 }).toBe(1);
    await settled();
    expect(r.deliveries.filter((d) => d.id === id)).toHaveLength(1);
    expect(parse(r.accepted('/hooks/ops').find((d) => d.id === id)!.body)).toMatchObject({ type: 'rekey.audit.verify-failed', data: { secret: null, seq: String(row.seq) } });
  });

  it('drift.repeated when a target loses its key three checks in a row, once per streak', async () => {
    const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'pay-key' }, state: 'current' } });
    for (let i = 0; i < 4; i++) {
      j.accepted.get('edge')!.clear(); // something outside rekey keeps emptying the target
      const report = await h.runtime.engine.checkTarget('edge', ['pay-key'], { repair: true });
      expect(report.results[0]).toMatchObject({ missing: [current.number], redeployed: [current.number] });
    }
    await expect.poll(() => r.accepted('/hooks/ops').filter((d) => d.id.startsWith(`drift.repeated.${current.secretId}.edge.`)).length, { timeout: 20_000 }).toBe(1);
    await settled();
    const notices = r.deliveries.filter((d) => d.id.startsWith('drift.repeated.'));
    expect(notices).toHaveLength(1); // the fourth check extends the streak: no second notice
    expect(parse(notices[0]!.body).data).toMatchObject({ secret: 'pay-key', target: 'edge', streak: 3, missing: String(current.number), unwanted: '' });
  });

  it("store.drift when the store serves as current a version rekey rolled back, with what was found and that it was given back; a check-only check and one in sync raise none", async () => {
    expect((await h.rotate('store-key')).status).toBe('succeeded');
    st.fail('verify:edge3', 1, false);
    const rolledBack = await h.rotate('store-key');
    expect(rolledBack.status).toBe('rolled_back');
    const { repo } = h.runtime.engine.deps;
    const failed = (await repo.getVersion(rolledBack.versionId!))!;
    const current = (await repo.currentVersion(failed.secretId))!;
    // A late promotion: the store's current stage back on the rolled-back version (its value put back).
    const held = [...st.stored.values()].find((v) => v.versionId === current.id)!;
    held.stages = ['previous'];
    st.stored.set(failed.storeVersionId!, { secret: 'store-key', versionId: failed.id, value: held.value, stages: ['current'] });

    // A check-only one (`rekey verify` without --repair) raises nothing; the repairing one does.
    expect((await h.runtime.engine.checkStores(['store-key'], { repair: false })).results.map((x) => x.found)).toEqual(['not-live']);
    const report = await h.runtime.engine.checkStores(['store-key'], { repair: true });
    expect(report.results.map((x) => [x.found, x.repaired])).toEqual([['not-live', true]]);
    const found = `store.drift.${failed.secretId}.${failed.storeVersionId}.`;
    await expect.poll(() => r.accepted('/hooks/stores').filter((d) => d.id.startsWith(found)).length, { timeout: 20_000 }).toBe(1);
    const id = r.accepted('/hooks/stores')[0]!.id;
    expect(parse(r.accepted('/hooks/stores')[0]!.body)).toMatchObject({
      type: 'rekey.store.drift',
      data: { id, secret: 'store-key', store: 'mem3', found: 'not-live', repaired: true, storeVersionId: failed.storeVersionId, storeVersion: failed.number, storeState: 'failed', rekeyCurrent: current.number, code: null },
    });
    // In sync again: nothing more.
    expect((await h.runtime.engine.checkStores(['store-key'], { repair: true })).results.map((x) => x.found)).toEqual(['in-sync']);
    await settled();
    expect(r.deliveries.filter((d) => d.id.startsWith('store.drift.'))).toHaveLength(1);

    // The same version put back again after it was given back: a new finding, notified again (under another id).
    held.stages = ['previous'];
    st.stored.set(failed.storeVersionId!, { secret: 'store-key', versionId: failed.id, value: held.value, stages: ['current'] });
    expect((await h.runtime.engine.checkStores(['store-key'], { repair: true })).results.map((x) => [x.found, x.repaired])).toEqual([['not-live', true]]);
    await expect.poll(() => r.accepted('/hooks/stores').filter((d) => d.id.startsWith(found)).length, { timeout: 20_000 }).toBe(2);
    expect(new Set(r.accepted('/hooks/stores').map((d) => d.id)).size).toBe(2);
  });

  it('store.drift for a finding left as it is (a version rekey does not know) is sent once however often it is found again', async () => {
    expect((await h.rotate('store-key')).status).toBe('succeeded');
    const secretId = (await h.runtime.db.secret.findUniqueOrThrow({ where: { name: 'store-key' } })).id;
    const before = r.accepted('/hooks/stores').length;
    // A person put a value of their own in the store and moved the current stage onto it.
    const held = [...st.stored.of('store-key').values()].find((v) => v.stages.includes('current'))!;
    held.stages = held.stages.filter((s) => s !== 'current');
    st.stored.set('by-hand', { secret: 'store-key', versionId: 'by-hand', value: held.value, stages: ['current'] });
    for (let i = 0; i < 3; i++) {
      expect((await h.runtime.engine.checkStores(['store-key'], { repair: true })).results.map((x) => [x.found, x.repaired])).toEqual([['unknown', false]]);
    }
    await expect.poll(() => r.accepted('/hooks/stores').length, { timeout: 20_000 }).toBe(before + 1);
    expect(r.accepted('/hooks/stores').at(-1)!.id.startsWith(`store.drift.${secretId}.by-hand.`)).toBe(true);
    await settled();
    expect(r.accepted('/hooks/stores')).toHaveLength(before + 1);
    st.stored.delete('by-hand');
    held.stages.push('current');
  });

  it('no delivery, header or queued job carries a secret value; fingerprints only in their short form', async () => {
    const values = [...j.values(), ...stuck.values(), ...st.values(), ...j.deployedValues];
    expect(values.length).toBeGreaterThan(3);
    const fingerprints = (await h.runtime.db.version.findMany({ select: { fingerprint: true } })).flatMap((v) => (v.fingerprint ? [v.fingerprint] : []));
    const sent = r.deliveries.map((d) => `${JSON.stringify(d.headers)}\n${d.body}`).join('\n');
    const queued = await dumpRedis(h.settings.redisUrl, [`${h.env.prefix}:notifications:*`]);
    expect(sent).toContain('fp_'); // the search can see
    expect(queued).toContain('leak.blocked');
    for (const value of values) {
      expect(sent).not.toContain(value);
      expect(queued).not.toContain(value);
    }
    for (const fingerprint of fingerprints) expect(sent).not.toContain(fingerprint);
  });
});
