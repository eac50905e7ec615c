/**
 * A fleet rotation's --grace (src/cli/fleet.ts) against the tokens a signing key has signed: a
 * grant's token lives up to its ttl, and the config refuses a ttl longer than the key's grace (a
 * rotation would retire the key of tokens still live). --grace replaces that grace for the
 * fleet's rotations, so a shorter one than a selected key's token ttl is refused the same way,
 * naming the key and the grant, dry run or not, before anything is requested. The same for a
 * value grant's ttl against its secret's rotation.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';
import { appDelivery } from '../support/delivery.js';

let h: Harness;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  h = await startHarness({ label: 'rv-mass-fleet-grace', workers: false });
  env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix };
  await h.apply(appDelivery(`  payments-api-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_pay_ } }
  ledger-key: { store: { provider: vault }, issuer: { type: random, prefix: rk_led_ } }
`, `    ledger: { authenticator: app, subjects: ["app:*"], value: { secret: ledger-key, ttl: 5m } }
`));
}, 120_000);
afterAll(() => h?.stop());

it.each([[['--all', '--grace', '1m']], [['--all', '--grace', '4m', '--dry-run']], [['--selector', 'api-*', '--grace', '299s']]])(
  'rotate %j: shorter than the token ttl of a selected signing key: refused, naming it, nothing requested',
  async (args) => {
    const result = await rekey(['rotate', ...args], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/--grace .* is shorter than the ttl of tokens signed by api-signing \(grant mobile: 5m\)/);
    expect(await h.runtime.db.run.count()).toBe(0);
    expect(await h.runtime.db.auditEvent.count({ where: { action: { startsWith: 'fleet.' } } })).toBe(0);
  },
);

it.each([[['--all', '--grace', '1m']], [['--selector', 'ledger-*', '--grace', '4m', '--dry-run']]])(
  'rotate %j: shorter than the value ttl of a selected secret: refused, naming it, nothing requested',
  async (args) => {
    // A caller may keep a value its ttl (apply refuses a ttl longer than the secret's grace): --grace is held to the same rule.
    const result = await rekey(['rotate', ...args], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/--grace .* is shorter than the ttl of .*values of ledger-key \(grant ledger: 5m\)/);
    expect(await h.runtime.db.run.count()).toBe(0);
  },
);

it.each([[['--all', '--grace', '5m', '--dry-run']], [['--selector', 'payments-*', '--grace', '1m', '--dry-run']], [['--all', '--dry-run']]])('rotate %j: no selected key signs tokens longer than that: accepted', async (args) => {
  const result = await rekey(['rotate', ...args], env);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
});

it.each(['25d', '30d', '9999999999d'])('rotate --all --grace %s: longer than a run can hold (24 days) is refused at once (exit 2), nothing requested', async (grace) => {
  const result = await rekey(['rotate', '--all', '--grace', grace], env);
  expect(result.stderr).toMatch(/--grace must be at most 24d/);
  expect(result.code).toBe(2);
  expect(await h.runtime.db.run.count()).toBe(0);
  expect(await h.runtime.db.auditEvent.count({ where: { action: { startsWith: 'fleet.' } } })).toBe(0);
});
