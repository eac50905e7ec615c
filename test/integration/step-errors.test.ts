/**
 * A failing step never wedges a run and never carries a value (issue 12, item 3): an http
 * issuer that hands out a key with CR, LF and NUL in it, used in the verify header, makes
 * the runtime's header check fail quoting the whole key. The run must roll back (the key is
 * revoked at the API), and no part of the key may reach runs.error, deliveries, the logs or
 * `rekey status --json`. A run whose error bookkeeping cannot be written still rolls back.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Engine } from '../../src/core/engine.js';
import type { RunRecord, StateRepository } from '../../src/core/model.js';
import { acmeProviderYaml, startFakeSaas, type FakeSaas } from '../../providers/http/test/fake/saas-server.js';
import { rekey } from '../support/cli.js';
import { startHarness, type Harness } from '../support/harness.js';
import { journal } from '../support/memory-provider.js';

const TOKEN_ENV = `ACME_ADMIN_TOKEN_${process.pid}`;
const JOURNAL = `step-errors-${randomUUID()}`;
let h: Harness;
let saas: FakeSaas;

beforeAll(async () => {
  saas = await startFakeSaas();
  process.env[TOKEN_ENV] = saas.adminToken;
  h = await startHarness({ label: 'step-errors' });
  await h.apply(`
providers:
  mem: { type: memory, journal: ${JOURNAL} }
  edge: { type: memory, journal: ${JOURNAL} }
${acmeProviderYaml(saas, TOKEN_ENV)}
secrets:
  acme-key:
    store: { provider: mem }
    issuer: { provider: acme }
    targets: [edge]
    retry: { attempts: 2, backoff: 10ms }
  plain:
    store: { provider: mem }
    issuer: { type: random }
    targets: [edge]
    retry: { attempts: 1, backoff: 10ms }
env: { allow: [${TOKEN_ENV}] }
`);
});
afterAll(async () => {
  await h.stop();
  await saas.close();
  delete process.env[TOKEN_ENV];
});

it('a key with CR, LF and NUL used in a verify header: the run rolls back, and no part of the key is stored, logged or printed', async () => {
  const body = randomBytes(18).toString('hex');
  const key = `sk_live_${body}\r\nX-Injected: 1\u0000${body.slice(0, 8)}tail`;
  saas.issueNext(key);
  const run = await h.rotate('acme-key', 30_000);
  expect(run.status).toBe('rolled_back');
  expect(run.error).toMatch(/REKEY_ERR_INVALID \(acme\): .*verify: header Authorization of GET \/v1\/whoami is not valid once rendered/);
  // Rolled back: the key was revoked at the API, and the secret has no version but the failed one.
  expect([...saas.keys.values()].some((k) => k.key === key)).toBe(false);

  const fragments = [body, body.slice(0, 12), body.slice(-12), 'X-Injected', '\u0000'];
  const runs = await h.runtime.db.run.findMany({ select: { error: true } });
  const deliveries = await h.runtime.db.delivery.findMany({ select: { lastError: true } });
  const env = { DATABASE_URL: h.env.databaseUrl, REDIS_URL: h.env.redisUrl, REKEY_QUEUE_PREFIX: h.env.prefix };
  const status = await rekey(['status', 'acme-key', '--json'], env);
  expect(status.code).toBe(0);
  const places = { runs: JSON.stringify(runs), deliveries: JSON.stringify(deliveries), logs: h.logs.join('\n'), status: status.stdout + status.stderr };
  for (const [where, text] of Object.entries(places)) {
    for (const fragment of fragments) expect(text.includes(fragment), `${JSON.stringify(fragment)} in ${where}`).toBe(false);
  }
  // The next rotation is not stuck behind it.
  saas.issueNext(`sk_live_${randomBytes(18).toString('hex')}`);
  expect((await h.rotate('acme-key', 30_000)).status).toBe('succeeded');
});

it('a run whose error bookkeeping cannot be written still rolls back', async () => {
  journal(JOURNAL).fail('verify:edge', Infinity, false);
  const repo = h.runtime.engine.deps.repo;
  // The database refusing the error text (as it refused a NUL byte): every other write works.
  const refusing = Object.create(repo) as StateRepository;
  refusing.recordRunError = () => Promise.reject(new Error('invalid byte sequence for encoding "UTF8": 0x00'));
  const engine = new Engine({ ...h.runtime.engine.deps, repo: refusing });
  const { run } = (await engine.deps.repo.createRotationRun({ secret: 'plain', trigger: 'manual', idempotencyKey: `manual:${randomUUID()}`, graceMs: null, audit: { actor: 'test' } })) as { run: RunRecord };
  try {
    expect(await engine.driveRotation(run.id, { final: true })).toBe('rolled_back');
  } finally {
    journal(JOURNAL).reset();
  }
  const after = await repo.getRun(run.id);
  expect(after).toMatchObject({ status: 'rolled_back', error: expect.stringContaining('injected failure at verify:edge') as unknown });
  expect(h.logs.some((line) => line.includes('could not record the run error'))).toBe(true);
});
