/** The first hour with the `rekey` command, run as a real process: what it prints and how it exits (issue 14). */
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureDatabase, listMigrations, migrate } from '../../src/db/migrate.js';
import { CLOSED_PORT } from '../support/closed-port.js';
import { journal } from '../support/memory-provider.js';
import { startHarness, type Harness } from '../support/harness.js';
import { kill, runRekey, spawnRekey } from '../support/processes.js';
import { scanKeys, testRedis } from '../support/redis.js';
import { laterSchedule } from '../support/schedules.js';
import { DATABASE_URL, databaseUrl } from '../support/services.js';
import pg from 'pg';

// Each test starts several rekey processes through tsx: seconds each on a loaded machine.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

const dir = mkdtempSync(join(tmpdir(), 'rekey-first-hour-'));
let n = 0;
function file(yaml: string): string {
  const path = join(dir, `rekey-${++n}.yaml`);
  writeFileSync(path, yaml);
  return path;
}
// wall-clock schedules: the one daily pattern left ("0 0 12 * * *") goes to `apply --dry-run` only, which makes no scheduler.
// Every applied schedule is first due 12 hours from now, so no process of this file sees one fire.
const later = laterSchedule();
const secretWith = (schedule: string) => `
providers:
  vault: { type: local }
secrets:
  k:
    store: { provider: vault }
    issuer: { type: random }
    schedule: ${schedule}
`;

