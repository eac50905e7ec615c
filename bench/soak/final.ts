/**
 * The checks that need the whole history, once the soak has settled (no fault, no
 * schedule, every run finished):
 *  1: every value the soak ever read is absent from a dump of every PostgreSQL table, every
 *     Redis key, every process's log file and every /metrics page;
 *  2/R: HAProxy's live map holds every current key and nothing revoked, failed or unknown;
 *  3: from the audit log, no promoted version was retired or revoked (unless leaked) before
 *     its successor was verified at every target;
 *  4: exactly one current version per secret, and it is the one the store serves as current (the
 *     store check never found them apart: a late store.promote, its driver frozen past its lease,
 *     must never land); R: the store serves nothing rekey took out of service as current;
 *  5: no run still running or abandoned (`failed`);
 *  6: no two runs per idempotency key, no two retirement/revocation runs per version, no
 *     two versions or promotions per rotation run, one leak report per delivery;
 *  7: the audit hash chains verify (in process and with `rekey audit verify`), and every
 *     version's and delivery's last audited state is the state its row holds.
 */
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Pool } from 'pg';
import { verifyAudit } from '../../src/db/audit-verify.js';
import { dumpDatabase, dumpRedis } from '../../test/support/dumps.js';
import type { Fleet } from './fleet.js';
import type { SoakState } from './state.js';

const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface FinalInputs {
  fleet: Fleet;
  databaseUrl: string;
  redisUrl: string;
  mapKeys: () => Promise<string[]>;
  env: NodeJS.ProcessEnv;
}

export async function finalChecks(s: SoakState, inputs: FinalInputs): Promise<void> {
  const { pool } = s;
  await runsAndVersions(s, pool);
  await storeMatchesDatabase(s, pool);
  await gatewayMatchesDatabase(s, pool, await inputs.mapKeys());
  await successorVerifiedFirst(s, pool);
  await duplicates(s, pool);
  await auditComplete(s, pool, inputs.env);
  await noPlaintext(s, pool, inputs);
}

async function runsAndVersions(s: SoakState, pool: Pool): Promise<void> {
  const { rows: open } = await pool.query<{ id: string; kind: string; step: string; name: string; status: string; error: string | null }>(
    `SELECT r.id, r.kind, r.step, s.name, r.status, r.error FROM runs r JOIN secrets s ON s.id = r.secret_id WHERE r.status IN ('running', 'failed')`,
  );
  for (const r of open) s.violate(5, `${r.kind} run ${r.id} of ${r.name} ended ${r.status} at ${r.step} (${r.error ?? '-'})`, r.id);
  const { rows } = await pool.query<{ name: string; currents: number }>(
    `SELECT s.name, count(v.id) FILTER (WHERE v.state = 'current')::int AS currents
       FROM secrets s LEFT JOIN versions v ON v.secret_id = s.id WHERE s.last_promoted_at IS NOT NULL GROUP BY s.name`,
  );
  for (const r of rows) if (r.currents !== 1) s.violate(4, `${r.name} ends with ${r.currents} current versions`, `${r.name}:end`);
}

/** The local store's current stage (its table is in rekey's database) against rekey's current versions. */
async function storeMatchesDatabase(s: SoakState, pool: Pool): Promise<void> {
  const { rows: served } = await pool.query<{ secret: string; number: number | null; state: string | null; version_id: string }>(
    `SELECT l.secret, v.number, v.state, l.version_id FROM local_store_versions l LEFT JOIN versions v ON v.id = l.version_id
      WHERE 'current' = ANY(l.stages) AND l.destroyed_at IS NULL`,
  );
  for (const r of served) {
    if (r.state === 'current') continue;
    const what = `the store serves ${r.number === null ? `version ${r.version_id}, unknown to rekey,` : `${r.secret} v${r.number}, which is ${r.state},`} as current`;
    // A live version served in current's place breaks 4; one rekey took out of service (or never knew) is a key that must not be handed out.
    s.violate(r.state === 'previous' || r.state === 'pending' ? 4 : 'R', what, `${r.version_id}:store`);
  }
  const { rows: unserved } = await pool.query<{ name: string; number: number }>(
    `SELECT s.name, v.number FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.state = 'current' AND NOT EXISTS
       (SELECT 1 FROM local_store_versions l WHERE l.version_id = v.id AND 'current' = ANY(l.stages) AND l.destroyed_at IS NULL)`,
  );
  for (const r of unserved) s.violate(4, `${r.name} v${r.number} is current but the store does not serve it as current`, `${r.name}:store`);
  const { rows: drift } = await pool.query<{ seq: string; secret: string; found: string; repaired: string }>(
    `SELECT seq::text, secret, data->>'found' AS found, data->>'repaired' AS repaired FROM audit_events WHERE action = 'store.drift' ORDER BY seq`,
  );
  for (const d of drift) s.violate(4, `the store check found ${d.secret}'s store apart from rekey (${d.found}, repaired: ${d.repaired}; audit #${d.seq})`, `drift:${d.seq}`);
}

