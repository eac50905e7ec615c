/**
 * Issue 12, item 5: the audit log resists the credentials rekey itself runs with. rekey
 * runs as a runtime role that `rekey migrate` (as the owner) grants INSERT and SELECT on
 * the audit log and nothing more there; the chain is an HMAC under REKEY_AUDIT_KEY, which
 * the database never sees, so neither that role nor the owner can write a row verify
 * accepts; the cluster's anchor job exports signed anchors on its schedule.
 *
 * The attacker below knows everything but the key: it hashes rows the way the chain was
 * hashed before it was keyed (SHA-256 of the fields), which the old verify accepted.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type AnchorMessage, recordAnchor } from '../../src/audit-anchor.js';
import { AuditLog, type AuditRow } from '../../src/db/audit.js';
import { type Checkpoint, takeAnchor, verifyAudit } from '../../src/db/audit-verify.js';
import { createDb } from '../../src/db/client.js';
import { createLogger } from '../../src/log.js';
import { ensureDatabase, listMigrations, migrate } from '../../src/db/migrate.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { type CliResult, rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';
import { isolate, runSql, type Isolated } from '../support/isolation.js';
import { DATABASE_URL, TEST_AUDIT_KEY, databaseUrl } from '../support/services.js';
import { memoryConfig } from '../support/memory-provider.js';

const id = randomUUID().replaceAll('-', '').slice(0, 12);
/** Roles are cluster-wide: a name of this file's own, dropped at the end. */
const ROLE = `rekey_rt_${id}`;
const JOURNAL = `audit-trust-${id}`;
let env: Isolated;
let runtimeUrl: string;
let migrated: CliResult;
let h: Harness;
let webhook: Server;
const posted: AnchorMessage[] = [];
let onPost: (() => void) | undefined;

beforeAll(async () => {
  env = await isolate('audit-trust');
  await runSql(DATABASE_URL, [`CREATE ROLE ${ROLE} LOGIN`]);
  const url = new URL(env.databaseUrl);
  url.username = ROLE;
  url.password = '';
  runtimeUrl = url.toString();
  migrated = await rekey(['migrate'], { DATABASE_URL: runtimeUrl, REKEY_MIGRATE_DATABASE_URL: env.databaseUrl });
  webhook = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      posted.push(JSON.parse(body) as AnchorMessage);
      res.writeHead(204).end();
      onPost?.();
    });
  });
  await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
  h = await startHarness({
    label: 'audit-trust',
    isolated: { ...env, databaseUrl: runtimeUrl },
    settings: { REKEY_AUDIT_ANCHOR_INTERVAL: '1s', REKEY_AUDIT_ANCHOR_WEBHOOK: `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/anchors` },
  });
  await h.apply(memoryConfig(JOURNAL, { audited: 'grace: 1h' }));
  for (let i = 0; i < 3; i++) expect((await h.rotate('audited')).status).toBe('succeeded');
});

afterAll(async () => {
  await h?.stop();
  await new Promise((resolve) => webhook?.close(resolve));
  await runSql(DATABASE_URL, [`DROP ROLE IF EXISTS ${ROLE}`]);
});

const cliEnv = () => ({ DATABASE_URL: runtimeUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix, REKEY_AUDIT_KEY: TEST_AUDIT_KEY });

it('rekey migrate as the owner grants the runtime role INSERT and SELECT on the audit log, and the role cannot UPDATE, DELETE, TRUNCATE, ALTER it or disable its trigger', async () => {
  expect(migrated.stderr).toBe('');
  expect(migrated.code).toBe(0);
  expect(migrated.stdout).toContain(`Runtime role ${ROLE}: granted`);
  const printed = await rekey(['migrate', '--print-grants'], { DATABASE_URL: runtimeUrl });
  expect(printed.stdout).toContain(`REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON "public".audit_events FROM "${ROLE}";`);

  const before = await snapshot();
  const refused = [
    `UPDATE audit_events SET actor = 'mallory'`,
    'DELETE FROM audit_events',
    'TRUNCATE audit_events',
    'ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update',
    'ALTER TABLE audit_events DISABLE TRIGGER ALL',
    'ALTER TABLE audit_events DROP CONSTRAINT audit_events_keyed',
    'DROP TRIGGER audit_events_no_update ON audit_events',
    `CREATE TRIGGER mallory BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`,
    'SET session_replication_role = replica',
    'DELETE FROM "_prisma_migrations"',
  ];
  for (const sql of refused) await expect(runSql(runtimeUrl, [sql]), sql).rejects.toThrow(/permission denied|must be owner/);
  expect(await snapshot(before.at(-1)?.seq)).toEqual(before);
});

