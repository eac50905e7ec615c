/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment -- SARIF and API answers are JSON, checked field by field */
/**
 * `rekey scan` (issue 18): the git index for a pre-commit hook (`--staged`, as a real process
 * in a real repository), SARIF 2.1.0 output validated against the SARIF schema, and
 * `--check` / `--report` through the admin API of a running server: a live key is named live,
 * a retired one retired, a random string that merely looks like a key is never a finding.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ajvDraft04 from 'ajv-draft-04';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { generateKey } from '../../src/core/key-format.js';
import { call, tokenFor } from '../support/api.js';
import { childArgs } from '../support/children.js';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'rekey-scan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** How scan names a key: `sha256:` and the first 12 hex digits of its SHA-256. */
const digest = (key: string) => `sha256:${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;

/** `rekey ARGS` as a process in `cwd` (the git repository it scans). */
async function rekeyIn(cwd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...childArgs('src/cli/main.ts'), ...args], { cwd, env: { PATH: process.env.PATH } });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => (out.stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out.stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, ...out };
}

describe('scan --staged', () => {
  it('finds a key the next commit would add, from the index (not the working tree), and exits 1; a clean index exits 0', async () => {
    const repo = join(dir, 'repo');
    const git = (...args: string[]) => execFileSync('git', args, { cwd: repo, stdio: 'pipe' });
    execFileSync('git', ['init', '-q', repo]);
    git('config', 'user.email', 'dev@example.com');
    git('config', 'user.name', 'dev');
    const key = generateKey('rk_live_');
    writeFileSync(join(repo, 'README.md'), 'nothing here\n');
    git('add', 'README.md');
    git('commit', '-qm', 'first');
    expect(await rekeyIn(repo, ['scan', '--staged'])).toMatchObject({ code: 0, stdout: '' });

    writeFileSync(join(repo, 'app.env'), `# settings\nAPI_KEY=${key}\n`);
    git('add', 'app.env');
    // Taken out of the working tree but still staged: the commit would hold it.
    writeFileSync(join(repo, 'app.env'), '# settings\nAPI_KEY=\n');
    // In the working tree only: not part of the commit.
    writeFileSync(join(repo, 'notes.txt'), `${generateKey('rk_live_')}\n`);
    const found = await rekeyIn(repo, ['scan', '--staged']);
    expect(found).toEqual({ code: 1, stdout: `app.env:2: rk_live_... ${digest(key)}\n`, stderr: '' });
    expect(found.stdout).not.toContain(key.slice(8));

    git('reset', '-q', 'app.env');
    expect((await rekeyIn(repo, ['scan', '--staged'])).code).toBe(0);
    expect((await rekeyIn(repo, ['scan', '--staged', 'app.env'])).code).toBe(2);
    expect((await rekeyIn(dir, ['scan', '--staged'])).stderr).toContain('not in a git repository');
  }, 60_000);
});

