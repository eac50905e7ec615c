// Without tokenReview, nothing tells rekey that a projected token's pod is gone: the token
// passes until its exp. maxTokenLifetimeSeconds bounds that: a token whose exp - iat is longer
// is refused ('token lifetime'), and so is one without iat. The default (86400) passes what a
// projected volume asks for (3607 s by default, expirationSeconds up to a day) and refuses the
// year-long tokens an API server gives when it extends a kubelet token (extended expiration),
// and any token minted by TokenRequest for longer than a day. Tokens in the exact shape
// kube-apiserver issues (fake/projected-token.ts), verified against the fake cluster's JWKS.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Authenticator } from '../../../src/core/ports.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { call } from '../../../test/conformance/refs.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import provider from '../index.js';
import { startFakeCluster, type FakeCluster } from './fake/kube-apiserver.js';

let cluster: FakeCluster;
beforeAll(async () => {
  cluster = await startFakeCluster();
});
afterAll(() => cluster?.close());

function authenticator(options: Record<string, unknown> = {}): Authenticator {
  const params = provider.bindings.authenticator!.parse({ issuer: cluster.url, serviceAccounts: ['payments/*'], insecure: true, ...options });
  return provider.open(provider.config.parse({}), testProviderContext('cluster')).authenticator!({ name: 'cluster', params });
}

const outcome = (auth: Authenticator, token: string) =>
  auth.authenticate(SecretValue.of(token), call()).then(
    (subject) => subject.id,
    (error: { code: string; message: string }) => `${error.code}: ${error.message}`,
  );

const YEAR = 365 * 24 * 3600;

it('defaults maxTokenLifetimeSeconds to a day', () => {
  expect(provider.bindings.authenticator!.parse({ issuer: 'https://k8s.example', serviceAccounts: ['a/b'] })).toMatchObject({ maxTokenLifetimeSeconds: 86_400 });
});

it('by default accepts projected tokens of up to a day, refuses a year-long (extended) one and one without iat', async () => {
  const auth = authenticator();
  // What the kubelet asks for by default (3607 s), and a projection's expirationSeconds of a day.
  expect(await outcome(auth, await cluster.issue('api-1'))).toBe('system:serviceaccount:payments:api');
  expect(await outcome(auth, await cluster.issue('api-1', { exp: 86_400 - 10 }))).toBe('system:serviceaccount:payments:api');
  // exp - iat = 86,401 s.
  expect(await outcome(auth, await cluster.issue('api-1', { exp: 86_400 - 9 }))).toBe('REKEY_ERR_DENIED: authenticator cluster: token lifetime');
  expect(await outcome(auth, await cluster.issue('api-1', { exp: YEAR }))).toBe('REKEY_ERR_DENIED: authenticator cluster: token lifetime');
  expect(await outcome(auth, await cluster.issue('api-1', { issued: null }))).toBe('REKEY_ERR_DENIED: authenticator cluster: token lifetime');
});

it('bounds exp - iat by the configured maxTokenLifetimeSeconds', async () => {
  const auth = authenticator({ maxTokenLifetimeSeconds: 3607 });
  // Issued 10 s ago, exp 3,597 s from now: the 3,607 s a projected volume asks for by default.
  expect(await outcome(auth, await cluster.issue('api-1', { exp: 3597 }))).toBe('system:serviceaccount:payments:api');
  expect(await outcome(auth, await cluster.issue('api-1', { exp: 3598 }))).toBe('REKEY_ERR_DENIED: authenticator cluster: token lifetime');
  expect(await outcome(auth, await cluster.issue('api-1', { exp: 7200 }))).toBe('REKEY_ERR_DENIED: authenticator cluster: token lifetime');
  // A cluster whose tokens live a year may still be allowed, explicitly.
  expect(await outcome(authenticator({ maxTokenLifetimeSeconds: YEAR + 60 }), await cluster.issue('api-1', { exp: YEAR }))).toBe('system:serviceaccount:payments:api');
});
