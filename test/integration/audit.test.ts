/**
 * Invariant 7: every state change writes an audit event; the log is hash-chained and
 * `rekey audit verify` detects tampering, naming the row; with an anchor kept from an
 * earlier verify, it also detects rows deleted from the end of a chain.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { verifyAudit } from '../../src/db/audit-verify.js';
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

  // Drop the secret's last three events: what is left is still a valid chain.
  const tail = await h.runtime.db.auditEvent.findMany({ where: { chain: 'audited' }, orderBy: { seq: 'desc' }, take: 3, select: { seq: true } });
  await runSql(h.env.databaseUrl, [
    'ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update',
    `DELETE FROM audit_events WHERE seq IN (${tail.map((e) => e.seq).join(', ')})`,
    'ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update',
  ]);
  expect((await rekey(['audit', 'verify'], env)).code).toBe(0);
  const caught = await rekey(['audit', 'verify', '--anchor', anchor], env);
  expect(caught.code).toBe(1);
  expect(caught.stdout).toContain(`row ${anchor.split(':')[0]} is the anchor, and the chains up to it are not what they were`);
  const malformed = await rekey(['audit', 'verify', '--anchor', 'yesterday'], env);
  expect(malformed.code).toBe(2);
  expect(malformed.stderr).toContain('<seq>:<64 hex digits>');
});

it('verifies the chain, then names the row that was edited, then the row after one deleted', async () => {
  const env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix };
  const ok = await rekey(['audit', 'verify'], env);
  expect(ok.code).toBe(0);
  expect(ok.stdout).toMatch(/Audit log intact: \d+ events, hash chain verified/);

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