it('the runtime runs on that role: apply, rotations, a revocation and verify', async () => {
  const versions = await h.runtime.db.version.findMany({ orderBy: { number: 'asc' } });
  expect(versions.filter((v) => v.state === 'current')).toHaveLength(1);
  const previous = versions.find((v) => v.state === 'previous')!;
  const revoked = await rekey(['revoke', 'audited', '--version', String(previous.number)], cliEnv());
  expect(revoked.stderr).toBe('');
  expect(revoked.stdout).toContain(`Version ${previous.number} of audited:`);
  // The takedown runs on the workers, as the runtime role; the next tests need the chain still.
  for (let i = 0; (await h.runtime.db.version.findUniqueOrThrow({ where: { id: previous.id } })).state !== 'revoked'; i++) {
    if (i > 1500) throw new Error('the revoked version never reached revoked');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const verified = await rekey(['audit', 'verify'], cliEnv());
  expect(verified.stdout).toMatch(/Audit log intact: \d+ events, hash chain verified/);
  expect(verified.code).toBe(0);
});

it('a forged INSERT as the runtime role is refused unkeyed, and caught by verify when it claims the key: the role cannot compute the MAC', async () => {
  const head = await lastRow('audited');
  const forged = { ...head, seq: head.seq + 1000n, actor: 'mallory', action: 'version.revoked', prevHash: head.hash };
  await expect(insert(runtimeUrl, { ...forged, keyId: null })).rejects.toThrow(/audit_events_keyed/);
  await insert(runtimeUrl, forged);
  const result = await verifyAudit(h.runtime.db, h.runtime.audit);
  expect(result.ok ? 'intact' : `${result.seq}: ${result.problem}`).toMatch(new RegExp(`^${forged.seq}: its content does not match its hash`));
  await runSql(env.databaseUrl, withoutTrigger([`DELETE FROM audit_events WHERE seq = ${forged.seq}`]));
  expect((await verifyAudit(h.runtime.db, h.runtime.audit)).ok).toBe(true);
});

it('a forged INSERT as the runtime role below the first sequence number (seq 0 or negative) is caught by verify, not left unread while `rekey audit log` lists it', async () => {
  const head = await lastRow('audited');
  for (const seq of [-1n, 0n]) {
    const forged = { ...head, seq, actor: 'mallory', action: 'version.revoked', keyId: h.runtime.audit.keyId(), hash: 'f'.repeat(64) };
    await insert(runtimeUrl, forged);
    const listed = await rekey(['audit', 'log', 'audited', '--actor', 'mallory', '--json'], cliEnv());
    expect((JSON.parse(listed.stdout) as { items: Array<{ seq: string }> }).items.map((e) => e.seq)).toEqual([String(seq)]);
    const result = await verifyAudit(h.runtime.db, h.runtime.audit);
    expect(result.ok ? 'intact' : `${result.seq}: ${result.problem}`).toMatch(new RegExp(`^${seq}: `));
    await runSql(env.databaseUrl, withoutTrigger([`DELETE FROM audit_events WHERE seq = ${seq}`]));
  }
  expect((await verifyAudit(h.runtime.db, h.runtime.audit)).ok).toBe(true);
});

it('the anchor job fires on its schedule, once for the cluster: it logs and posts a signed anchor that verify --anchor accepts, and that catches rows removed before it', async () => {
  const schedulers = await h.runtime.queues.queues.rotations.getJobSchedulers(0, -1);
  expect(schedulers.filter((s) => s.key === 'audit.anchor').map((s) => Number(s.every))).toEqual([1000]);
  const tip = (await lastRow('audited')).seq;
  const anchored = await new Promise<AnchorMessage>((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`no anchor covering seq ${tip} posted within 30 s`)), 30_000);
    const check = () => {
      const found = posted.find((p) => BigInt(p.seq) >= tip);
      if (found) {
        clearTimeout(guard);
        resolve(found);
      }
    };
    onPost = check;
    check();
  });
  expect(anchored.anchor).toMatch(/^\d+:[0-9a-f]{64}:[0-9a-f]{64}$/);
  const line = h.logs.map((l) => JSON.parse(l) as { msg: string; anchor?: string; level: number }).find((l) => l.msg === 'audit anchor' && l.anchor === anchored.anchor);
  expect(line?.level).toBe(30); // info

  const accepted = await rekey(['audit', 'verify', '--anchor', anchored.anchor], cliEnv());
  expect(accepted.stdout).toContain('anchor matches');
  expect(accepted.code).toBe(0);
  const tampered = anchored.anchor.replace(/.$/, (c) => (c === '0' ? '1' : '0'));
  const forged = await rekey(['audit', 'verify', '--anchor', tampered], cliEnv());
  expect(forged.stdout).toContain('signature does not verify under REKEY_AUDIT_KEY');
  expect(forged.code).toBe(1);

  // Truncation the chain alone cannot show: the last two events of the secret, gone.
  const tail = await h.runtime.db.auditEvent.findMany({ where: { chain: 'audited', seq: { lte: BigInt(anchored.seq) } }, orderBy: { seq: 'desc' }, take: 2 });
  await runSql(env.databaseUrl, withoutTrigger([`DELETE FROM audit_events WHERE seq IN (${tail.map((r) => r.seq).join(', ')})`]));
  expect((await rekey(['audit', 'verify'], cliEnv())).code).toBe(0);
  const caught = await rekey(['audit', 'verify', '--anchor', anchored.anchor], cliEnv());
  expect(caught.stdout).toContain(`row ${anchored.seq} is the anchor, and the chains up to it are not what they were`);
  expect(caught.code).toBe(1);
});

