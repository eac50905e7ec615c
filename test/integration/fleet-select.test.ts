/**
 * `rekey rotate` with a fleet selection that matches no active secret (src/cli/fleet.ts): a glob,
 * store or issuer that names nothing (a typo during an incident) fails with a message naming the
 * selection and exit 1, never a run, a job or a `fleet.started` event, dry run or not.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';

let h: Harness;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  h = await startHarness({ label: 'fleet-select', workers: false });
  env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix };
  await h.apply(`
providers:
  vault: { type: local }
secrets:
  payments-a: { store: { provider: vault }, issuer: { type: random } }
  payments-b: { store: { provider: vault }, issuer: { type: random } }
`);
});
afterAll(() => h.stop());

it.each([
  [['--selector', 'paymnts-*'], /no active secret matches --selector paymnts-\*/],
  [['--selector', 'payments-*', '--store', 'vaultt'], /no active secret matches --selector payments-\* --store vaultt/],
  [['--issuer', 'postgres-role', '--dry-run'], /no active secret matches --issuer postgres-role/],
])('rotate %j: selects nothing, says so, exit 1, nothing requested', async (args, message) => {
  const jobs = await h.runtime.queues.queues.rotations.count(); // the audit anchor's scheduler has one
  const result = await rekey(['rotate', ...args], env);
  expect(result.stderr).toMatch(message);
  expect(result.code).toBe(1);
  expect(await h.runtime.db.run.count()).toBe(0);
  expect(await h.runtime.db.auditEvent.count({ where: { action: { startsWith: 'fleet.' } } })).toBe(0);
  expect(await h.runtime.queues.queues.rotations.count()).toBe(jobs);
});

it('a selection that matches: the dry run lists the count and exits 0', async () => {
  const result = await rekey(['rotate', '--selector', 'payments-*', '--dry-run'], env);
  expect(result.code).toBe(0);
  expect(result.stdout).toContain('Fleet rotation: 2 secrets, 1 store(s), 0 target(s)');
  expect(result.stdout).toContain('Dry run: nothing rotated.');
});

it.each(['0s', '0.4ms'])('rotate --all --grace %s: an overlap that rounds to nothing is refused (exit 2), nothing requested', async (grace) => {
  const result = await rekey(['rotate', '--all', '--grace', grace], env);
  expect(result.stderr).toMatch(/--grace must be more than 0/);
  expect(result.code).toBe(2);
  expect(await h.runtime.db.run.count()).toBe(0);
});