describe('rekey against a database', () => {
  let h: Harness;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    h = await startHarness({ label: 'first-hour', workers: false });
    env = h.childEnv();
  });
  afterAll(() => h.stop());

  it('a cron pattern with fewer or more than 5/6 fields is refused, naming the field, not padded', async () => {
    for (const [cron, fields] of [['0 3 * *', 4], ['5', 1], ['0 0 3 * * * 2026', 7]] as const) {
      const result = await runRekey(['apply', '-f', file(secretWith(`{ cron: "${cron}" }`)), '--dry-run'], env);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`secrets.k.schedule.cron: cron pattern "${cron}" has ${fields} field(s)`);
      expect(result.stdout).toBe('');
    }
  });

  it('apply without REKEY_AUDIT_KEY: exit 1 with one line naming it, no plan that reads as applied', async () => {
    const result = await runRekey(['apply', '-f', file(secretWith(`{ cron: "${later.cron}" }`))], { ...env, REKEY_AUDIT_KEY: '' });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^rekey: REKEY_AUDIT_KEY is not set[^\n]*\n$/);
  });

  it('the plan shows the next three due times of an added or changed schedule, in its time zone', async () => {
    const result = await runRekey(['apply', '-f', file(secretWith('{ cron: "30 3 * * 1", timezone: Europe/Paris }')), '--dry-run'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('  + schedule k: "30 3 * * 1" Europe/Paris\n');
    expect(result.stdout).toMatch(/^ {4}next: Mon \d{4}-\d\d-\d\d 03:30, Mon \d{4}-\d\d-\d\d 03:30, Mon \d{4}-\d\d-\d\d 03:30 \(Europe\/Paris\)$/m);
    const json = await runRekey(['apply', '-f', file(secretWith('{ cron: "0 0 12 * * *" }')), '--dry-run', '--json'], env);
    const next = (JSON.parse(json.stdout) as { plan: { schedules: { added: Array<{ next: string[] }> } } }).plan.schedules.added[0]!.next;
    expect(next).toHaveLength(3);
    for (const time of next) expect(time).toMatch(/T12:00:00\.000Z$/);
  });

  it('the plan covers every section (removing leaks: shows its receivers removed), and --dry-run changes nothing anywhere', async () => {
    const withLeaks = `${secretWith(`{ cron: "${later.cron}" }`)}
leaks:
  gitguardian: { token: "\${env:GG_TOKEN}" }
env:
  allow: [GG_TOKEN]
`;
    const first = await runRekey(['apply', '-f', file(withLeaks)], env);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('  + leaks.gitguardian\n');
    expect(first.stdout).toContain('  + env.allow\n');
    const state = async () => {
      const redis = testRedis();
      try {
        return {
          revisions: await h.runtime.db.configRevision.count(),
          audit: await h.runtime.db.auditEvent.count(),
          secrets: await h.runtime.db.secret.findMany({ orderBy: { name: 'asc' } }),
          redis: (await scanKeys(redis, `${h.env.prefix}*`)).sort(),
        };
      } finally {
        redis.disconnect();
      }
    };
    const before = await state();
    const without = file(secretWith(`{ cron: "${later.cron}" }`));
    const dry = await runRekey(['apply', '-f', without, '--dry-run'], env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('  - leaks.gitguardian (its webhook will answer 404)\n');
    expect(dry.stdout).toContain('  - env.allow\n');
    expect(dry.stdout).toContain('Other sections: env -1, leaks -1.\n');
    expect(dry.stdout).toContain('Dry run: nothing applied.');
    expect(await state()).toEqual(before);
    const applied = await runRekey(['apply', '-f', without], env);
    expect(applied.code).toBe(0);
    expect(applied.stdout).not.toContain('No changes');
    expect(applied.stdout).toMatch(/Applied as config revision \d+\./);
  });
});

describe('worker and server fail fast', () => {
  let h: Harness;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    h = await startHarness({ label: 'fail-fast', workers: false });
    env = h.childEnv();
  });
  afterAll(() => h.stop());

  const lines = (text: string) => text.split('\n').filter(Boolean);

  it.each(['REKEY_FINGERPRINT_KEY', 'REKEY_AUDIT_KEY'])('without %s: exit 1 at once, one line naming it', async (name) => {
    for (const command of [['worker', '--port', '0'], ['server', '--port', '0']]) {
      const result = await runRekey(command, { ...env, [name]: '' });
      expect(result.code).toBe(1);
      expect(lines(result.stderr)).toEqual([expect.stringMatching(new RegExp(`^rekey: ${name} is not set`))]);
      expect(result.stdout).toBe('');
    }
  });

  it('a port taken: exit 1 with one line, no worker left running; a port that is no port: exit 2 with the usage hint', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '0.0.0.0', resolve));
    const { port } = taken.address() as { port: number };
    try {
      for (const command of ['worker', 'server']) {
        const result = await runRekey([command, '--port', String(port)], env);
        expect(result.code).toBe(1);
        expect(lines(result.stderr)).toEqual([`rekey: cannot listen on 0.0.0.0:${port} (EADDRINUSE): another process uses the port; pick another with --port`]);
      }
    } finally {
      taken.close();
    }
    for (const value of ['70000', 'eighty']) {
      const result = await runRekey(['worker', '--port', value], env);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`option '--port <port>' argument '${value}' is invalid. not a TCP port (0-65535)`);
      expect(result.stderr).toContain('(run `rekey help <command>` for its usage)');
    }
  });

  it('a database schema older than the code: exit 1, one line saying to run rekey migrate', async () => {
    const name = `rekey_t_old_schema_${process.pid}_${Date.now()}`;
    const url = databaseUrl(name);
    await ensureDatabase(url);
    try {
      const all = listMigrations();
      await migrate(url, all.slice(0, -1));
      for (const command of ['worker', 'server']) {
        const result = await runRekey([command, '--port', '0'], { ...env, DATABASE_URL: url });
        expect(result.code).toBe(1);
        expect(lines(result.stderr)).toEqual([`rekey: the database schema is older than this rekey: 1 migration(s) not applied (${all.at(-1)!.name}); run \`rekey migrate\` first`]);
      }
    } finally {
      const admin = new pg.Client({ connectionString: DATABASE_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await admin.end();
    }
  });
});

