/**
 * Two secrets whose http issuer hands both the same token (one account key on a SaaS that issues
 * one per account): their current versions share a fingerprint. A leak of that token is a leak
 * of both: each must be taken down, not whichever row the fingerprint lookup met first.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateKey } from '../../src/core/key-format.js';
import { SecretValue } from '../../src/core/secret-value.js';
import type { Harness } from '../support/harness.js';
import { startSharedAcme, type SharedAcme } from '../support/shared-acme.js';

const TOKEN_ENV = `ACME_ADMIN_TOKEN_SHARED_${process.pid}`;
let h: Harness;
let env: SharedAcme | undefined;

beforeAll(async () => {
  env = await startSharedAcme('leak-shared-value', TOKEN_ENV);
  h = env.h;
}, 60_000);
afterAll(() => env?.stop());

it('a leaked token two secrets share takes down the version of each', async () => {
  const shared = generateKey('rk_live_');
  for (const secret of ['acme-a', 'acme-b']) {
    env!.saas.issueNext(shared);
    expect((await h.rotate(secret, 60_000)).status).toBe('succeeded');
  }
  const { engine } = h.runtime;
  await engine.reportLeak({ source: 'cli', deliveryId: randomUUID(), fingerprint: engine.deps.fingerprint(SecretValue.of(shared)), receivedAt: new Date() });
  const versions = await h.runtime.db.version.findMany({ where: { number: 1 }, select: { compromisedAt: true, secret: { select: { name: true } } } });
  expect(Object.fromEntries(versions.map((v) => [v.secret.name, v.compromisedAt !== null]))).toEqual({ 'acme-a': true, 'acme-b': true });
  // One report per version, each with its own secret (the notices and the audit name both).
  const reports = await h.runtime.db.leakReport.findMany({ select: { outcome: true, secretId: true } });
  expect(reports.map((r) => r.outcome)).toEqual(['blocking', 'blocking']);
  expect(new Set(reports.map((r) => r.secretId)).size).toBe(2);
});
