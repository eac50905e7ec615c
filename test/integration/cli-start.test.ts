/**
 * Start in a blink (issue 14, item 8): a command imports only what it uses. Each `rekey`
 * runs as a real process with a module hook that logs every module it imports; the
 * figures themselves (time, RSS) are bench/cli-start.ts's, not a pass/fail bound here.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { providers } from '../../src/registry.js';
import { childArgs } from '../support/children.js';
import { killOnExit } from '../support/gateways/process.js';
import { ONE_LOCAL_SECRET, startHarness, type Harness } from '../support/harness.js';

// Each test starts several rekey processes: seconds each on a loaded machine.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

const dir = mkdtempSync(join(tmpdir(), 'rekey-cli-start-'));
// Sees every module the process resolves (node: built-ins left out).
const hook = join(dir, 'log-imports.mjs');
writeFileSync(
  hook,
  `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (!result.url.startsWith('node:')) appendFileSync(process.env.IMPORT_LOG, result.url + '\\\\n');
  return result;
}\`));
`,
);

/** Runs `rekey ARGS`; returns its exit code, stdout and every module it imported. */
async function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string; imported: string[] }> {
  const log = join(dir, `imports-${args.join('-').replace(/\W+/g, '_')}-${Date.now()}.log`);
  writeFileSync(log, '');
  const child = spawn(process.execPath, ['--import', hook, ...childArgs('src/cli/main.ts'), ...args], { env: { PATH: process.env.PATH, ...env, IMPORT_LOG: log } });
  killOnExit(child);
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => (out.stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out.stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, ...out, imported: [...new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean))] };
}

/** The provider folders and the packages of state and transport a module list touches. */
function heavy(imported: string[]): string[] {
  const found = imported.flatMap((url) => {
    const provider = /\/providers\/([^/]+)\//.exec(url)?.[1];
    if (provider) return [`providers/${provider}`];
    const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
    return pkg && /^(@aws-sdk\/.*|@google-cloud\/.*|@grpc\/.*|@kubernetes\/.*|bullmq|ioredis|@prisma\/.*|pg|fastify|zod|pino)$/.test(pkg) ? [pkg] : [];
  });
  return [...new Set(found)].sort();
}

describe('commands that need no provider import none', () => {
  it('keygen, scan and --help load no provider, no SDK, no database or queue client', async () => {
    const env = join(dir, 'app.env');
    writeFileSync(env, 'NOTHING=here\n');
    for (const args of [['keygen'], ['scan', env], ['--help']]) {
      const result = await run(args);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(result.imported.some((url) => /\/src\/cli\/main\.[jt]s$/.test(url))).toBe(true); // the hook saw the CLI itself
      expect({ args, heavy: heavy(result.imported) }).toEqual({ args, heavy: [] });
    }
  });

  it('config schema lists every provider type, and imports none (it prints the schema built ahead)', async () => {
    const result = await run(['config', 'schema']);
    expect(result.code).toBe(0);
    expect(heavy(result.imported)).toEqual([]);
    const schema = JSON.parse(result.stdout) as { properties: { providers: { additionalProperties: { anyOf: Array<{ properties: { type: { const: string } } }> } } } };
    expect(schema.properties.providers.additionalProperties.anyOf.map((entry) => entry.properties.type.const).sort()).toEqual([...providers.types].sort());
  });
});

describe('started by its path', () => {
  it('runs through a symlink in a directory with a space in its name (Node names the module by its real, percent-encoded path)', async () => {
    const linked = join(dir, 'a checkout', 'main.js');
    mkdirSync(dirname(linked));
    symlinkSync(childArgs('src/cli/main.ts')[0]!, linked);
    const child = spawn(process.execPath, [linked, 'keygen'], { env: { PATH: process.env.PATH } });
    killOnExit(child);
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    expect(await new Promise<number | null>((resolve) => child.once('close', resolve))).toBe(0);
    expect(stdout).toMatch(/^rk_\w+\n$/);
  });
});

describe('commands on an applied config import only the providers they use', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ label: 'cli-start', workers: false });
    await h.apply(ONE_LOCAL_SECRET);
  });
  afterAll(() => h.stop());

  it('status reads the database and imports no provider; apply imports those its file names, no other', async () => {
    const status = await run(['status', 'k'], h.childEnv());
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^k\b/m);
    const providersOf = (imported: string[]) => heavy(imported).filter((name) => name.startsWith('providers/'));
    expect(providersOf(status.imported)).toEqual([]);
    expect(heavy(status.imported).filter((name) => /^@(aws-sdk|google-cloud|grpc|kubernetes)\//.test(name))).toEqual([]);

    const file = join(dir, 'haproxy.yaml');
    writeFileSync(file, 'providers:\n  vault: { type: local }\n  edge: { type: haproxy, runtimeApi: "tcp://127.0.0.1:9999", map: /etc/haproxy/keys.map }\nsecrets:\n  k:\n    store: { provider: vault }\n    issuer: { type: random }\n    targets: [edge]\n');
    const apply = await run(['apply', '-f', file, '--dry-run'], h.childEnv());
    expect(apply.stderr).toBe('');
    expect(apply.code).toBe(0);
    expect(providersOf(apply.imported)).toEqual(['providers/haproxy', 'providers/local', 'providers/random']);
  });
});
