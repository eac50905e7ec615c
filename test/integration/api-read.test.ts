/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument -- answers are JSON, checked field by field */
/**
 * Admin API reads (issue 16): secrets paged and filtered, one secret with its versions, runs
 * with their steps, leak reports with leak-to-blocked time, audit events, config revisions and
 * their diff; scope globs decide what a token sees; and no response of any route carries a
 * value or a fingerprint in full.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_PREFIX } from '../../src/api/route.js';
import { adminApiRoutes, apiRoutes } from '../../src/api/routes.js';
import { call, tokenFor } from '../support/api.js';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal, memoryConfig } from '../support/memory-provider.js';
import { until } from '../support/poll.js';
import { laterSchedule } from '../support/schedules.js';

const JOURNAL = 'api-read';
// Weekly, first due 12 hours from now: a firing during the run would add a run to payments-web's list.
const weekly = laterSchedule();
const SECRETS = {
  'payments-api': 'grace: 1h',
  'payments-web': `grace: 1h, schedule: { cron: "${weekly.cron}" }`,
  'billing-api': 'grace: 1h, retry: { attempts: 1, backoff: 20ms }',
  team: 'clients: [acme]',
};
let h: Harness;
let admin: string;
let payments: string;
let rotator: string;
let leakedRun: string;

beforeAll(async () => {
  h = await startHarness({ label: 'api-read', routes: [adminApiRoutes] });
  await h.apply(memoryConfig(JOURNAL, { 'payments-api': SECRETS['payments-api'] }));
  await h.apply(memoryConfig(JOURNAL, SECRETS));
  for (const name of ['payments-api', 'payments-api', 'payments-web', 'team/acme']) expect((await h.rotate(name)).status).toBe('succeeded');
  journal(JOURNAL).fail('deploy:edge', 1, false);
  expect((await h.rotate('billing-api')).status).toBe('rolled_back');
  // An operator's revoke of the current version: the leak path, an emergency rotation, a report.
  await h.runtime.engine.revoke('payments-web', 1);
  await until(async () => Boolean((await h.runtime.db.leakReport.findFirst())?.blockedAt), 20_000, 'the leaked key blocked');
  leakedRun = (await h.runtime.db.run.findFirstOrThrow({ where: { secret: { name: 'payments-web' }, trigger: 'leak' } })).id;
  await h.waitForRun(leakedRun);
  admin = await tokenFor(h, 'admin', ['admin']);
  payments = await tokenFor(h, 'payments-reader', ['read:payments-*']);
  rotator = await tokenFor(h, 'rotator', ['rotate']);
});
afterAll(() => h?.stop());

const names = (answer: { json: { items: Array<{ name: string }> } }) => answer.json.items.map((i) => i.name);

describe('secrets', () => {
  it('lists every secret by name, paged by cursor, with status and conditions', async () => {
    const all = await call(h, '/api/v1/secrets', { token: admin });
    expect(all.status).toBe(200);
    expect(names(all)).toEqual(['billing-api', 'payments-api', 'payments-web', 'team/acme']);
    const billing = all.json.items[0];
    expect(billing).toMatchObject({ status: 'no-current', conditions: ['no-current', 'failing'], currentVersion: null, lastRun: { status: 'rolled_back' } });
    expect(billing.lastRun.error).toContain('injected failure');
    expect(all.json.items[1]).toMatchObject({ status: 'healthy', conditions: [], currentVersion: 2 });
    const seen: string[] = [];
    let next: string | null = null;
    do {
      const page = await call(h, `/api/v1/secrets?limit=1${next ? `&after=${encodeURIComponent(next)}` : ''}`, { token: admin });
      seen.push(...names(page));
      next = page.json.next;
    } while (next);
    expect(seen).toEqual(names(all));
  });

  it('a name glob of many stars is answered at once: matching never backtracks through the splits of a name', async () => {
    // `*` twenty times: the plain regex form tries every split of each name among the stars (seconds per secret, the event loop held).
    const started = performance.now();
    const answer = await call(h, `/api/v1/secrets?name=${'*'.repeat(20)}!`, { token: payments });
    expect({ status: answer.status, names: names(answer) }).toEqual({ status: 200, names: [] });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(names(await call(h, `/api/v1/secrets?name=${encodeURIComponent('*-*p**')}`, { token: admin }))).toEqual(['billing-api', 'payments-api']);
  });

  it('filters by name glob and status', async () => {
    expect(names(await call(h, '/api/v1/secrets?name=payments-*', { token: admin }))).toEqual(['payments-api', 'payments-web']);
    expect(names(await call(h, '/api/v1/secrets?status=failing', { token: admin }))).toEqual(['billing-api']);
    expect(names(await call(h, '/api/v1/secrets?status=healthy', { token: admin }))).not.toContain('billing-api');
    const bad = await call(h, '/api/v1/secrets?status=sideways&limit=lots', { token: admin });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ code: 'REKEY_API_INVALID_REQUEST' });
    expect(bad.json.issues.map((i: { path: string }) => i.path).sort()).toEqual(['query.limit', 'query.status']);
    expect(bad.text).not.toContain('sideways');
  });

  it('a NUL character in a name, cursor or filter is a 400 naming the field, not a database error (500)', async () => {
    for (const [path, field] of [
      ['/api/v1/secrets/payments%00api', 'path.name'],
      ['/api/v1/secrets?after=payments%00', 'query.after'],
      ['/api/v1/audit?actor=token%00admin', 'query.actor'],
      ['/api/v1/runs?secret=payments-api%00', 'query.secret'],
    ]) {
      const answer = await call(h, path!, { token: admin });
      expect([path, answer.status, answer.json?.code, answer.json?.issues?.map((i: { path: string }) => i.path)]).toEqual([path, 400, 'REKEY_API_INVALID_REQUEST', [field]]);
    }
  });

  it("a page's next rotations (one Redis command for the page) are the schedules' next times, as one secret's detail reads them", async () => {
    const items = (await call(h, '/api/v1/secrets', { token: admin })).json.items as Array<{ name: string; nextRotation: string | null }>;
    const scheduled = items.filter((i) => i.nextRotation !== null);
    expect(scheduled.map((i) => i.name)).toEqual(['payments-web']);
    const detail = await call(h, '/api/v1/secrets/payments-web', { token: admin });
    expect(detail.json.nextRotation).toBe(scheduled[0]!.nextRotation);
    expect(scheduled[0]!.nextRotation).toBe(weekly.next.toISOString());
  });

  it('each status filter lists exactly the secrets meeting it, paged by cursor (the database narrows, never drops one)', async () => {
    const all = (await call(h, '/api/v1/secrets?limit=200', { token: admin })).json.items as Array<{ name: string; status: string; conditions: string[] }>;
    expect(new Set(all.map((s) => s.status)).size).toBeGreaterThan(1);
    for (const status of ['leaked', 'no-current', 'failing', 'drifted', 'rotating', 'healthy']) {
      const seen: string[] = [];
      let next: string | null = null;
      do {
        const page = await call(h, `/api/v1/secrets?status=${status}&limit=1${next ? `&after=${encodeURIComponent(next)}` : ''}`, { token: admin });
        seen.push(...names(page));
        next = page.json.next;
      } while (next);
      const meeting = all.filter((s) => (status === 'healthy' ? s.status === 'healthy' : s.conditions.includes(status))).map((s) => s.name);
      expect(seen, status).toEqual(meeting);
    }
  });

  it('one secret: versions with short fingerprints, times and what issued them, delivery and sync', async () => {
    const answer = await call(h, '/api/v1/secrets/payments-api', { token: admin });
    expect(answer.status).toBe(200);
    const [v2, v1] = answer.json.versions;
    expect(v2).toMatchObject({ number: 2, state: 'current', issuedBy: { trigger: 'manual' }, deliveries: [{ target: 'edge', status: 'verified' }] });
    expect(v1).toMatchObject({ number: 1, state: 'previous' });
    expect(v1.graceEndsAt).not.toBeNull();
    expect(v2.fingerprint).toHaveLength(12);
    const leaked = await call(h, '/api/v1/secrets/payments-web', { token: admin });
    expect(leaked.json.versions.find((v: { number: number }) => v.number === 1)).toMatchObject({ state: 'revoked' });
    expect(leaked.json.versions.find((v: { number: number }) => v.number === 1).compromisedAt).not.toBeNull();
    expect((await call(h, '/api/v1/secrets/team%2Facme', { token: admin })).json).toMatchObject({ name: 'team/acme', family: 'team', client: 'acme' });
    expect((await call(h, '/api/v1/secrets/nope', { token: admin })).json.code).toBe('REKEY_API_NOT_FOUND');
  });

  it('`rekey list` reads the same model: the same secrets, statuses and conditions', async () => {
    const api = (await call(h, '/api/v1/secrets', { token: admin })).json.items;
    const cli = await rekey(['list', '--json'], h.childEnv());
    expect(cli.code).toBe(0);
    const rows = JSON.parse(cli.stdout) as Array<{ name: string; status: string; conditions: string[]; currentVersion: number | null }>;
    expect(rows.map((r) => [r.name, r.status, r.conditions, r.currentVersion])).toEqual(api.map((i: { name: string; status: string; conditions: string[]; currentVersion: number | null }) => [i.name, i.status, i.conditions, i.currentVersion]));
    const failing = await rekey(['list', '--status', 'failing'], h.childEnv());
    expect(failing.stdout).toMatch(/^billing-api {2}no-current {2}current - {2}rotated - {2}next - \(no-current, failing\)\n$/);
    expect((await rekey(['list', '--name', 'payments-*'], h.childEnv())).stdout.trim().split('\n').map((l) => l.split(' ')[0])).toEqual(['payments-api', 'payments-web']);
    expect((await rekey(['list', '--status', 'sideways'], h.childEnv())).code).toBe(2);
  });

  it('`rekey list` is paged like `rekey status`: by name, --limit, and the command for the next page', async () => {
    const all = (await call(h, '/api/v1/secrets', { token: admin })).json.items.map((i: { name: string }) => i.name) as string[];
    const seen: string[] = [];
    let argv = ['list', '--limit', '2'];
    for (let pages = 0; pages <= all.length; pages++) {
      const page = await rekey(argv, h.childEnv());
      expect(page.code).toBe(0);
      const [rows, hint] = page.stdout.trim().split('\n\n') as [string, string?];
      seen.push(...rows.split('\n').map((l) => l.split(' ')[0]!));
      if (!hint) break;
      expect(hint).toBe(`next page: rekey list --after ${seen.at(-1)} --limit 2`);
      argv = hint.slice('next page: rekey '.length).split(' ');
    }
    expect(seen).toEqual(all);
    expect(all.length).toBeGreaterThan(2);
    const filtered = await rekey(['list', '--name', 'payments-*', '--limit', '1'], h.childEnv());
    expect(filtered.stdout).toMatch(/^payments-api .*\n\nnext page: rekey list --name 'payments-\*' --after payments-api --limit 1\n$/);
  });
});

describe('scopes', () => {
  it('a glob-limited token sees only its secrets, and is refused the others and what belongs to none', async () => {
    expect(names(await call(h, '/api/v1/secrets', { token: payments }))).toEqual(['payments-api', 'payments-web']);
    expect((await call(h, '/api/v1/secrets/billing-api', { token: payments })).json.code).toBe('REKEY_API_FORBIDDEN');
    expect((await call(h, '/api/v1/config/revisions', { token: payments })).status).toBe(403);
    const events = await call(h, '/api/v1/audit?limit=500', { token: payments });
    expect(new Set(events.json.items.map((e: { secret: string }) => e.secret))).toEqual(new Set(['payments-api', 'payments-web']));
    const runs = await call(h, '/api/v1/runs?limit=500', { token: payments });
    expect(runs.json.items.every((r: { secret: string }) => r.secret.startsWith('payments-'))).toBe(true);
    const billingRun = await h.runtime.db.run.findFirstOrThrow({ where: { secret: { name: 'billing-api' } } });
    expect((await call(h, `/api/v1/runs/${billingRun.id}`, { token: payments })).status).toBe(403);
  });

  it('a token without read is refused every read: 403 REKEY_API_FORBIDDEN', async () => {
    for (const path of ['/secrets', '/secrets/payments-api', '/runs', '/leaks', '/audit', '/config/revisions']) {
      const answer = await call(h, `${API_PREFIX}${path}`, { token: rotator });
      expect([path, answer.status, answer.json.code]).toEqual([path, 403, 'REKEY_API_FORBIDDEN']);
    }
  });
});

describe('history', () => {
  it('runs newest first, one with its steps from the audit log', async () => {
    const runs = await call(h, '/api/v1/runs?secret=billing-api', { token: admin });
    expect(runs.json.items[0]).toMatchObject({ secret: 'billing-api', kind: 'rotation', status: 'rolled_back', trigger: 'manual' });
    const one = await call(h, `/api/v1/runs/${leakedRun}`, { token: admin });
    expect(one.json).toMatchObject({ secret: 'payments-web', emergency: true, status: 'succeeded' });
    expect(one.json.steps.map((s: { action: string }) => s.action)).toEqual(expect.arrayContaining(['run.started', 'version.issuing', 'run.finished']));
    const seqs = one.json.steps.map((s: { seq: string }) => Number(s.seq));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });

  it('leak reports with their outcome and leak-to-blocked time', async () => {
    const leaks = await call(h, '/api/v1/leaks', { token: admin });
    expect(leaks.json.items).toHaveLength(1);
    const [report] = leaks.json.items;
    expect(report).toMatchObject({ secret: 'payments-web', version: 1 });
    expect(report.fingerprint).toHaveLength(12);
    expect(report.leakToBlockedMs).toBeGreaterThanOrEqual(0);
  });

  it('audit events filtered by secret, action and actor, paged by seq', async () => {
    const finished = await call(h, '/api/v1/audit?secret=payments-api&action=run.finished', { token: admin });
    expect(finished.json.items).toHaveLength(2);
    const byActor = await call(h, '/api/v1/audit?actor=test&action=token.created', { token: admin });
    expect(byActor.json.items.map((e: { data: { name: string } }) => e.data.name)).toEqual(['rotator', 'payments-reader', 'admin']);
    const first = await call(h, '/api/v1/audit?limit=3', { token: admin });
    const second = await call(h, `/api/v1/audit?limit=3&after=${first.json.next}`, { token: admin });
    expect(BigInt(second.json.items[0].seq)).toBeLessThan(BigInt(first.json.items[2].seq));
  });

  it('`rekey history` and `rekey audit log` read the same model as /runs, /secrets/:name and /audit', async () => {
    const runs = (await call(h, '/api/v1/runs?secret=payments-web', { token: admin })).json.items;
    const cli = await rekey(['history', 'payments-web', '--json'], h.childEnv());
    expect(cli.code).toBe(0);
    const shown = JSON.parse(cli.stdout) as { versions: Array<{ number: number; state: string; fingerprint: string }>; runs: Array<{ id: string }> };
    expect(shown.runs.map((r) => r.id)).toEqual(runs.map((r: { id: string }) => r.id));
    const versions = (await call(h, '/api/v1/secrets/payments-web', { token: admin })).json.versions;
    expect(shown.versions).toEqual(versions);
    const text = (await rekey(['history', 'payments-web'], h.childEnv())).stdout;
    expect(text).toMatch(/^ {2}v1 {2}revoked +\S{12} {2}issued .*leaked .*revoked /m);
    expect(text).toMatch(/rotation \(emergency\) by leak +succeeded/);
    const unknown = await rekey(['history', 'nope'], h.childEnv());
    expect({ code: unknown.code, stderr: unknown.stderr }).toEqual({ code: 1, stderr: 'rekey: no secret named nope\n' });

    const api = (await call(h, '/api/v1/audit?secret=payments-api&action=run.finished', { token: admin })).json;
    const log = await rekey(['audit', 'log', 'payments-api', '--action', 'run.finished', '--json'], h.childEnv());
    expect(JSON.parse(log.stdout)).toEqual(api);
    const page = await rekey(['audit', 'log', '--limit', '2'], h.childEnv());
    const [first, second, more] = page.stdout.trim().split('\n');
    expect(Number(first!.trim().split(' ')[0])).toBeGreaterThan(Number(second!.trim().split(' ')[0]));
    expect(more).toMatch(/^\(more: --after \d+\)$/);
    expect((await rekey(['audit', 'log', '--since', 'yesterday'], h.childEnv())).code).toBe(2);
    expect((await rekey(['audit', 'log', '--since', '2999-01-01'], h.childEnv())).stdout).toBe('No audit events match.\n');
  });

  it('config revisions and the diff between two', async () => {
    const revisions = await call(h, '/api/v1/config/revisions', { token: admin });
    expect(revisions.json.items.map((r: { id: number }) => r.id)).toEqual([2, 1]);
    const doc = await call(h, '/api/v1/config/revisions/2', { token: admin });
    expect(Object.keys(doc.json.document.secrets).sort()).toEqual(Object.keys(SECRETS).sort());
    const diff = await call(h, '/api/v1/config/revisions/2/diff', { token: admin });
    expect(diff.json).toEqual({ from: 1, to: 2, sections: [{ section: 'secrets', added: ['billing-api', 'payments-web', 'team'], changed: [], removed: [] }] });
    expect((await call(h, '/api/v1/config/revisions/9', { token: admin })).status).toBe(404);
  });
});

// After the history tests: its token would be one more token.created event there.
describe('scopes in filters', () => {
  it("a glob-limited token naming another secret in a filter is refused, not shown that secret's runs, events or leak reports", async () => {
    const billing = await tokenFor(h, 'billing-reader', ['read:billing-*']);
    expect((await call(h, '/api/v1/leaks', { token: billing })).json.items).toEqual([]);
    for (const path of ['/runs?secret=payments-web', '/audit?secret=payments-web', '/leaks?secret=payments-web']) {
      const answer = await call(h, `${API_PREFIX}${path}`, { token: billing });
      expect([path, answer.status, answer.json.code]).toEqual([path, 403, 'REKEY_API_FORBIDDEN']);
    }
  });
});

it('an id or cursor beyond its column (int4, int8) is a 400 naming the field, not a 500 whose log line quotes it', async () => {
  const paths = ['/audit?after=9999999999999999999', '/config/revisions?after=99999999999', '/config/revisions/99999999999', '/config/revisions/2/diff?from=99999999999'];
  for (const path of paths) {
    const answer = await call(h, `${API_PREFIX}${path}`, { token: admin });
    expect([path, answer.status, answer.json.code]).toEqual([path, 400, 'REKEY_API_INVALID_REQUEST']);
  }
  const revoke = await call(h, `${API_PREFIX}/secrets/payments-api/versions/99999999999/revoke`, { token: admin, method: 'POST' });
  expect([revoke.status, revoke.json.code]).toEqual([400, 'REKEY_API_INVALID_REQUEST']);
  expect(h.logs.filter((line) => line.includes('99999999999'))).toEqual([]);
});

/** A concrete request for each route of the API; a route missing here fails the test below. */
async function samples(): Promise<Record<string, string[]>> {
  const run = await h.runtime.db.run.findFirstOrThrow();
  // A verification of the audit log, run to its end (its record holds the anchor, counts and seqs).
  const verification = (await call(h, `${API_PREFIX}/audit/verifications`, { token: admin, method: 'POST', body: {} })).json as { id: string };
  await until(async () => (await call(h, `${API_PREFIX}/audit/verifications/${verification.id}`, { token: admin })).json.state === 'passed', 20_000, 'the audit verification passed');
  return {
    'GET /secrets': ['/secrets', '/secrets?status=failing'],
    'GET /secrets/:name': ['/secrets/payments-api', '/secrets/payments-web', '/secrets/billing-api', '/secrets/team%2Facme'],
    'GET /runs': ['/runs?limit=500'],
    'GET /runs/:id': [`/runs/${run.id}`, `/runs/${leakedRun}`],
    'GET /leaks': ['/leaks'],
    'GET /audit': ['/audit?limit=500'],
    'GET /audit/verifications': ['/audit/verifications'],
    'GET /audit/verifications/:id': [`/audit/verifications/${verification.id}`],
    'GET /config/revisions': ['/config/revisions'],
    'GET /config/revisions/:id': ['/config/revisions/1', '/config/revisions/2'],
    'GET /config/revisions/:id/diff': ['/config/revisions/2/diff'],
    'GET /openapi.json': ['/openapi.json'],
  };
}

it('no response of any route carries a value, or a fingerprint in full', async () => {
  const byRoute = await samples();
  expect(apiRoutes.filter((r) => r.method === 'GET').map((r) => `${r.method} ${r.path}`).filter((k) => !byRoute[k])).toEqual([]);
  const j = journal(JOURNAL);
  const values = [...new Set([...j.values(), ...j.deployedValues])];
  expect(values.length).toBeGreaterThanOrEqual(5);
  const fingerprints = (await h.runtime.db.version.findMany({ select: { fingerprint: true } })).flatMap((v) => (v.fingerprint ? [v.fingerprint] : []));
  expect(fingerprints.length).toBeGreaterThanOrEqual(5);
  let bytes = 0;
  for (const path of Object.values(byRoute).flat()) {
    const answer = await call(h, `${API_PREFIX}${path}`, { token: admin });
    expect([path, answer.status]).toEqual([path, 200]);
    bytes += answer.text.length;
    for (const value of values) expect(answer.text.includes(value), `${path} carries a value`).toBe(false);
    for (const fingerprint of fingerprints) expect(answer.text.includes(fingerprint), `${path} carries a full fingerprint`).toBe(false);
  }
  expect(bytes).toBeGreaterThan(10_000);
});