it('the anchor job writes its anchor line under LOG_LEVEL=warn too: without a webhook, that line is the only copy outside PostgreSQL', async () => {
  const lines: string[] = [];
  const log = createLogger('warn', { write: (line: string) => void lines.push(line) });
  const { anchor } = await recordAnchor({ db: h.runtime.db, audit: h.runtime.audit, log, actor: 'test', webhook: undefined, notifier: h.runtime.notifier });
  const written = lines.map((l) => JSON.parse(l) as { msg: string; anchor?: string; level: number }).filter((l) => l.msg === 'audit anchor');
  expect(written.map((l) => [l.anchor, l.level])).toEqual([[anchor, 30]]);
  expect(lines.filter((l) => !l.includes('"audit anchor"'))).toEqual([]);
});

it('as the owner, with the trigger disabled: a forged row, an edited row and a re-chained chain are each named by verify', async () => {
  const rows = await h.runtime.db.auditEvent.findMany({ where: { chain: 'audited' }, orderBy: { seq: 'asc' } });
  expect(rows.length).toBeGreaterThan(6);
  const named = async () => {
    const result = await verifyAudit(h.runtime.db, h.runtime.audit);
    return result.ok ? 'intact' : `${result.seq}: ${result.problem}`;
  };

  // Forged: appended at the chain's end, hashed as the unkeyed chain was.
  const head = rows.at(-1)!;
  const forged = { ...head, seq: head.seq + 1000n, actor: 'mallory', prevHash: head.hash };
  await insert(env.databaseUrl, { ...forged, hash: unkeyedHash(forged) });
  expect(await named()).toMatch(new RegExp(`^${forged.seq}: its content does not match its hash`));
  await runSql(env.databaseUrl, withoutTrigger([`DELETE FROM audit_events WHERE seq = ${forged.seq}`]));

  // Edited, and re-hashed.
  const edited = { ...rows[2]!, actor: 'mallory' };
  await runSql(env.databaseUrl, withoutTrigger([`UPDATE audit_events SET actor = 'mallory', hash = '${unkeyedHash(edited)}' WHERE seq = ${edited.seq}`]));
  expect(await named()).toMatch(new RegExp(`^${edited.seq}: its content does not match its hash`));
  await runSql(env.databaseUrl, withoutTrigger([`UPDATE audit_events SET actor = '${rows[2]!.actor}', hash = '${rows[2]!.hash}' WHERE seq = ${edited.seq}`]));
  expect(await named()).toBe('intact');

  // Re-chained: a row deleted and every later row of its chain relinked and re-hashed.
  const statements = [`DELETE FROM audit_events WHERE seq = ${rows[3]!.seq}`];
  let prev = rows[2]!.hash;
  for (const row of rows.slice(4)) {
    const relinked = { ...row, prevHash: prev };
    prev = unkeyedHash(relinked);
    statements.push(`UPDATE audit_events SET prev_hash = '${relinked.prevHash}', hash = '${prev}' WHERE seq = ${row.seq}`);
  }
  await runSql(env.databaseUrl, withoutTrigger(statements));
  expect(await named()).toMatch(new RegExp(`^${rows[4]!.seq}: its content does not match its hash`));
});

