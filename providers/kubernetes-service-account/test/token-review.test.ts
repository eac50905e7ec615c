// The kubernetes-service-account authenticator with `tokenReview:` (token-review.ts): after the
// local signature check, @kubernetes/client-node's AuthenticationV1Api.createTokenReview asks a
// local fake kube-apiserver (fake/kube-apiserver.ts: discovery, JWKS and TokenReview v1 on
// the wire, bearer-authenticated) whether the token is still valid for rekey's audience.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { Authenticator } from '../../../src/core/ports.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { call } from '../../../test/conformance/refs.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import provider from '../index.js';
import { startFakeCluster, type FakeCluster } from './fake/kube-apiserver.js';

let cluster: FakeCluster;
let dir: string;

beforeAll(async () => {
  cluster = await startFakeCluster();
  dir = await mkdtemp(join(tmpdir(), 'rekey-tokenreview-'));
});
afterAll(async () => {
  await cluster?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  cluster.audienceUnaware = false;
  cluster.forbidden = false;
});

/** A kubeconfig for `server` with rekey's bearer token, as a pod's service account would give. */
async function kubeconfig(server: string, token = cluster.token): Promise<string> {
  const path = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    // Plain HTTP on loopback: client-node allows http:// only with TLS verification off.
    clusters: [{ name: 'fake', cluster: { server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'rekey', user: { token } }],
    contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'rekey' } }],
    'current-context': 'fake',
  };
  await writeFile(path, JSON.stringify(config), { mode: 0o600 });
  return path;
}

function authenticator(review: Record<string, unknown> | undefined): Authenticator {
  const params = provider.bindings.authenticator!.parse({ issuer: cluster.url, serviceAccounts: ['payments/*'], insecure: true, ...(review ? { tokenReview: review } : {}) });
  return provider.open(provider.config.parse({}), testProviderContext('cluster')).authenticator!({ name: 'cluster', params });
}

/** authenticate(), then the review it leaves to its caller (Subject.confirm), as rekey runs them. */
const outcome = (auth: Authenticator, token: string) =>
  auth
    .authenticate(SecretValue.of(token), call())
    .then(async (subject) => (await subject.confirm?.(call()), subject))
    .then(
      (subject) => ({ subject: subject.id }),
      (error: { code: string; message: string }) => ({ code: error.code, message: error.message }),
    );

it('accepts a token the API server authenticates for rekey, asking it with the audience and rekey\'s bearer token', async () => {
  const auth = authenticator({ kubeconfig: await kubeconfig(cluster.url) });
  const token = await cluster.issue('api-7d9f8c6b5-x2x4z');
  const before = cluster.reviews.length;
  expect(await outcome(auth, token)).toEqual({ subject: 'system:serviceaccount:payments:api' });
  expect(cluster.reviews.slice(before)).toEqual([{ token, audiences: ['rekey'] }]);
});

it("refuses a token whose pod was deleted: signature and expiry pass, the API server's review does not", async () => {
  const auth = authenticator({ kubeconfig: await kubeconfig(cluster.url) });
  const token = await cluster.issue('api-7d9f8c6b5-gone');
  expect(await outcome(auth, token)).toEqual({ subject: 'system:serviceaccount:payments:api' });
  cluster.deletePod('api-7d9f8c6b5-gone');
  expect(await outcome(auth, token)).toEqual({ code: 'REKEY_ERR_DENIED', message: 'authenticator cluster: token review' });
  // Without tokenReview the same token still passes: what the option is for.
  expect(await outcome(authenticator(undefined), token)).toEqual({ subject: 'system:serviceaccount:payments:api' });
});

it('refuses a review whose audiences do not include rekey\'s (an API server that ignored spec.audiences)', async () => {
  const auth = authenticator({ kubeconfig: await kubeconfig(cluster.url) });
  cluster.audienceUnaware = true;
  expect(await outcome(auth, await cluster.issue('api-1'))).toEqual({ code: 'REKEY_ERR_DENIED', message: 'authenticator cluster: token review audience' });
});

it('fails closed when the API server cannot be reached, refuses rekey\'s credentials or forbids the review', async () => {
  const token = await cluster.issue('api-2');
  const unreachable = authenticator({ kubeconfig: await kubeconfig('http://127.0.0.1:1'), timeoutMs: 2_000 });
  expect(await outcome(unreachable, token)).toEqual({ code: 'REKEY_ERR_UNAVAILABLE', message: 'authenticator cluster: token review: the API server could not be reached' });
  const badCredentials = authenticator({ kubeconfig: await kubeconfig(cluster.url, 'not-rekeys-token') });
  expect(await outcome(badCredentials, token)).toEqual({ code: 'REKEY_ERR_UNAVAILABLE', message: "authenticator cluster: token review: the API server did not accept rekey's credentials (401)" });
  cluster.forbidden = true;
  const auth = authenticator({ kubeconfig: await kubeconfig(cluster.url) });
  expect(await outcome(auth, token)).toMatchObject({ code: 'REKEY_ERR_UNAVAILABLE', message: expect.stringContaining('forbidden (403): rekey needs create on tokenreviews') as string });
});

it('asks the API server nothing for a token the local checks refuse', async () => {
  const auth = authenticator({ kubeconfig: await kubeconfig(cluster.url) });
  const before = cluster.reviews.length;
  expect(await outcome(auth, await cluster.issue('api-3', { exp: -60 }))).toEqual({ code: 'REKEY_ERR_DENIED', message: 'authenticator cluster: expired' });
  expect(await outcome(auth, await cluster.issue('batch-1', { namespace: 'batch' }))).toEqual({ code: 'REKEY_ERR_DENIED', message: 'authenticator cluster: service account' });
  expect(cluster.reviews.length).toBe(before);
});