describe('exit codes', () => {
  it('an option value that is not what the option takes, or a missing file for scan: exit 2 with the usage hint, nothing done', async () => {
    // No database or Redis in the environment: a usage error is found before either is needed.
    const env = { PATH: process.env.PATH, DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none', REDIS_URL: 'redis://127.0.0.1:1' };
    const cases: Array<[string[], string]> = [
      [['revoke', 'k', '--version', 'v3'], "option '--version <n>' argument 'v3' is invalid. not a whole number from 1"],
      [['rotate', 'k', '--wait', '--timeout', '5minutes'], "option '--timeout <duration>' argument '5minutes' is invalid. not a duration (e.g. 30s, 5m, 1h)"],
      [['keygen', '--prefix', 'bad prefix!'], "option '--prefix <prefix>' argument 'bad prefix!' is invalid. a prefix is up to 32 characters of A-Z a-z 0-9 _"],
      [['status', '--versions', '0'], "option '--versions <n>' argument '0' is invalid."],
      [['worker', '--reconcile-interval', '7s'], "option '--reconcile-interval <schedule>' argument '7s' is invalid. 7s does not divide a minute, an hour or a day evenly"],
      [['server', '--gauges-interval', 'often'], "option '--gauges-interval <schedule>' argument 'often' is invalid. \"often\" is neither a cron expression nor a duration"],
      [['scan', join(dir, 'no-such-file.env')], `error: cannot read ${join(dir, 'no-such-file.env')} (ENOENT)`],
    ];
    for (const [args, message] of cases) {
      const result = await runRekey(args, env);
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr).toContain(message);
      expect(result.stderr).toContain('(run `rekey help <command>` for its usage)');
      expect(result.stdout).toBe('');
    }
  });
});