it('rows written before REKEY_AUDIT_KEY keep verifying; the first anchor pins them, and rewriting them afterwards is caught', async () => {
  const name = `rekey_t_unkeyed_${id}`;
  const url = databaseUrl(name);
  await ensureDatabase(url);
  const db = createDb(url, 2);
  try {
    const all = listMigrations();
    await migrate(url, all.slice(0, all.findIndex((m) => m.name.endsWith('_audit_keyed'))));
    // Three events as the unkeyed chain wrote them: two in a secret's chain, one in ''.
    const old: Row[] = [];
    for (const [seq, chain] of [[1n, 'old'], [2n, ''], [3n, 'old']] as const) {
      const prevHash = old.findLast((r) => r.chain === chain)?.hash ?? '0'.repeat(64);
      const row = { seq, chain, at: new Date(), actor: 'cli', action: 'version.current', secret: chain || null, versionId: null, runId: null, data: {}, prevHash, keyId: null, hash: '' };
      row.hash = unkeyedHash(row);
      old.push(row);
      await runSql(url, [insertSql(row, false)]);
    }
    await runSql(url, ['SELECT setval(pg_get_serial_sequence(\'audit_events\', \'seq\'), 3)']);
    await migrate(url, all);
    const audit = new AuditLog(SecretValue.of(TEST_AUDIT_KEY));
    expect(await verifyAudit(db, audit)).toMatchObject({ ok: true, events: 3, unkeyed: 3, unkeyedPinned: false });
    await expect(runSql(url, [insertSql({ ...old[2]!, seq: 4n, prevHash: old[2]!.hash })])).rejects.toThrow(/audit_events_keyed/);

    // Two keyed events before the first anchor pins the unkeyed ones (a process wrote them before the anchor job ran).
    for (let i = 0; i < 2; i++) await db.$transaction((tx) => audit.append(tx, { actor: 'cli', action: 'version.current', secret: 'new', data: {} }));
    const { anchor } = await takeAnchor(db, audit, 'test');
    expect(await verifyAudit(db, audit, { anchor })).toMatchObject({ ok: true, events: 6, unkeyed: 3, unkeyedPinned: true });
    const epoch = await db.auditEvent.findFirstOrThrow({ where: { action: 'audit.keyed' } });
    // A walk stopped after the first keyed row, before the pinning one, and taken up: it carries the unkeyed rows' count and heads to check the pins with.
    const checkpoints: Checkpoint[] = [];
    await verifyAudit(db, audit, { anchor, batch: 1, checkpoint: { everyMs: 0, save: (c) => checkpoints.push(c) } });
    expect(checkpoints.map((c) => c.anchor.split(':')[0])).toEqual(['4', '5', '6']);
    expect(await verifyAudit(db, audit, { anchor, resume: checkpoints[0] })).toMatchObject({ ok: true, events: 6, unkeyed: 3, unkeyedPinned: true });

    // The owner drops the constraint and rewrites the secret's unkeyed chain consistently: still a valid unkeyed chain.
    const first = { ...old[0]!, actor: 'mallory' };
    first.hash = unkeyedHash(first);
    const second = { ...old[2]!, prevHash: first.hash };
    second.hash = unkeyedHash(second);
    await runSql(url, withoutTrigger(['ALTER TABLE audit_events DROP CONSTRAINT audit_events_keyed', `UPDATE audit_events SET actor = 'mallory', hash = '${first.hash}' WHERE seq = 1`, `UPDATE audit_events SET prev_hash = '${first.hash}', hash = '${second.hash}' WHERE seq = 3`]));
    const rewritten = await verifyAudit(db, audit);
    expect(rewritten.ok ? 'intact' : `${rewritten.seq}: ${rewritten.problem}`).toMatch(new RegExp(`^${epoch.seq}: pins the rows from before REKEY_AUDIT_KEY`));
  } finally {
    await db.$disconnect();
    await runSql(DATABASE_URL, [`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`]);
  }
});

