/**
 * Trust boundary: a secret removed from the config keeps the bindings its live versions need.
 * When a provider it was bound to has changed since (here the target `edge` now writes to
 * another place), its leak is taken down through the provider as it was when the secret was
 * last applied, where its keys are, not through the provider as it is now.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';

let h: Harness;
const BEFORE = `bound-before-${randomUUID()}`;
const AFTER = `bound-after-${randomUUID()}`;

const config = (edgeJournal: string, secrets: string[]) => `
providers:
  mem: { type: memory, journal: ${BEFORE} }
  edge: { type: memory, journal: ${edgeJournal} }
secrets:
${secrets.map((name) => `  ${name}: { store: { provider: mem }, issuer: { provider: mem }, targets: [edge], retry: { attempts: 1, backoff: 10ms } }`).join('\n')}
`;

beforeAll(async () => {
  h = await startHarness({ label: 'removed-bound' });
});
afterAll(() => h.stop());

it("a leak of a removed secret's key is refused where the key is, through the provider as the secret was bound to it", async () => {
  await h.apply(config(BEFORE, ['gone', 'kept']));
  expect((await h.rotate('gone')).status).toBe('succeeded');
  const current = await h.runtime.db.version.findFirstOrThrow({ where: { secret: { name: 'gone' }, state: 'current' } });
  const accepted = () => journal(BEFORE).accepted.get('edge')?.has(current.fingerprint!) ?? false;
  expect(accepted()).toBe(true);

  // `edge` changes (a new place to write to) in the same apply that removes `gone`.
  await h.apply(config(AFTER, ['kept']));
  await h.runtime.resolver.config({ fresh: true }); // the workers see that revision now, not within a second
  expect((await h.runtime.engine.revoke('gone', current.number)).outcome).toBe('blocking');
  await expect.poll(async () => (await h.runtime.db.version.findUniqueOrThrow({ where: { id: current.id } })).state, { timeout: 20_000 }).toBe('revoked');
  expect(accepted(), "the leaked key is still accepted where it was deployed").toBe(false);
});
