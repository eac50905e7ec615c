// A subject over its rate limit costs the cluster's API server nothing: rekey runs the TokenReview
// only for a subject within its allowance (delivery.rateLimit). Before, the review ran first, so
// whoever held one valid token (copied out of a pod, or of a pod since deleted) made rekey send the
// API server one TokenReview per request, as fast as rekey admitted requests, each answered 429
// only afterwards. And a token the review refuses costs the subject nothing: the allowance is
// charged after the review, and a refused token is refused without another review until it
// expires. Before, the charge came first, so whoever held a deleted pod's token locked every live
// pod of its service account out (429) with requests that were all failed authentications.
// Through core's authenticate() (what POST /v1/token, GET /v1/secrets and GET /v1/events run),
// against the local fake kube-apiserver (fake/kube-apiserver.ts).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { authenticate, DeliveryError, type DeliveryDeps, type GrantSpec } from '../../../src/core/delivery.js';
import type { Authenticator } from '../../../src/core/ports.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { fakeDeliveryDeps } from '../../../test/support/delivery-deps.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import provider from '../index.js';
import { startFakeCluster, type FakeCluster } from './fake/kube-apiserver.js';

let cluster: FakeCluster;
let dir: string;

beforeAll(async () => {
  cluster = await startFakeCluster();
  dir = await mkdtemp(join(tmpdir(), 'rekey-tokenreview-limit-'));
});
afterAll(async () => {
  await cluster?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function reviewing(server = cluster.url): Promise<Authenticator> {
  const kubeconfig = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'fake', cluster: { server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'rekey', user: { token: cluster.token } }],
    contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'rekey' } }],
    'current-context': 'fake',
  };
  await writeFile(kubeconfig, JSON.stringify(config), { mode: 0o600 });
  const params = provider.bindings.authenticator!.parse({ issuer: cluster.url, serviceAccounts: ['payments/*'], insecure: true, tokenReview: { kubeconfig, timeoutMs: 2_000 } });
  return provider.open(provider.config.parse({}), testProviderContext('cluster')).authenticator!({ name: 'cluster', params });
}

const grants: GrantSpec[] = [{ name: 'payments', authenticator: 'cluster', subjects: ['system:serviceaccount:payments:*'], value: { secret: 'payments-api-key', ttlMs: 300_000 } }];

/** Core's deps with an allowance of `allowance` requests per subject. */
function deps(auth: Authenticator, allowance: number): DeliveryDeps {
  const used = new Map<string, number>();
  return fakeDeliveryDeps({
    authenticator: () => Promise.resolve(auth),
    admit: (key: string) => {
      used.set(key, (used.get(key) ?? 0) + 1);
      return used.get(key)! <= allowance;
    },
    within: (key: string) => (used.get(key) ?? 0) < allowance,
  }).deps;
}

const outcome = (d: DeliveryDeps, token: string) =>
  authenticate(d, grants, SecretValue.of(token)).then(
    (who) => who.subject.id,
    (error: unknown) => (error instanceof DeliveryError ? error.code : String(error)),
  );

it('a subject over its rate limit is refused without a TokenReview', async () => {
  const d = deps(await reviewing(), 2);
  const token = await cluster.issue('api-5c8d7f9b4-q7w2e');
  const before = cluster.reviews.length;
  const answers = [];
  for (let i = 0; i < 10; i++) answers.push(await outcome(d, token));
  expect(answers).toEqual([...Array<string>(2).fill('system:serviceaccount:payments:api'), ...Array<string>(8).fill('rate_limited')]);
  expect(cluster.reviews.length - before).toBe(2);
});

it('the review still decides for a subject within its limit: a deleted pod\'s token is refused, an unreachable API server is unavailable', async () => {
  const token = await cluster.issue('api-5c8d7f9b4-gone');
  const d = deps(await reviewing(), 100);
  expect(await outcome(d, token)).toBe('system:serviceaccount:payments:api');
  cluster.deletePod('api-5c8d7f9b4-gone');
  expect(await outcome(d, token)).toBe('unauthenticated');
  expect(await outcome(deps(await reviewing('http://127.0.0.1:1'), 100), await cluster.issue('api-5c8d7f9b4-r2d2x'))).toBe('unavailable');
});

it("a deleted pod's token, refused by the review, costs the service account's live pods nothing, and the API server one review", async () => {
  const d = deps(await reviewing(), 5);
  const stale = await cluster.issue('api-5c8d7f9b4-deleted');
  cluster.deletePod('api-5c8d7f9b4-deleted');
  const before = cluster.reviews.length;
  const answers = [];
  for (let i = 0; i < 10; i++) answers.push(await outcome(d, stale));
  expect(answers).toEqual(Array<string>(10).fill('unauthenticated'));
  expect(cluster.reviews.length - before).toBe(1);
  expect(await outcome(d, await cluster.issue('api-5c8d7f9b4-alive'))).toBe('system:serviceaccount:payments:api');
});