it("as the owner, an unkeyed row slipped in before the first row of a log keyed from its start is named by verify, also once a restarted process's first anchor has pinned the rows before the key", async () => {
  const name = `rekey_t_prepend_${id}`;
  const url = databaseUrl(name);
  await ensureDatabase(url);
  let db = createDb(url, 2);
  try {
    await migrate(url);
    const audit = new AuditLog(SecretValue.of(TEST_AUDIT_KEY));
    for (const action of ['secret.added', 'version.current']) await db.$transaction((tx) => audit.append(tx, { actor: 'cli', action, secret: 'real' }));
    await takeAnchor(db, audit, 'test');
    const first = await db.auditEvent.findFirstOrThrow({ orderBy: { seq: 'asc' } });
    expect(first).toMatchObject({ seq: 1n, keyId: audit.keyId() });

    // Hashed as the chain was before it was keyed: anyone can, and the constraint is the owner's to drop.
    const forged: Row = { seq: 0n, chain: 'forged', at: new Date(), actor: 'cli', action: 'token.created', secret: 'forged', versionId: null, runId: null, data: { name: 'mallory' }, prevHash: '0'.repeat(64), keyId: null, hash: '' };
    forged.hash = unkeyedHash(forged);
    await runSql(url, ['ALTER TABLE audit_events DROP CONSTRAINT audit_events_keyed', insertSql(forged), 'ALTER TABLE audit_events ADD CONSTRAINT audit_events_keyed CHECK (key_id IS NOT NULL) NOT VALID']);
    const named = async () => {
      const result = await verifyAudit(db, audit);
      return result.ok ? `intact, ${result.unkeyed} unkeyed, pinned ${result.unkeyedPinned}` : `${result.seq}: ${result.problem}`;
    };
    expect(await named()).toMatch(/^0: /);
    // A process started afterwards takes its first anchor: that must not vouch for the row.
    await db.$disconnect();
    db = createDb(url, 2);
    await takeAnchor(db, audit, 'test');
    expect(await named()).toMatch(/^0: /);
  } finally {
    await db.$disconnect();
    await runSql(DATABASE_URL, [`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`]);
  }
});

/** A row as Prisma reads it (its JSON typed loosely). */
type Row = Omit<AuditRow, 'data'> & { data: unknown };

/** The chain's hash before it was keyed: anyone can compute it. */
function unkeyedHash(row: Row): string {
  const fields = [row.seq.toString(), row.at.toISOString(), row.actor, row.action, row.secret, row.versionId, row.runId, canonical(row.data), row.prevHash];
  if (row.chain !== '') fields.push(row.chain);
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    return `{${Object.keys(object).sort().map((k) => `${JSON.stringify(k)}:${canonical(object[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

async function lastRow(chain: string): Promise<Row> {
  return (await h.runtime.db.auditEvent.findFirstOrThrow({ where: { chain }, orderBy: { seq: 'desc' } }));
}

/** The rows up to `upTo` (all when not given), as they are now; workers may append meanwhile. */
async function snapshot(upTo?: bigint): Promise<Row[]> {
  return (await h.runtime.db.auditEvent.findMany({ where: upTo === undefined ? {} : { seq: { lte: upTo } }, orderBy: { seq: 'asc' } }));
}

/** The INSERT of a row; `keyed: false` for a table from before the key_id column. */
function insertSql(row: Row, keyed = true): string {
  const lit = (v: string | null) => (v === null ? 'NULL' : pg.escapeLiteral(v));
  return `INSERT INTO audit_events (seq, chain, at, actor, action, secret, version_id, run_id, data, prev_hash, hash${keyed ? ', key_id' : ''})
    VALUES (${row.seq}, ${lit(row.chain)}, ${lit(row.at.toISOString())}, ${lit(row.actor)}, ${lit(row.action)}, ${lit(row.secret)}, ${lit(row.versionId)}, ${lit(row.runId)}, ${lit(JSON.stringify(row.data))}, ${lit(row.prevHash)}, ${lit(row.hash)}${keyed ? `, ${lit(row.keyId)}` : ''})`;
}

async function insert(url: string, row: Row): Promise<void> {
  await runSql(url, [insertSql(row)]);
}

function withoutTrigger(statements: string[]): string[] {
  return ['ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update', ...statements, 'ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update'];
}