describe('scan --format sarif', () => {
  it('is a valid SARIF 2.1.0 log: one result per key with file, line and column, never the key', async () => {
    const tree = join(dir, 'tree');
    execFileSync('mkdir', ['-p', join(tree, 'config'), join(tree, 'node_modules', 'x')]);
    const keys = [generateKey('rk_live_'), generateKey('rk_test_')];
    const [first, second] = keys as [string, string];
    writeFileSync(join(tree, 'config', 'a.env'), `A=${first}\n`);
    writeFileSync(join(tree, 'b.txt'), `first line\n  token: "${second}"\n`);
    // A random string as long as a key, and a key with one character changed: no checksum, no finding.
    writeFileSync(join(tree, 'c.txt'), `rk_live_${'a'.repeat(36)}\n${first.slice(0, -1)}${first.endsWith('A') ? 'B' : 'A'}\n`);
    writeFileSync(join(tree, 'node_modules', 'x', 'd.txt'), `${generateKey('rk_')}\n`);
    const result = await rekey(['scan', tree, '--format', 'sarif']);
    expect(result.code).toBe(1);
    const log = JSON.parse(result.stdout);
    const schema = JSON.parse(readFileSync(createRequire(import.meta.url).resolve('@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json'), 'utf8'));
    // ajv-draft-04 is CommonJS: its class is the default export's `default`. The schema's
    // language-tag pattern is not valid in unicode mode; string formats (uri) are not checked.
    const validate = new ajvDraft04.default({ allErrors: true, strict: false, unicodeRegExp: false, validateFormats: false, logger: false }).compile(schema);
    expect(validate(log) ? [] : validate.errors).toEqual([]);
    type Result = { ruleId: string; locations: Array<{ physicalLocation: { artifactLocation: { uri: string }; region: object } }> };
    const results = (log.runs[0].results as Result[]).map((r) => [r.ruleId, r.locations[0]!.physicalLocation.artifactLocation.uri.replace(/^.*tree\//, ''), r.locations[0]!.physicalLocation.region]);
    expect(results).toEqual([
      ['rekey/key', 'b.txt', { startLine: 2, startColumn: 11 }],
      ['rekey/key', 'config/a.env', { startLine: 1, startColumn: 3 }],
    ]);
    for (const key of keys) expect(result.stdout).not.toContain(key.slice(8));
  });

  it('shows a key with a short prefix (or none) by its prefix and digest only: no character of its random part, in text or SARIF', async () => {
    const tree = join(dir, 'short');
    execFileSync('mkdir', ['-p', tree]);
    const short = generateKey('k_');
    const bare = generateKey('');
    writeFileSync(join(tree, 'a.env'), `A=${short}\nB=${bare}\n`);
    const text = await rekey(['scan', join(tree, 'a.env')]);
    expect(text).toMatchObject({ code: 1, stdout: `${join(tree, 'a.env')}:1: k_... ${digest(short)}\n${join(tree, 'a.env')}:2: ... ${digest(bare)}\n` });
    const sarif = await rekey(['scan', join(tree, 'a.env'), '--format', 'sarif']);
    expect(sarif.code).toBe(1);
    expect((JSON.parse(sarif.stdout).runs[0].results as Array<{ message: { text: string } }>).map((r) => r.message.text)).toEqual([`A rekey key (k_... ${digest(short)})`, `A rekey key (... ${digest(bare)})`]);
    // Not one character of a random part after its prefix, nor a run of six of one anywhere (a run of hex digits aside: the digest's own).
    for (const out of [text.stdout, sarif.stdout]) {
      expect(out).not.toContain(short.slice(0, 3));
      for (const random of [short.slice(-36), bare]) {
        for (let i = 0; i + 6 <= random.length; i++) if (!/^[0-9a-f]{6}$/.test(random.slice(i, i + 6))) expect(out).not.toContain(random.slice(i, i + 6));
      }
    }
  });
});

describe('scan --check and --report', () => {
  let h: Harness;
  let env: NodeJS.ProcessEnv;
  let file: string;
  const value = async (name: string, stage: 'current' | 'previous') =>
    (await (await h.runtime.resolver.resolve(name)).store.read({ stage }, { signal: AbortSignal.timeout(10_000) })).reveal();

  beforeAll(async () => {
    h = await startHarness({ label: 'scan', routes: [adminApiRoutes] });
    await h.apply(`
providers:
  vault: { type: local }
secrets:
  payments: { store: { provider: vault }, issuer: { type: random, prefix: rk_pay_ }, grace: 1h }
  billing: { store: { provider: vault }, issuer: { type: random, prefix: rk_bill_ }, grace: 1h }
`);
    for (const name of ['payments', 'payments', 'billing']) expect((await h.rotate(name)).status).toBe('succeeded');
    // payments v1 retired by hand (the end of its grace), v2 current; billing v1 current.
    const previous = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'payments' }, number: 1 } });
    file = join(dir, 'leaky.env');
    writeFileSync(file, `OLD=${await value('payments', 'previous')}\nNEW=${await value('payments', 'current')}\nBILL=${await value('billing', 'current')}\nOTHER=${generateKey('rk_pay_')}\n`);
    await h.runtime.db.version.update({ where: { id: previous.id }, data: { state: 'retired' } });
    env = { REKEY_API_URL: h.serving!.url, REKEY_API_TOKEN: await tokenFor(h, 'scanner', ['read', 'revoke:billing']) };
  }, 120_000);
  afterAll(() => h?.stop());

  it('--check names each key found: its secret, version and state, live or not', async () => {
    const result = await rekey(['scan', file, '--check'], env);
    expect(result.code).toBe(1);
    expect(result.stdout.split('\n').filter(Boolean)).toEqual([
      // Retired: off every target, but live at its issuer until its revocation succeeds.
      expect.stringMatching(/^.*:1: rk_pay_\.\.\. sha256:[0-9a-f]{12} {2}payments v1 retired \(live\)$/),
      expect.stringMatching(/^.*:2: rk_pay_\.\.\. sha256:[0-9a-f]{12} {2}payments v2 current \(live\)$/),
      expect.stringMatching(/^.*:3: rk_bill_\.\.\. sha256:[0-9a-f]{12} {2}billing v1 current \(live\)$/),
      expect.stringMatching(/^.*:4: rk_pay_\.\.\. sha256:[0-9a-f]{12} {2}not a key rekey manages$/),
    ]);
  });

  it("the API's answer names a key by its prefix only, whatever the prefix's length", async () => {
    const keys = [generateKey('rk_'), generateKey('')];
    const answer = await call(h, '/api/v1/keys/check', { method: 'POST', token: env.REKEY_API_TOKEN, body: { keys } });
    expect(answer.status).toBe(200);
    expect(answer.json.items).toEqual([expect.objectContaining({ index: 0, prefix: 'rk_', secret: null }), expect.objectContaining({ index: 1, prefix: '', secret: null })]);
  });

  it('--report sends the live keys the token may revoke to the leak path; the others are left alone', async () => {
    const result = await rekey(['scan', file, '--report'], env);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/:3: rk_bill_\.\.\. sha256:[0-9a-f]{12} {2}billing v1 current \(live\): reported, (blocking|rotating)\n/);
    // The token holds revoke for billing only: payments v2 is named, not reported.
    expect(result.stdout).toMatch(/:2: rk_pay_\.\.\. sha256:[0-9a-f]{12} {2}payments v2 current \(live\)\n/);
    const billing = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'billing' }, number: 1 } });
    expect(billing.compromisedAt).not.toBeNull();
    expect((await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'payments' }, number: 2 } })).state).toBe('current');
    expect(await h.runtime.db.leakReport.count()).toBe(1);
  });

  it('--report with a token that may revoke and not read: the live keys of its secrets are reported all the same', async () => {
    const result = await rekey(['scan', file, '--report'], { ...env, REKEY_API_TOKEN: await tokenFor(h, 'revoker', ['revoke:payments']) });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/:2: rk_pay_\.\.\. sha256:[0-9a-f]{12} {2}payments v2 current \(live\): reported, (blocking|rotating)\n/);
    expect((await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'payments' }, number: 2 } })).compromisedAt).not.toBeNull();
    // billing is not its to see: named as no key it knows of.
    expect(result.stdout).toMatch(/:3: rk_bill_\.\.\. sha256:[0-9a-f]{12} {2}not a key rekey manages\n/);
  });

  it('an admin API token found is named, never shown: --check says it is live, --report revokes it', async () => {
    const leaked = await tokenFor(h, 'pushed-to-github', ['admin']);
    const tokens = join(dir, 'ci.env');
    writeFileSync(tokens, `REKEY_API_TOKEN=${leaked}\n`);
    const line = (what: string) => `${tokens}:1: rkadm_... ${digest(leaked)}  ${what}\n`;
    expect(await rekey(['scan', tokens, '--check'], env)).toMatchObject({ code: 1, stdout: line('admin API token pushed-to-github active (live)') });
    expect((await call(h, '/api/v1/openapi.json', { token: leaked })).status).toBe(200);
    const reported = await rekey(['scan', tokens, '--report'], env);
    expect(reported).toMatchObject({ code: 1, stdout: line('admin API token pushed-to-github active (live): reported, revoked') });
    expect((await call(h, '/api/v1/openapi.json', { token: leaked })).status).toBe(401);
    expect(await rekey(['scan', tokens, '--check'], env)).toMatchObject({ code: 1, stdout: line('admin API token pushed-to-github revoked') });
    expect(reported.stdout + reported.stderr).not.toContain(leaked.slice(6));
  });

  it('without the API settings, or with a token that may not read, it says so and exits 1; plain http only to loopback', async () => {
    expect(await rekey(['scan', file, '--check'])).toMatchObject({ code: 1, stderr: expect.stringContaining('set REKEY_API_URL') });
    const none = await rekey(['scan', file, '--check'], { ...env, REKEY_API_TOKEN: await tokenFor(h, 'rotator', ['rotate']) });
    expect(none).toMatchObject({ code: 1, stderr: expect.stringContaining('answered 403 REKEY_API_FORBIDDEN') });
    const remote = await rekey(['scan', file, '--check'], { ...env, REKEY_API_URL: 'http://rekey.example.com' });
    expect(remote).toMatchObject({ code: 1, stderr: expect.stringContaining('must be https') });
  });
});
