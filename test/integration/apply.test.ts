/**
 * `rekey apply`: malformed configs fail with a message naming the file, the path and
 * the problem, and change nothing; a valid one prints its plan, stores the config and
 * the schedules; removing a secret stops its schedule and keeps its history.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';
import { secretSchedulers } from '../support/redis.js';

// wall-clock schedules: the harness runs no workers and no rekey process here starts one, so a pattern
// that comes due leaves a delayed job in Redis and rotates nothing; these tests read plans, rows and
// schedulers' settings, never jobs.
let h: Harness;
let env: NodeJS.ProcessEnv;
const dir = mkdtempSync(join(tmpdir(), 'rekey-apply-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

const valid = `
providers:
  vault: { type: local }
  api: { type: redis-keyset }
secrets:
  payments:
    store: { provider: vault }
    issuer: { type: random, prefix: rk_live_ }
    targets: [api]
    schedule: { cron: "0 3 * * 1", timezone: Europe/Paris }
    grace: 24h
  billing:
    store: { provider: vault }
    issuer: { type: random }
    schedule: { cron: "0 4 * * *" }
`;

beforeAll(async () => {
  h = await startHarness({ label: 'apply', workers: false });
  env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix };
});
afterAll(() => h.stop());

const secretBlock = (extra: string) => `
providers:
  vault: { type: local }
  api: { type: redis-keyset }
secrets:
  payments:
    store: { provider: vault }
    issuer: { type: random }
${extra}`;

const malformed: Array<[string, string, RegExp]> = [
  ['yaml syntax', 'secrets:\n  a: [unclosed\n', /line \d+, column \d+/],
  ['duplicate key', 'secrets: {}\nsecrets: {}\n', /Map keys must be unique/],
  ['not a mapping', '- a\n- b\n', /must be a mapping/],
  ['an unknown tag', 'providers:\n  vault: { type: !loc local }\n', /line 2, column 18: Unresolved tag: !loc/],
  ['unknown top-level key', 'secret: {}\n', /\(document\): Unrecognized key: "secret"|: Unrecognized key/],
  ['unknown provider type', 'providers:\n  vault: { type: vaultt }\n', /providers\.vault\.type: unknown provider type "vaultt" \(known: .*local/],
  ['missing provider', 'secrets:\n  a:\n    store: { provider: nowhere }\n    issuer: { type: random }\n', /secrets\.a\.store\.provider: no provider named "nowhere"/],
  ['bad duration', secretBlock('    grace: 24x\n'), /secrets\.payments\.grace: "24x" is not a duration/],
  ['bad cron', secretBlock('    schedule: { cron: "61 * * * *" }\n'), /secrets\.payments\.schedule\.cron: invalid cron pattern "61 \* \* \* \*"/],
  ['bad time zone', secretBlock('    schedule: { cron: "0 3 * * *", timezone: Mars/Olympus }\n'), /secrets\.payments\.schedule\.timezone: unknown time zone "Mars\/Olympus"/],
  ['inline credential', 'providers:\n  vault: { type: local, key: 0123456789abcdef }\n', /providers\.vault\.key: must be a reference like \$\{env:NAME\}; credentials are never written inline/],
  ['wrong role', 'providers:\n  api: { type: redis-keyset }\nsecrets:\n  a:\n    store: { provider: api }\n    issuer: { type: random }\n', /secrets\.a\.store: provider "api" \(redis-keyset\) cannot be used as a store; it is a target/],
  ['bad onLeak', secretBlock('    onLeak: panic\n'), /secrets\.payments\.onLeak: Invalid option/],
  ['bad secret name', 'secrets:\n  "Pay:ments":\n    store: { provider: vault }\n    issuer: { type: random }\nproviders:\n  vault: { type: local }\n', /secrets\.Pay:ments: names are 1-128 characters/],
  ['dot-dot segment in a secret name', 'secrets:\n  "pay/../token":\n    store: { provider: vault }\n    issuer: { type: random }\nproviders:\n  vault: { type: local }\n', /secrets\.pay\/\.\.\/token: names are .* no empty, \. or \.\. part between slashes/],
  ['empty segment in a provider name', 'providers:\n  "edge//eu": { type: local }\n', /providers\.edge\/\/eu: names are 1-128 characters/],
  ['target twice', secretBlock('    targets: [api, api]\n'), /secrets\.payments\.targets\[1\]: target "api" is listed twice/],
  ['zero attempts', secretBlock('    retry: { attempts: 0 }\n'), /secrets\.payments\.retry\.attempts: Too small/],
  ['unknown secret field', secretBlock('    graec: 1h\n'), /secrets\.payments: Unrecognized key: "graec"/],
  ['an alias of no anchor', 'providers:\n  vault: { type: local }\nsecrets:\n  a:\n    store: *vault\n    issuer: { type: random }\n', /line 5, column 12: alias \*vault names no anchor set before it/],
  ['an alias bomb', 'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n', /\(document\): aliases expand to more than 100 nodes/],
  ['a key written twice, once quoted', 'providers:\n  vault: { type: local }\nsecrets:\n  "1": { store: { provider: vault }, issuer: { type: random } }\n  1: { store: { provider: vault }, issuer: { type: random }, grace: 1h }\n', /line 5, column 3: Map keys must be unique/],
  ['a key written twice, as true and "true"', 'providers:\n  vault: { type: local }\nsecrets:\n  true: { store: { provider: vault }, issuer: { type: random } }\n  "true": { store: { provider: vault }, issuer: { type: random } }\n', /line 5, column 3: Map keys must be unique/],
  ['publish: jwks of a secret whose issuer publishes no public keys', 'providers:\n  vault: { type: local }\n  api: { type: redis-keyset }\nsecrets:\n  a:\n    store: { provider: vault }\n    issuer: { type: random }\n    targets: [{ provider: api, publish: jwks }]\n', /secrets\.a\.targets\[0\]\.publish: the issuer of a \(random\) publishes no public keys/],
  ['bad issuer option', 'providers:\n  vault: { type: local }\nsecrets:\n  a:\n    store: { provider: vault }\n    issuer: { type: random, prefix: "rk-live-" }\n', /secrets\.a\.issuer\.prefix: a prefix is up to 32 characters/],
];

describe('malformed configs', () => {
  it.each(malformed)('%s: fails clearly and changes nothing', async (name, text, message) => {
    const before = await h.runtime.db.configRevision.count();
    const path = file(`${name.replaceAll(' ', '-')}.yaml`, text);
    const result = await rekey(['apply', '-f', path], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`invalid configuration in ${path}`);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).not.toMatch(/Applied/);
    expect(await h.runtime.db.configRevision.count()).toBe(before);
  });

  it('a missing file is named', async () => {
    const result = await rekey(['apply', '-f', join(dir, 'absent.yaml')], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/absent\.yaml.*cannot read the file \(ENOENT\)/s);
  });

  it('a missing -f is a usage error (exit 2)', async () => {
    expect((await rekey(['apply'], env)).code).toBe(2);
  });
});

describe('apply', () => {
  it('dry-run prints the plan and applies nothing', async () => {
    const result = await rekey(['apply', '-f', file('valid.yaml', valid), '--dry-run'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('+ secret payments');
    expect(result.stdout).toContain('+ schedule payments: "0 3 * * 1" Europe/Paris');
    expect(result.stdout).toContain('Dry run: nothing applied.');
    expect(await h.runtime.db.secret.count()).toBe(0);
  });

  it('applies secrets and schedules; a second apply is a no-op', async () => {
    const result = await rekey(['apply', '-f', file('valid.yaml', valid)], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Secrets: 2 to add, 0 to change, 0 to remove, 0 unchanged.');
    expect((await h.runtime.db.secret.findMany({ orderBy: { name: 'asc' } })).map((s) => s.name)).toEqual(['billing', 'payments']);
    const schedulers = await secretSchedulers(h.runtime.queues.queues.rotations);
    expect(schedulers.map((s) => [s.key, s.pattern, s.tz]).sort()).toEqual([
      ['rotate.billing', '0 4 * * *', 'UTC'],
      ['rotate.payments', '0 3 * * 1', 'Europe/Paris'],
    ]);
    const again = await rekey(['apply', '-f', file('valid.yaml', valid)], env);
    expect(again.stdout).toContain('0 to add, 0 to change, 0 to remove, 2 unchanged');
    expect(again.stdout).toMatch(/No changes/);
  });

  it('a changed schedule and a removed secret: schedulers follow, history stays', async () => {
    await h.runtime.db.version.create({
      data: { id: crypto.randomUUID(), secretId: (await h.runtime.db.secret.findUniqueOrThrow({ where: { name: 'billing' } })).id, number: 1, state: 'current' },
    });
    const next = valid.replace('"0 3 * * 1", timezone: Europe/Paris', '"30 2 * * *", timezone: UTC').replace(/ {2}billing:[\s\S]*$/, '');
    const result = await rekey(['apply', '-f', file('next.yaml', next)], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('~ secret payments (schedule)');
    expect(result.stdout).toContain('- secret billing (no longer rotated; its history is kept)');
    expect(result.stdout).toContain('~ schedule payments: "0 3 * * 1" Europe/Paris -> "30 2 * * *" UTC');
    expect(result.stdout).toContain('- schedule billing: "0 4 * * *" UTC');
    const schedulers = await secretSchedulers(h.runtime.queues.queues.rotations);
    expect(schedulers.map((s) => [s.key, s.pattern, s.tz])).toEqual([['rotate.payments', '30 2 * * *', 'UTC']]);
    const billing = await h.runtime.db.secret.findUniqueOrThrow({ where: { name: 'billing' }, include: { versions: true } });
    expect(billing.removedAt).not.toBeNull();
    expect(billing.versions).toHaveLength(1);
    const status = await rekey(['status', 'billing', '--json'], env);
    expect((JSON.parse(status.stdout) as unknown[])[0]).toMatchObject({ name: 'billing', removed: true, versions: [{ number: 1, state: 'current' }] });
  });

  it('rotating a removed or unknown secret fails with its name', async () => {
    const result = await rekey(['rotate', 'billing'], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no managed secret named billing');
  });

  it('a file that manages no secret (empty, truncated) is refused: every schedule stays', async () => {
    const revisions = await h.runtime.db.configRevision.count();
    const result = await rekey(['apply', '-f', file('empty.yaml', 'providers:\n  vault: { type: local }\n')], env);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('0 to add, 0 to change, 1 to remove, 0 unchanged');
    expect(result.stderr).toMatch(/empty\.yaml manages no secret and would remove all 1: nothing applied\. If that is meant, apply it with --allow-remove-all/);
    expect(await h.runtime.db.configRevision.count()).toBe(revisions);
    expect((await h.runtime.db.secret.findUniqueOrThrow({ where: { name: 'payments' } })).removedAt).toBeNull();
    expect((await secretSchedulers(h.runtime.queues.queues.rotations)).map((s) => s.key)).toEqual(['rotate.payments']);
  });
});

describe('a large config', () => {
  const many = (n: number) =>
    ['providers:', '  vault: { type: local }', '  api: { type: redis-keyset }', 'secrets:']
      .concat(Array.from({ length: n }, (_, i) => `  fleet-${i}: { store: { provider: vault }, issuer: { type: random }, targets: [api], schedule: { cron: "${i % 60} 3 * * *" } }`))
      .join('\n');
  const actions = async () =>
    (await h.runtime.db.auditEvent.findMany({ where: { action: { startsWith: 'config.' }, seq: { gt: since } }, orderBy: { seq: 'asc' }, select: { action: true, data: true } })).map((e) => e.action);
  let since = 0n;

  it('5,000 secrets: applied in batches with a scheduler each; applying it again is a no-op plan', async () => {
    since = (await h.runtime.db.auditEvent.aggregate({ _max: { seq: true } }))._max.seq ?? 0n;
    const path = file('fleet.yaml', many(5000));
    const result = await rekey(['apply', '-f', path], env);
    expect(result.code).toBe(0);
    // Progress on stderr (stdout stays the plan): the batches, then schedules and queued work; nothing else.
    const progress = result.stderr.trimEnd().split('\n');
    expect(progress[0]).toMatch(/^ {2}secrets: 0 of 5000 written \(batch 1 of 5\), 0\.0 s$/);
    expect(progress.slice(-3)).toEqual([
      expect.stringMatching(/^ {2}secrets: 5000 of 5000 written in \d+\.\d s$/),
      '  schedules and queued work: reconciling with the database',
      expect.stringMatching(/^ {2}schedules and queued work: reconciled in \d+\.\d s$/),
    ]);
    expect(progress.every((line) => /^ {2}(secrets|schedules and queued work): /.test(line))).toBe(true);
    expect(result.stdout).toContain('Secrets: 5000 to add, 0 to change, 1 to remove, 0 unchanged.');
    expect(result.stdout).toContain('... and 4900 more secrets to add (--json lists every one)');
    expect(await h.runtime.db.secret.count({ where: { removedAt: null } })).toBe(5000);
    expect((await secretSchedulers(h.runtime.queues.queues.rotations)).length).toBe(5000);
    expect(await actions()).toEqual(['config.apply.started', ...Array<string>(5).fill('config.secrets'), 'config.applied']);
    const again = await rekey(['apply', '-f', path], env);
    expect(again.stderr).toBe(''); // nothing to write: no progress
    expect(again.stdout).toContain('Secrets: 0 to add, 0 to change, 0 to remove, 5000 unchanged.');
    expect(again.stdout).toMatch(/No changes \(config revision \d+\)/);
  });

  it('rekey status shows a page of 50 and the command for the next; --after and --limit walk on', async () => {
    const names = (stdout: string) => stdout.split('\n').filter((line) => /^(fleet-\d+|billing|payments)( |$)/.test(line)).map((line) => line.split(' ')[0]!);
    const first = await rekey(['status'], env);
    expect(first.code).toBe(0);
    expect(names(first.stdout)).toHaveLength(50);
    const after = /^5002 secrets; next page: rekey status --after (\S+)$/m.exec(first.stdout)?.[1];
    expect(after).toBe(names(first.stdout).at(-1));
    const second = await rekey(['status', '--after', after!, '--limit', '10'], env);
    expect(names(second.stdout)).toHaveLength(10);
    expect(names(second.stdout).every((name) => name > after!)).toBe(true);
    expect(second.stdout).toMatch(/next page: rekey status --after \S+ --limit 10$/m);
    const json = await rekey(['status', '--json', '--limit', '3'], env);
    expect(JSON.parse(json.stdout)).toHaveLength(3);
    expect(json.stderr).toMatch(/^rekey: 5002 secrets; next page: rekey status --after \S+ --limit 3$/m);
  });

  it('rekey status past the last page says so, not that there are no managed secrets', async () => {
    const past = await rekey(['status', '--after', 'zzz'], env);
    expect(past.code).toBe(0);
    expect(past.stdout).not.toMatch(/No managed secrets/);
    expect(past.stdout.trim()).toBe('No secrets after zzz (5002 secrets in all).');
  });

  it('a batch that fails midway: the re-run stores no new revision, writes only what is missing, and the audit log says so', async () => {
    const path = file('fleet-2.yaml', many(5000).replaceAll(' 3 * * *', ' 4 * * *'));
    const revisions = await h.runtime.db.configRevision.count();
    since = (await h.runtime.db.auditEvent.aggregate({ _max: { seq: true } }))._max.seq ?? 0n;
    // The database refuses the third batch (fleet-2000..2999, in file order): the apply stops there.
    await h.runtime.db.$executeRawUnsafe(`CREATE FUNCTION refuse_fleet() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.name = 'fleet-2500' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$`);
    await h.runtime.db.$executeRawUnsafe(`CREATE TRIGGER refuse_fleet BEFORE UPDATE ON secrets FOR EACH ROW EXECUTE FUNCTION refuse_fleet()`);
    const failed = await rekey(['apply', '-f', path], env);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('Secrets: 0 to add, 5000 to change, 0 to remove, 0 unchanged.');
    await h.runtime.db.$executeRawUnsafe('DROP TRIGGER refuse_fleet ON secrets');
    await h.runtime.db.$executeRawUnsafe('DROP FUNCTION refuse_fleet()');
    expect(await h.runtime.db.configRevision.count()).toBe(revisions + 1);
    expect(await actions()).toEqual(['config.apply.started', 'config.secrets', 'config.secrets']);

    const rerun = await rekey(['apply', '-f', path], env);
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain('Secrets: 0 to add, 3000 to change, 0 to remove, 2000 unchanged.');
    expect(await h.runtime.db.configRevision.count()).toBe(revisions + 1);
    expect(await actions()).toEqual(['config.apply.started', 'config.secrets', 'config.secrets', 'config.apply.started', 'config.secrets', 'config.secrets', 'config.secrets', 'config.applied']);
    const schedulers = await secretSchedulers(h.runtime.queues.queues.rotations);
    expect(schedulers.filter((s) => s.pattern?.endsWith(' 4 * * *')).length).toBe(5000);
    expect((await rekey(['apply', '-f', path], env)).stdout).toContain('Secrets: 0 to add, 0 to change, 0 to remove, 5000 unchanged.');
    expect((await rekey(['audit', 'verify'], env)).code).toBe(0);
  });
});

describe('removing every secret on purpose', () => {
  it('--allow-remove-all applies a file that manages no secret: every secret removed, every schedule gone, history kept', async () => {
    const result = await rekey(['apply', '-f', file('none.yaml', 'providers:\n  vault: { type: local }\n'), '--allow-remove-all'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('0 to add, 0 to change, 5000 to remove, 0 unchanged');
    expect(await h.runtime.db.secret.count({ where: { removedAt: null } })).toBe(0);
    expect(await h.runtime.db.secret.count()).toBeGreaterThan(0);
    expect(await secretSchedulers(h.runtime.queues.queues.rotations)).toEqual([]);
  });
});
