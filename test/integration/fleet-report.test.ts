/**
 * What a fleet rotation (src/cli/fleet.ts) reports when some of its rotations fail: the exit code
 * is 1 and each failed secret is named with its run and its error's code (text and --json), never
 * the error's text beyond the code, and never a value.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';

const GOOD = `fleet-report-good-${randomUUID()}`;
const BAD = `fleet-report-bad-${randomUUID()}`;
const good = journal(GOOD);
const bad = journal(BAD);
let h: Harness;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  h = await startHarness({ label: 'rv-mass-fleet-report' });
  env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix };
  const secret = (name: string, provider: string) => `  ${name}: { store: { provider: ${provider} }, issuer: { provider: ${provider} }, targets: [${provider}], retry: { attempts: 1, backoff: 10ms } }\n`;
  await h.apply(`
providers:
  good: { type: memory, journal: ${GOOD} }
  bad: { type: memory, journal: ${BAD} }
secrets:
${secret('rep-a', 'good')}${secret('rep-b', 'bad')}${secret('rep-c', 'good')}${secret('rep-d', 'bad')}`);
}, 120_000);

afterAll(async () => {
  await h?.stop();
});

it('names each failed secret with its run and error code, exits 1, and prints no value', async () => {
  bad.fail('verify:bad', Infinity, false); // the bad store's rotations roll back
  const text = await rekey(['rotate', '--selector', 'rep-*', '--store', 'bad'], env);
  expect(text.code).toBe(1);
  const runs = await h.runtime.db.run.findMany({ where: { trigger: 'fleet' }, select: { id: true, status: true, secret: { select: { name: true } } }, orderBy: { secret: { name: 'asc' } } });
  expect(runs.map((r) => [r.secret.name, r.status])).toEqual([
    ['rep-b', 'rolled_back'],
    ['rep-d', 'rolled_back'],
  ]);
  expect(text.stdout).toContain(`Fleet rotation: 2 secrets`);
  expect(text.stdout).toMatch(/: 0 rotated, 2 failed, in /);
  expect(text.stdout).toContain(`  rep-b: rolled_back REKEY_ERR_DENIED (run ${runs[0]!.id})`);
  expect(text.stdout).toContain(`  rep-d: rolled_back REKEY_ERR_DENIED (run ${runs[1]!.id})`);
  expect(text.stdout).not.toContain('injected failure'); // the error's code, not its text

  // --json: the same list, by secret.
  const json = await rekey(['rotate', '--all', '--json'], env);
  expect(json.code).toBe(1);
  const result = JSON.parse(json.stdout) as { done: number; failed: number; failures: Array<{ secret: string; runId: string; status: string; code: string }> };
  expect(result).toMatchObject({ done: 2, failed: 2 });
  expect(result.failures.map((f) => [f.secret, f.status, f.code])).toEqual([
    ['rep-b', 'rolled_back', 'REKEY_ERR_DENIED'],
    ['rep-d', 'rolled_back', 'REKEY_ERR_DENIED'],
  ]);

  const values = [...good.values(), ...bad.values(), ...good.deployedValues, ...bad.deployedValues];
  expect(values.length).toBeGreaterThan(0);
  for (const value of values) expect(text.stdout + text.stderr + json.stdout + json.stderr).not.toContain(value);
});
