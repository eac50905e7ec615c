/**
 * After a leak, rekey does not rest until the secret has a working current version
 * (issue 12 item 4): the emergency rotation is retried with a fresh version, backoff
 * capped, loudly (error log, `rekey status`, a metric), and never ends rolled back leaving
 * none. The aws-iam-access-key case runs the official IAM client against the wire fake.
 * And the leak's bookkeeping is complete whichever finishes first, the takedown or the
 * report's row (item 7). And a leaked key is revoked at its issuer while a target cannot
 * retire it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { formatStatus, secretStatus } from '../../src/cli/status.js';
import { Engine } from '../../src/core/engine.js';
import { reportLeak } from '../../src/core/leak.js';
import type { StateRepository } from '../../src/core/model.js';
import type { FakeIam } from '../../providers/aws-iam-access-key/test/fake/iam-server.js';
import type { Harness } from '../support/harness.js';
import { iamSecret, startIamHarness, type IamHarness } from '../support/iam-harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';
import { until } from '../support/poll.js';

let env: IamHarness;
let h: Harness;
let iam: FakeIam;
const JOURNAL = `leakrec-${randomUUID()}`;
const j = journal(JOURNAL);

beforeAll(async () => {
  env = await startIamHarness('leak-recovery');
  ({ h, iam } = env);
});
afterAll(() => env?.stop());

const versionsOf = (secret: string) => h.runtime.db.version.findMany({ where: { secret: { name: secret } }, orderBy: { number: 'asc' } });

it('a leaked current key whose emergency rotation keeps failing: retried with fresh versions until one is current, never rolled back leaving none', async () => {
  const secret = `emerg-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 1h, leakDeadline: 200ms, retry: { attempts: 2, backoff: 20ms }' }));
  expect((await h.rotate(secret)).status).toBe('succeeded');
  // The issuer is down: every emergency attempt fails, the leaked key is blocked at its deadline.
  j.fail('issue', Infinity, true);
  const leak = await h.runtime.engine.revoke(secret, 1);
  expect(leak.outcome).toBe('rotating');
  const emergency = () => h.runtime.db.run.findUniqueOrThrow({ where: { idempotencyKey: `leak:${leak.versionId}` } });
  // Three versions' worth of attempts (two each): past the point where it used to roll back for good.
  await until(() => Promise.resolve(j.calls.filter((c) => c === 'issue').length >= 6), 30_000, 'three emergency versions tried');
  await until(async () => (await versionsOf(secret))[0]!.state === 'revoked', 15_000, 'the leaked key blocked at its deadline');
  expect((await emergency()).status).toBe('running');
  // The last failure stays on the run (what `rekey status` shows), and each start-over is audited on the secret's chain.
  expect((await emergency()).error).toMatch(/injected failure at issue/);
  const restarts = await h.runtime.db.auditEvent.findMany({ where: { runId: (await emergency()).id, action: 'run.restarted' }, select: { chain: true, data: true } });
  expect(restarts.length).toBeGreaterThanOrEqual(2);
  expect(restarts.every((r) => r.chain === secret && (r.data as { kind?: string }).kind === 'rotation')).toBe(true);

  // Loud: an error-level log line, a metric, and `rekey status` says the secret has no working key.
  const errors = h.logs.map((l) => JSON.parse(l) as { level: number; msg: string; secret?: string }).filter((l) => l.level >= 50 && l.secret === secret);
  expect(errors.map((l) => l.msg)).toContain('emergency rotation failed; retrying with a fresh version');
  expect(await h.runtime.metrics.registry.getSingleMetricAsString('rekey_emergency_rotation_retries_total')).toMatch(/rekey_emergency_rotation_retries_total [1-9]/);
  const [status] = await secretStatus(h.runtime, secret);
  expect(status!.activeRun).toMatchObject({ kind: 'rotation', emergency: true });
  expect(formatStatus([status!])).toMatch(/no working current version: emergency rotation retrying/);

  // The issuer comes back: the same run promotes a fresh version.
  j.reset();
  await until(async () => (await emergency()).status !== 'running', 30_000, 'the emergency rotation to finish');
  expect((await emergency()).status).toBe('succeeded');
  const versions = await versionsOf(secret);
  expect(versions.filter((v) => v.state === 'current')).toHaveLength(1);
  expect(versions.at(-1)!.state).toBe('current');
  expect(versions.slice(1, -1).every((v) => v.state === 'failed')).toBe(true);
  expect(await h.runtime.db.run.count({ where: { secret: { name: secret }, status: 'rolled_back' } })).toBe(0);
}, 90_000);

it('aws-iam-access-key: a leak of the current key while the previous is in its overlap ends within leakDeadline with one working key', async () => {
  const secret = `iam-${randomUUID().slice(0, 6)}`;
  const leakDeadlineMs = 20_000;
  const { userName, yaml } = iamSecret(iam, JOURNAL, secret, [`leakDeadline: ${leakDeadlineMs / 1000}s`, 'retry: { attempts: 3, backoff: 50ms }']);
  await h.apply(yaml);
  expect((await h.rotate(secret)).status).toBe('succeeded');
  expect((await h.rotate(secret)).status).toBe('succeeded');
  // v1 previous (in its 1 h overlap), v2 current: the user holds two active keys, AWS's limit.
  const keyOf = (v: { issuerState: unknown }) => (v.issuerState as { accessKeyId: string }).accessKeyId;
  const [v1, v2] = await versionsOf(secret);
  expect(iam.users.get(userName)!.map((k) => [k.accessKeyId, k.status])).toEqual([
    [keyOf(v1!), 'Active'],
    [keyOf(v2!), 'Active'],
  ]);

  const reportedAt = Date.now();
  const leak = await h.runtime.engine.revoke(secret, 2);
  expect(leak.outcome).toBe('rotating');
  const settled = async () => {
    const versions = await versionsOf(secret);
    const current = versions.filter((v) => v.state === 'current');
    const keys = iam.users.get(userName)!;
    return current.length === 1 && !current[0]!.compromisedAt && keys.length === 1 && keys[0]!.accessKeyId === keyOf(current[0]!) && versions[1]!.state === 'revoked';
  };
  await until(settled, 60_000, 'one working key, stored as current, leaked key deleted');
  const versions = await versionsOf(secret);
  const current = versions.find((v) => v.state === 'current')!;
  // Replaced by the emergency rotation, not blocked at the deadline.
  expect(current.promotedAt!.getTime() - reportedAt).toBeLessThan(leakDeadlineMs);
  expect(iam.users.get(userName)!.map((k) => k.status)).toEqual(['Active']);
  expect(iam.users.get(userName)!.map((k) => k.accessKeyId)).not.toContain(keyOf(v2!));
  // The store's current stage holds the working key.
  const stored = [...j.stored.values()].find((s) => s.versionId === current.id)!;
  expect(stored.stages).toEqual(['current']);
  expect((JSON.parse(stored.value.reveal()) as { accessKeyId: string }).accessKeyId).toBe(keyOf(current));
  // Nothing left looping: every run closed, no revocation job waiting for another try.
  await until(async () => (await h.runtime.db.run.count({ where: { secret: { name: secret }, status: 'running' } })) === 0, 30_000, 'every run closed');
  expect(await h.runtime.db.run.count({ where: { secret: { name: secret }, status: 'rolled_back' } })).toBe(0);
  const revocation = await h.runtime.db.run.findUniqueOrThrow({ where: { idempotencyKey: `revocation:${v2!.id}` } });
  expect([revocation.status, revocation.attempts]).toEqual(['succeeded', 1]);
}, 120_000);

it('a revocation that finishes before its leak report row is inserted: blocked_at is stamped anyway and the leak-to-blocked metric counts it', async () => {
  const secret = `late-row-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 1h' }));
  for (let i = 0; i < 2; i++) expect((await h.rotate(secret)).status).toBe('succeeded');
  const blockedCount = async () =>
    (await h.runtime.metrics.leakToBlocked.get()).values.find((v) => v.metricName === 'rekey_leak_to_blocked_seconds_count')?.value ?? 0;
  const before = await blockedCount();
  // The report's row is inserted only once the revocation (another worker) has taken v1 down:
  // the order a slow database insert and a fast gateway produce.
  const repo = h.runtime.engine.deps.repo;
  const late = Object.create(repo) as StateRepository;
  late.recordLeak = async (input, ctx, notices) => {
    await until(async () => (await repo.getVersion(input.version!.id))?.state === 'revoked', 15_000, 'the revocation to finish first');
    return repo.recordLeak(input, ctx, notices);
  };
  const record = await new Engine({ ...h.runtime.engine.deps, repo: late }).revoke(secret, 1);
  expect(record.outcome).toBe('revoking');
  const row = await h.runtime.db.leakReport.findUniqueOrThrow({ where: { id: record.id } });
  expect(row.blockedAt).not.toBeNull();
  expect(row.blockedAt!.getTime()).toBeGreaterThanOrEqual(row.receivedAt.getTime());
  expect(await blockedCount()).toBe(before + 1);
});

it('a leak report is stamped blocked only once its version is: not at insert before the takedown, at once after it', async () => {
  const secret = `stamp-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 1h' }));
  for (let i = 0; i < 2; i++) expect((await h.rotate(secret)).status).toBe('succeeded');
  const repo = h.runtime.engine.deps.repo;
  const v1 = (await repo.findVersionByNumber(secret, 1))!;
  const report = (receivedAt: Date) => ({ source: 'cli', deliveryId: randomUUID(), fingerprint: v1.fingerprint!, receivedAt, version: v1, outcome: 'revoking' as const });
  const row = (id: string) => h.runtime.db.leakReport.findUniqueOrThrow({ where: { id } });

  const first = await repo.recordLeak(report(new Date(Date.now() - 60_000)), { actor: 'test' });
  expect(first.blockedAt).toBeNull();
  expect((await row(first.id)).blockedAt).toBeNull();
  const received = await repo.markBlocked(v1.id);
  expect(received.map((d) => d.getTime())).toEqual([(await row(first.id)).receivedAt.getTime()]);
  const blockedAt = (await row(first.id)).blockedAt!;
  expect(blockedAt).not.toBeNull();
  // Received after the stamp: blocked when received. Received before it: when the version was.
  const later = await repo.recordLeak(report(new Date(blockedAt.getTime() + 5_000)), { actor: 'test' });
  expect(later.blockedAt!.getTime()).toBe(blockedAt.getTime() + 5_000);
  const earlier = await repo.recordLeak(report(new Date(blockedAt.getTime() - 5_000)), { actor: 'test' });
  expect(earlier.blockedAt!.getTime()).toBe(blockedAt.getTime());
  expect(await repo.markBlocked(v1.id)).toEqual([]);
});

it('block-first: the report itself asks for the replacement, which runs beside the takedown (not skipped as stale)', async () => {
  const secret = `bfirst-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 1h, onLeak: block-first' }));
  expect((await h.rotate(secret)).status).toBe('succeeded');
  const leak = await h.runtime.engine.revoke(secret, 1);
  expect(leak.outcome).toBe('blocking');
  // Created before the report returned: not the takedown's recovery after it (`recover:<id>`).
  const run = await h.runtime.db.run.findUnique({ where: { idempotencyKey: `leak:${leak.versionId}` } });
  expect(run).toMatchObject({ kind: 'rotation', trigger: 'leak' });
  const skipped = await h.runtime.db.auditEvent.findMany({ where: { secret, action: 'trigger.stale' } });
  expect(skipped.map((e) => (e.data as { idempotencyKey: string }).idempotencyKey)).not.toContain(`leak:${leak.versionId}`);
  expect((await h.waitForRun(run!.id)).status).toBe('succeeded');
  await until(async () => (await versionsOf(secret))[0]!.state === 'revoked', 15_000, 'the leaked key revoked');
  expect((await versionsOf(secret)).map((v) => v.state)).toEqual(['revoked', 'current']);
  // The takedown's recovery, had it checked for a current version just before that promotion:
  // no second zero-grace rotation of the new key.
  const recovery = await h.runtime.engine.requestRotation({ secret, trigger: 'leak', idempotencyKey: `recover:${leak.versionId}`, urgent: true, replacing: leak.versionId! });
  expect(recovery).toEqual({ status: 'stale' });
  expect(await h.runtime.db.run.count({ where: { secret: { name: secret }, kind: 'rotation' } })).toBe(2);
});

it('a leak report racing a promotion (looked up current, previous when it acts) takes the leaked key down, with either policy', async () => {
  for (const policy of ['rotate-then-revoke', 'block-first'] as const) {
    const secret = `race-${randomUUID().slice(0, 6)}`;
    await h.apply(memoryConfig(JOURNAL, { [secret]: `grace: 1h, onLeak: ${policy}` }));
    expect((await h.rotate(secret)).status).toBe('succeeded');
    const deps = h.runtime.engine.deps;
    const v1 = (await deps.repo.findVersionByNumber(secret, 1))!;
    // The promotion that raced the report: v1 is previous now, in a grace of an hour.
    expect((await h.rotate(secret)).status).toBe('succeeded');
    // The report acts on what its lookup read just before that promotion (the rest is the real repository).
    const repo = new Proxy(deps.repo, {
      get(target, name) {
        if (name === 'findVersionByFingerprint') return () => Promise.resolve({ ...v1, secretRemoved: false });
        const value = Reflect.get(target, name) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const leak = await reportLeak({ ...deps, repo }, { source: 'cli', deliveryId: randomUUID(), fingerprint: v1.fingerprint!, receivedAt: new Date() });
    expect([policy, leak.outcome]).toEqual([policy, policy === 'block-first' ? 'blocking' : 'revoking']);
    await until(async () => (await versionsOf(secret))[0]!.state === 'revoked', 15_000, `${policy}: the leaked previous key revoked`);
    expect((await versionsOf(secret)).map((v) => v.state)).toEqual(['revoked', 'current']);
    // No zero-grace rotation of the key that replaced it.
    expect(await h.runtime.db.run.count({ where: { secret: { name: secret }, kind: 'rotation' } })).toBe(2);
  }
});

it('a leak report racing the promotion of the leaked pending key (looked up pending, current when it acts) replaces or blocks it: it never stays current', async () => {
  for (const policy of ['rotate-then-revoke', 'block-first'] as const) {
    const secret = `race-pending-${randomUUID().slice(0, 6)}`;
    await h.apply(memoryConfig(JOURNAL, { [secret]: `grace: 1h, onLeak: ${policy}` }));
    expect((await h.rotate(secret)).status).toBe('succeeded');
    // The promotion that raced the report: v2 was pending when the report looked it up, current now.
    expect((await h.rotate(secret)).status).toBe('succeeded');
    const deps = h.runtime.engine.deps;
    const v2 = (await deps.repo.findVersionByNumber(secret, 2))!;
    expect(v2.state).toBe('current');
    // The report acts on what its lookup read just before that promotion (the rest is the real repository).
    const repo = new Proxy(deps.repo, {
      get(target, name) {
        if (name === 'findVersionByFingerprint') return () => Promise.resolve({ ...v2, state: 'pending', promotedAt: null, secretRemoved: false });
        const value = Reflect.get(target, name) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const leak = await reportLeak({ ...deps, repo }, { source: 'cli', deliveryId: randomUUID(), fingerprint: v2.fingerprint!, receivedAt: new Date() });
    expect([policy, leak.outcome]).toEqual([policy, policy === 'block-first' ? 'blocking' : 'rotating']);
    await until(async () => (await versionsOf(secret))[1]!.state === 'revoked', 15_000, `${policy}: the leaked key revoked`);
    await until(async () => (await versionsOf(secret)).at(-1)!.state === 'current', 15_000, `${policy}: its replacement current`);
    expect((await versionsOf(secret)).map((v) => v.state)).toEqual(['previous', 'revoked', 'current']);
  }
});

it('a worker that dies after revoking a leaked key but before asking for its replacement: reconcile() starts the emergency rotation', async () => {
  const secret = `orphan-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 1h, onLeak: block-first' }));
  expect((await h.rotate(secret)).status).toBe('succeeded');
  // What the revocation leaves when its worker is SIGKILLed right after the version's last
  // transition: the job is spent (a retry finds the version revoked and skips), and nothing
  // asked for a replacement.
  const repo = h.runtime.engine.deps.repo;
  const ctx = { actor: 'test' };
  const v1 = (await repo.findVersionByNumber(secret, 1))!;
  await repo.transition(v1.id, ['current'], 'compromised', ctx);
  await repo.transition(v1.id, ['compromised'], 'revoked', ctx);
  expect(await repo.currentVersion(v1.secretId)).toBeNull();

  await h.runtime.reconcile();
  await until(async () => (await repo.currentVersion(v1.secretId)) !== null, 30_000, 'a replacement current version');
  const started = await h.runtime.db.run.findFirstOrThrow({ where: { secret: { name: secret }, kind: 'rotation', trigger: 'leak' } });
  const run = await h.waitForRun(started.id);
  expect([run.status, run.graceMs]).toEqual(['succeeded', 0]);
  expect(await h.runtime.db.run.count({ where: { secret: { name: secret }, kind: 'rotation', trigger: 'leak' } })).toBe(1);
});

it('twenty copies of one report at once, while its emergency rotation starts: each answered, one run, the key stamped once', async () => {
  // The stamp commits with the run: its secret lock comes after the run's insert, which may wait for the
  // running rotation's attempt, which waits for the secret's row. Locked the other way round, this deadlocked.
  for (let round = 0; round < 5; round++) {
    const secret = `burst-${randomUUID().slice(0, 6)}`;
    await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 1h' }));
    expect((await h.rotate(secret)).status).toBe('succeeded');
    const v1 = (await h.runtime.engine.deps.repo.findVersionByNumber(secret, 1))!;
    const report = { source: 'webhook' as const, deliveryId: `msg_${randomUUID()}`, fingerprint: v1.fingerprint!, receivedAt: new Date() };
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => h.runtime.engine.as('test').reportLeak(report)));
    expect(results.filter((r) => r.status === 'rejected').map((r) => String(r.reason))).toEqual([]);
    expect(await h.runtime.db.run.count({ where: { secret: { name: secret }, kind: 'rotation', trigger: 'leak' } })).toBe(1);
    expect(await h.runtime.db.auditEvent.count({ where: { versionId: v1.id, action: 'version.leaked' } })).toBe(1);
  }
}, 120_000);

it('block-first: a replacement promoted while the revocation revokes the leaked key (the store still held it as current) does not leave it in the store', async () => {
  const secret = `kept-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 1h, onLeak: block-first' }));
  expect((await h.rotate(secret)).status).toBe('succeeded');
  const v1 = (await h.runtime.engine.deps.repo.findVersionByNumber(secret, 1))!;
  const stored = () => [...j.stored.values()].filter((s) => s.versionId === v1.id);
  expect(stored()).toHaveLength(1);
  // The revocation has read that no successor was promoted (the store keeps v1 as current) and
  // is revoking v1 at the issuer when the replacement, held at issue until then, is promoted.
  const issuing = j.hold('issue');
  const revoking = j.hold('revoke');
  const leak = await h.runtime.engine.revoke(secret, 1);
  expect(leak.outcome).toBe('blocking');
  await revoking.reached;
  issuing.release();
  const replacement = await h.runtime.db.run.findUniqueOrThrow({ where: { idempotencyKey: `leak:${v1.id}` } });
  expect((await h.waitForRun(replacement.id)).status).toBe('succeeded');
  revoking.release();
  await until(async () => (await versionsOf(secret))[0]!.state === 'revoked', 15_000, 'the leaked key revoked');
  const revocation = await h.runtime.db.run.findUniqueOrThrow({ where: { idempotencyKey: `revocation:${v1.id}` } });
  expect((await h.waitForRun(revocation.id)).status).toBe('succeeded');
  // The leaked value is gone from the store: the store no longer held it as current when it was revoked.
  expect(stored()).toEqual([]);
});

it('a version reported leaked after its issue, before its store write: the value written after the report is destroyed in the store', async () => {
  const secret = `early-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(JOURNAL, { [secret]: 'grace: 1h' }));
  expect((await h.rotate(secret)).status).toBe('succeeded');
  const writing = j.hold('store.writePending');
  const rotation = await h.runtime.engine.requestRotation({ secret, trigger: 'manual' });
  if (rotation.status === 'stale') throw new Error('stale');
  await writing.reached;
  // v2 is issued and recorded (its fingerprint known), not stored yet: the report takes it down from issuing.
  const leak = await h.runtime.engine.revoke(secret, 2);
  expect(leak.outcome).toBe('revoking');
  await until(async () => (await versionsOf(secret))[1]!.state === 'revoked', 15_000, 'the leaked version revoked');
  writing.release();
  expect((await h.waitForRun(rotation.run.id)).status).toBe('rolled_back');
  expect((await versionsOf(secret)).map((v) => v.state)).toEqual(['current', 'revoked']);
  expect([...j.stored.values()].filter((s) => s.versionId === leak.versionId)).toEqual([]);
});

it('a leaked key is revoked at its issuer while a target cannot retire it: the issuer does not wait for the targets', async () => {
  const name = `leak-down-${randomUUID()}`;
  const jt = journal(name);
  const secret = `down-${randomUUID().slice(0, 6)}`;
  await h.apply(memoryConfig(name, { [secret]: 'grace: 1h, retry: { attempts: 2, backoff: 20ms }' }));
  expect((await h.rotate(secret)).status).toBe('succeeded');
  expect((await h.rotate(secret)).status).toBe('succeeded'); // v1 is previous, in its grace
  jt.fail('retire:edge'); // the gateway cannot be reached
  const from = jt.calls.length;
  const calls = () => jt.calls.slice(from);
  expect((await h.runtime.engine.revoke(secret, 1)).outcome).toBe('revoking');
  // Gated on the takedown having tried the target a few times, or on the revoke.
  await until(() => Promise.resolve(calls().includes('revoke') || calls().filter((c) => c === 'retire:edge').length >= 3), 30_000, 'the takedown tried the target');
  expect(calls()).toContain('revoke');
  // rekey records it revoked (and ends the run) only once every target has retired it too.
  const v1 = (await versionsOf(secret))[0]!;
  expect(v1.state).toBe('compromised');
  jt.reset();
});