async function gatewayMatchesDatabase(s: SoakState, pool: Pool, keys: string[]): Promise<void> {
  const fingerprint = (key: string) => s.runtime.engine.deps.fingerprint(key);
  const { rows } = await pool.query<{ fingerprint: string; state: string; number: number; name: string }>(
    `SELECT v.fingerprint, v.state, v.number, s.name FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE v.fingerprint IS NOT NULL`,
  );
  const byFingerprint = new Map(rows.map((r) => [r.fingerprint, r]));
  const seen = new Set<string>();
  for (const key of keys) {
    const fp = fingerprint(key);
    seen.add(fp);
    const v = byFingerprint.get(fp);
    if (!v) s.violate('R', `HAProxy accepts a key no version has (fingerprint ${fp.slice(0, 16)}…)`, fp);
    else if (v.state !== 'current' && v.state !== 'previous') s.violate('R', `HAProxy still accepts ${v.name} v${v.number}, which is ${v.state}`, fp);
  }
  for (const r of rows) if (r.state === 'current' && !seen.has(r.fingerprint)) s.violate(2, `HAProxy's map lacks the current key of ${r.name} (v${r.number})`, `${r.fingerprint}:map`);
}

async function successorVerifiedFirst(s: SoakState, pool: Pool): Promise<void> {
  const { rows: versions } = await pool.query<{ id: string; secret: string; number: number; compromised_at: Date | null; promoted_at: Date }>(
    `SELECT v.id, s.name AS secret, v.number, v.compromised_at, v.promoted_at FROM versions v JOIN secrets s ON s.id = v.secret_id
      WHERE v.promoted_at IS NOT NULL ORDER BY s.name, v.number`,
  );
  const { rows: events } = await pool.query<{ seq: string; version_id: string; action: string; target: string | null }>(
    `SELECT seq::text, version_id, action, data->>'target' AS target FROM audit_events
      WHERE action IN ('delivery.verified', 'delivery.retired', 'version.retired', 'version.revoked') AND version_id IS NOT NULL`,
  );
  const byVersion = new Map<string, Array<{ seq: bigint; action: string; target: string | null }>>();
  for (const e of events) {
    const list = byVersion.get(e.version_id) ?? [];
    list.push({ seq: BigInt(e.seq), action: e.action, target: e.target });
    byVersion.set(e.version_id, list);
  }
  const targetsOf = async (secret: string) => (await s.runtime.resolver.resolve(secret)).policy.targets;
  for (let i = 0; i < versions.length; i++) {
    const v = versions[i]!;
    if (v.compromised_at) continue; // leaks may take a version down before anything replaced it
    const takenDown = (byVersion.get(v.id) ?? []).filter((e) => e.action !== 'delivery.verified');
    if (!takenDown.length) continue;
    const first = takenDown.reduce((a, b) => (a.seq < b.seq ? a : b));
    const successor = versions[i + 1]?.secret === v.secret ? versions[i + 1] : undefined;
    if (!successor) {
      s.violate(3, `${v.secret} v${v.number} was taken down (${first.action}) with no promoted successor`, v.id);
      continue;
    }
    const verified = (byVersion.get(successor.id) ?? []).filter((e) => e.action === 'delivery.verified');
    for (const target of await targetsOf(v.secret)) {
      const at = verified.find((e) => e.target === target);
      if (!at || at.seq > first.seq) {
        s.violate(3, `${v.secret} v${v.number} was taken down (${first.action}, audit #${first.seq}) before v${successor.number} was verified at ${target}${at ? ` (#${at.seq})` : ''}`, v.id);
      }
    }
  }
}

async function duplicates(s: SoakState, pool: Pool): Promise<void> {
  const checks: Array<[string, string]> = [
    ['runs sharing an idempotency key', `SELECT idempotency_key AS k, count(*)::int AS n FROM runs GROUP BY 1 HAVING count(*) > 1`],
    ['retirement/revocation runs of one version', `SELECT kind || ':' || version_id AS k, count(*)::int AS n FROM runs WHERE kind <> 'rotation' GROUP BY 1 HAVING count(*) > 1`],
    ['versions made by one rotation run', `SELECT r.id::text AS k, count(v.id)::int AS n FROM runs r JOIN versions v ON v.id = r.version_id WHERE r.kind = 'rotation' GROUP BY 1 HAVING count(v.id) > 1`],
    ['promotions audited for one run', `SELECT run_id AS k, count(*)::int AS n FROM audit_events WHERE action = 'version.current' GROUP BY 1 HAVING count(*) > 1`],
    ['promotions audited for one version', `SELECT version_id AS k, count(*)::int AS n FROM audit_events WHERE action = 'version.current' GROUP BY 1 HAVING count(*) > 1`],
    ['leak reports of one delivery', `SELECT source || ':' || delivery_id AS k, count(*)::int AS n FROM leak_reports GROUP BY 1 HAVING count(*) > 1`],
    [
      'rotation runs of one secret running at the same time',
      // Ordered by the audit log, not by timestamps: a run's started_at is taken before its
      // insert waits on the one-running-rotation index for the previous run's commit, so
      // wall-clock spans of back-to-back runs can overlap by the length of that wait.
      `WITH spans AS (
         SELECT r.id, r.secret_id, s.seq AS started, f.seq AS finished FROM runs r
           JOIN audit_events s ON s.run_id = r.id::text AND s.action = 'run.started'
           LEFT JOIN audit_events f ON f.run_id = r.id::text AND f.action = 'run.finished'
          WHERE r.kind = 'rotation')
       SELECT a.id::text || '/' || b.id::text AS k, 2 AS n FROM spans a JOIN spans b ON a.secret_id = b.secret_id AND a.id < b.id
        WHERE a.started < coalesce(b.finished, 9223372036854775807) AND b.started < coalesce(a.finished, 9223372036854775807)`,
    ],
    [
      'cron due times with more than one outcome',
      `SELECT k, count(*)::int AS n FROM (
         SELECT idempotency_key AS k FROM runs WHERE idempotency_key LIKE 'cron:%'
         UNION ALL SELECT data->>'idempotencyKey' FROM audit_events WHERE action IN ('trigger.joined', 'trigger.stale') AND data->>'idempotencyKey' LIKE 'cron:%'
       ) t GROUP BY k HAVING count(*) > 1`,
    ],
  ];
  for (const [what, sql] of checks) {
    const { rows } = await pool.query<{ k: string; n: number }>(sql);
    for (const r of rows.slice(0, 20)) s.violate(6, `${what}: ${r.k} (${r.n})`);
    if (rows.length > 20) s.violate(6, `${what}: ${rows.length - 20} more`);
  }
}

async function auditComplete(s: SoakState, pool: Pool, env: NodeJS.ProcessEnv): Promise<void> {
  const verified = await verifyAudit(s.runtime.db, s.runtime.audit);
  if (!verified.ok) s.violate(7, `audit chain broken at row ${verified.seq}: ${verified.problem}`);
  const cli = spawnSync(process.execPath, ['--import', 'tsx', cliPath(), 'audit', 'verify'], { env, encoding: 'utf8', timeout: 120_000 });
  if (cli.status !== 0) s.violate(7, `rekey audit verify exited ${cli.status}: ${(cli.stdout + cli.stderr).trim().slice(0, 500)}`);
  // The last audited state of each version and delivery: one pass over the log each (a lookup
  // per row is quadratic: 7 minutes at 14,000 rotations, with no index on version_id).
  const { rows: versions } = await pool.query<{ id: string; name: string; number: number; state: string; audited: string | null }>(`
    WITH last AS (SELECT DISTINCT ON (version_id) version_id, substr(action, 9) AS audited FROM audit_events
                   WHERE version_id IS NOT NULL AND action LIKE 'version.%' AND action NOT IN ('version.issued', 'version.leaked', 'version.grace-cut')
                   ORDER BY version_id, seq DESC)
    SELECT v.id, s.name, v.number, v.state, last.audited
      FROM versions v JOIN secrets s ON s.id = v.secret_id LEFT JOIN last ON last.version_id = v.id::text`);
  for (const v of versions) if (v.audited !== v.state) s.violate(7, `${v.name} v${v.number} is ${v.state} but its last audited state is ${v.audited ?? 'none'}`, v.id);
  const { rows: deliveries } = await pool.query<{ version_id: string; target: string; status: string; audited: string | null }>(`
    WITH last AS (SELECT DISTINCT ON (version_id, data->>'target') version_id, data->>'target' AS target, substr(action, 10) AS audited FROM audit_events
                   WHERE version_id IS NOT NULL AND action LIKE 'delivery.%' ORDER BY version_id, data->>'target', seq DESC)
    SELECT d.version_id, d.target, d.status, last.audited
      FROM deliveries d LEFT JOIN last ON last.version_id = d.version_id::text AND last.target = d.target`);
  for (const d of deliveries) if (d.audited !== d.status) s.violate(7, `delivery of ${d.version_id} to ${d.target} is ${d.status} but audited ${d.audited ?? 'never'}`);
}

function cliPath(): string {
  return cli;
}

async function noPlaintext(s: SoakState, pool: Pool, inputs: FinalInputs): Promise<void> {
  const haystacks: Array<[string, string]> = [
    ['PostgreSQL', await dumpDatabase(inputs.databaseUrl)],
    ['Redis', await dumpRedis(inputs.redisUrl)],
  ];
  for (const p of inputs.fleet.all) {
    haystacks.push([`${p.name} log`, await readFile(p.logFile, 'latin1')]);
    if (p.url) haystacks.push([`${p.name} /metrics`, await fetch(new URL('/metrics', p.url)).then((r) => r.text(), () => '')]);
  }
  const fingerprints = [...s.values.keys()];
  if (s.values.size === 0) s.violate(1, 'the soak read no value: the plaintext search proves nothing');
  // The search must be able to see: the logs and the database do hold fingerprints.
  const { rows } = await pool.query<{ fingerprint: string }>('SELECT fingerprint FROM versions WHERE id = ANY($1::uuid[]) AND fingerprint IS NOT NULL LIMIT 1', [fingerprints]);
  if (rows[0] && !haystacks[0]![1].includes(rows[0].fingerprint)) s.violate(1, 'the database dump does not contain a known fingerprint: the search is blind');
  // The prefix is public; the random body alone (36 base62 characters) must not appear either.
  // Every 36-character window of every alphanumeric run in a haystack goes into a set: one
  // pass per haystack instead of one substring search per value (tens of MB of logs).
  for (const [where, hay] of haystacks) {
    const windows = new Set<string>();
    for (const match of hay.matchAll(/[A-Za-z0-9]{36,}/g)) {
      for (let i = 0; i + 36 <= match[0].length; i++) windows.add(match[0].slice(i, i + 36));
    }
    for (const [versionId, value] of s.values) {
      const body = value.reveal().replace(/^rk_soak_/, '');
      if (body.length !== 36 || windows.has(body)) s.violate(1, `a value of version ${versionId} is in ${where}`, `${versionId}:${where}`);
    }
  }
}