describe('where is my database', () => {
  let h: Harness;
  let env: NodeJS.ProcessEnv;
  const closed = CLOSED_PORT;
  beforeAll(async () => {
    h = await startHarness({ label: 'where-db', workers: false });
    env = h.childEnv();
    await h.apply(secretWith(`{ cron: "${later.cron}" }`));
  });
  afterAll(() => h.stop());

  it('PostgreSQL unreachable: one line with where and what to check, the password masked', async () => {
    const url = `postgresql://rekey:hunter2@127.0.0.1:${closed}/rekey`;
    for (const args of [['status'], ['rotate', 'k'], ['apply', '-f', file(secretWith(`{ cron: "${later.cron}" }`))]]) {
      const result = await runRekey(args, { ...env, DATABASE_URL: url });
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`rekey: cannot reach PostgreSQL at 127.0.0.1:${closed} (ECONNREFUSED): is it running? DATABASE_URL=postgresql://rekey:***@127.0.0.1:${closed}/rekey\n`);
    }
  });

  it('a password given as a query parameter of DATABASE_URL is masked too, never printed', async () => {
    const url = `postgresql://rekey@127.0.0.1:${closed}/rekey?sslmode=disable&password=hunter2`;
    const result = await runRekey(['status'], { ...env, DATABASE_URL: url });
    expect(result.code).toBe(1);
    expect(result.stderr).not.toContain('hunter2');
    expect(result.stderr).toBe(`rekey: cannot reach PostgreSQL at 127.0.0.1:${closed} (ECONNREFUSED): is it running? DATABASE_URL=postgresql://rekey@127.0.0.1:${closed}/rekey?sslmode=disable&password=***\n`);
  });

  it('Redis unreachable: rotate says so in one line, and that its run is recorded; status says the schedule is unknown, not "not scheduled"', async () => {
    const redis = `redis://:hunter2@127.0.0.1:${closed}`;
    const rotate = await runRekey(['rotate', 'k'], { ...env, REDIS_URL: redis });
    expect(rotate.code).toBe(1);
    const recorded = "rotation run [0-9a-f-]{36} of k is recorded but could not be queued; a worker's reconcile pass starts it";
    expect(rotate.stderr).toMatch(new RegExp(`^rekey: cannot reach Redis at 127\\.0\\.0\\.1:${closed}( \\(ECONNREFUSED\\))?: is it running\\? REDIS_URL=redis://:\\*\\*\\*@127\\.0\\.0\\.1:${closed}; ${recorded}\n$`));
    const status = await runRekey(['status', 'k'], { ...env, REDIS_URL: redis });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('  next rotation: unknown (cannot read the schedules: Redis is unreachable)\n');
    expect(status.stdout).not.toContain('not scheduled');
  });

  it('a DATABASE_URL that is no URL (a # in its password not percent-encoded): one line naming it, no Prisma dump, no password', async () => {
    for (const [name, args] of [['DATABASE_URL', ['status']], ['DATABASE_URL', ['apply', '-f', file(secretWith(`{ cron: "${later.cron}" }`)), '--dry-run']], ['REKEY_MIGRATE_DATABASE_URL', ['migrate']]] as const) {
      const result = await runRekey([...args], { ...env, [name]: `postgresql://rekey:hun#ter2@127.0.0.1:${closed}/rekey` });
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(`rekey: ${name} is not a URL: percent-encode # / ? @ : in its user name and password (# as %23)\n`);
    }
  });

  it('migrate as the owner role (REKEY_MIGRATE_DATABASE_URL) it cannot reach: names that URL, not DATABASE_URL', async () => {
    const owner = `postgresql://owner:hunter2@127.0.0.1:${closed}/rekey`;
    const result = await runRekey(['migrate'], { ...env, REKEY_MIGRATE_DATABASE_URL: owner });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`rekey: cannot reach PostgreSQL at 127.0.0.1:${closed} (ECONNREFUSED): is it running? REKEY_MIGRATE_DATABASE_URL=postgresql://owner:***@127.0.0.1:${closed}/rekey\n`);
  });

  it('rekey dev -f with a file it cannot apply exits 1 with the reason, instead of running on without it', async () => {
    // A missing file, and a file that loads but is refused (an empty one, while k is managed).
    for (const [path, reason] of [[join(dir, 'missing.yaml'), 'cannot read the file (ENOENT)'], [file(''), 'manages no secret and would remove all 1']] as const) {
      const child = spawnRekey(['dev', '--port', '0', '-f', path], env);
      // A hang guard only: the exit is the event awaited.
      const code = await Promise.race([child.exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running after 60 s'), 60_000).unref())]);
      if (typeof code === 'string') await kill(child);
      expect(code).toBe(1);
      expect(child.output()).toContain(reason);
    }
  });

  it('rekey dev names the DATABASE_URL it uses with a password given as a query parameter masked', async () => {
    const child = spawnRekey(['dev', '--port', '0', '-f', file('')], { ...env, DATABASE_URL: `${env.DATABASE_URL}?password=hunter2` });
    // A hang guard only: the exit (the empty file is refused once the notes are printed) is the event awaited.
    const code = await Promise.race([child.exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running after 60 s'), 60_000).unref())]);
    if (typeof code === 'string') await kill(child);
    expect(code).toBe(1);
    expect(child.output()).toContain(`postgres: DATABASE_URL (${env.DATABASE_URL}?password=***)\n`);
    expect(child.output()).not.toContain('hunter2');
  });

  it('migrate creates the database when it does not exist', async () => {
    const name = `rekey_t_created_${process.pid}_${Date.now()}`;
    try {
      const result = await runRekey(['migrate'], { ...env, DATABASE_URL: databaseUrl(name) });
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^Created database ${name}\\.\nApplied ${listMigrations().length} migration\\(s\\): `));
      expect((await runRekey(['migrate'], { ...env, DATABASE_URL: databaseUrl(name) })).stdout).toBe('Database is up to date.\n');
    } finally {
      const admin = new pg.Client({ connectionString: DATABASE_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await admin.end();
    }
  });
});

describe('status after a failed run', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ label: 'failed-status' });
    await h.apply(`
providers:
  mem: { type: memory, journal: failed-status }
  edge: { type: memory, journal: failed-status }
secrets:
  k:
    store: { provider: mem }
    issuer: { type: random }
    targets: [edge]
    retry: { attempts: 1, backoff: 10ms }
`);
  });
  afterAll(() => h.stop());

  it("a rolled-back rotation's step and error stay in `rekey status NAME` after the run ended, until a later run succeeds", async () => {
    journal('failed-status').fail('deploy:edge', Infinity, false);
    const run = await h.rotate('k', 60_000);
    expect(run.status).toBe('rolled_back');
    const status = await runRekey(['status', 'k'], h.childEnv());
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^ {2}last rotation rolled back at \S+ \(attempt \d+, \d{4}-\d\d-\d\dT[\d:.]+Z\): .*injected failure at deploy:edge/m);
    const json = JSON.parse((await runRekey(['status', 'k', '--json'], h.childEnv())).stdout) as Array<{ lastFailedRun: { id: string; error: string } }>;
    expect(json[0]!.lastFailedRun).toMatchObject({ id: run.id, error: expect.stringContaining('injected failure at deploy:edge') as unknown });
    journal('failed-status').faults.length = 0;
    expect((await h.rotate('k', 60_000)).status).toBe('succeeded');
    expect((await runRekey(['status', 'k'], h.childEnv())).stdout).not.toContain('last rotation');
  });
});

describe('a plain install', () => {
  it('`npm ci` then `npx rekey --help` works without a build: the bin runs the sources when dist/ is absent', () => {
    // A checkout after `npm ci` and before `npm run build`: this worktree's files, no dist/.
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const clone = mkdtempSync(join(tmpdir(), 'rekey-clone-'));
    mkdirSync(join(clone, 'bin'));
    copyFileSync(join(root, 'package.json'), join(clone, 'package.json'));
    copyFileSync(join(root, 'bin', 'rekey.js'), join(clone, 'bin', 'rekey.js'));
    for (const entry of ['src', 'providers', 'prisma', 'node_modules', 'tsconfig.json']) symlinkSync(join(root, entry), join(clone, entry));
    // What `npx rekey` runs: package.json's bin, with node. (npx itself does not resolve a project whose node_modules is a symlink.)
    const bin = join(clone, 'bin', 'rekey.js');
    const result = spawnSync(process.execPath, [bin, '--help'], { cwd: clone, env: process.env, encoding: 'utf8', timeout: 150_000 });
    expect(result.stderr).not.toContain('ERR_MODULE_NOT_FOUND');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^Usage: rekey \[options\] \[command\]/);
    const keygen = spawnSync(process.execPath, [bin, 'keygen', '--prefix', 'rk_test_'], { cwd: clone, env: process.env, encoding: 'utf8', timeout: 150_000 });
    expect(keygen.status).toBe(0);
    expect(keygen.stdout).toMatch(/^rk_test_[0-9A-Za-z]{36}\n$/);
  });
});

describe('the CLI needs only what it uses', () => {
  let h: Harness;
  beforeAll(async () => {
    process.env.T_VAULT_KEY = 'e'.repeat(64); // for the worker in this process, not for the CLI
    h = await startHarness({ label: 'cli-needs' });
    await h.apply(`
providers:
  vault: { type: local, key: "\${env:T_VAULT_KEY}" }
secrets:
  k:
    store: { provider: vault }
    issuer: { type: random }
env:
  allow: [T_VAULT_KEY]
`);
  });
  afterAll(async () => {
    await h.stop();
    delete process.env.T_VAULT_KEY;
  });

  it('rotate and revoke queue work without the providers\' credentials in the caller\'s shell; the worker resolves ${env:...}', async () => {
    const env = h.childEnv();
    delete env.T_VAULT_KEY;
    delete env.REKEY_LOCAL_STORE_KEY;
    const rotate = await runRekey(['rotate', 'k', '--wait'], env);
    expect(rotate.stderr).toBe('');
    expect(rotate.code).toBe(0);
    expect(rotate.stdout).toContain('Rotated k.');
    // LOG_LEVEL=info shows the operator's own leak report (an info line; warnings show by default).
    const revoke = await runRekey(['revoke', 'k', '--version', '1'], { ...env, LOG_LEVEL: 'info' });
    expect(revoke.stderr).not.toMatch(/T_VAULT_KEY|REKEY_LOCAL_STORE_KEY|not set/);
    expect(revoke.code).toBe(0);
    expect(revoke.stdout).toBe('Version 1 of k: rotating.\n'); // v1 is current: rotate-then-revoke
    // Its log line is for a person, on stderr: no JSON in a CLI command's output.
    expect(revoke.stderr).not.toMatch(/^\{/m);
    expect(revoke.stderr).toMatch(/^rekey: info: leak report \(source=cli secret=k versionId=\S+ outcome=rotating duplicate=false\)$/m);
    await expect.poll(async () => (await h.runtime.db.version.findFirst({ where: { number: 1 } }))?.state, { timeout: 30_000 }).toBe('revoked');
  });
});
