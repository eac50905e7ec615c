/**
 * rekey.yaml's `delivery:` section (issue 17): apply refuses a grant whose token TTL exceeds
 * its signing key's grace, or whose value TTL exceeds its secret's grace, a grant naming an unknown authenticator or secret, and a reserved
 * claim; the plan shows authenticators and grants one by one.
 */
import { expect, it } from 'vitest';
import { parse } from 'yaml';
import { fromDocument, parseConfig } from '../../src/config/load.js';
import { computePlan, formatPlan } from '../../src/config/plan.js';
import { providers } from '../../src/registry.js';

const config = (grant: string) => `
providers:
  vault: { type: local }
secrets:
  app-attestation: { store: { provider: vault }, issuer: { type: hmac-key }, grace: 1h }
  api-signing: { store: { provider: vault }, issuer: { type: jwt-signing-key }, grace: 10m }
delivery:
  authenticators:
    app: { type: attestation-jwt, secret: app-attestation, audience: rekey }
  grants:
    mobile: ${grant}
`;

it('accepts a grant within the signing key grace and plans it entry by entry', async () => {
  const loaded = await parseConfig(config('{ authenticator: app, subjects: ["app:*"], token: { signingKey: api-signing, audience: api, ttl: 10m } }'), 'rekey.yaml', providers);
  expect(loaded.config.delivery?.grants.mobile).toMatchObject({ authenticator: 'app', token: { signingKey: 'api-signing', ttlMs: 600_000, audience: 'api' } });
  expect(loaded.config.delivery?.authenticators.app).toEqual(expect.objectContaining({ instance: '@attestation-jwt' }));
  const text = formatPlan(computePlan(loaded, [], undefined), 'rekey.yaml');
  expect(text).toContain('+ delivery.authenticators.app');
  expect(text).toContain('+ delivery.grants.mobile');
});

it('refuses a token TTL longer than the signing key grace', async () => {
  await expect(parseConfig(config('{ authenticator: app, subjects: ["*"], token: { signingKey: api-signing, audience: api, ttl: 11m } }'), 'rekey.yaml', providers)).rejects.toThrow(
    /delivery\.grants\.mobile\.token\.ttl.*ttl 11m is longer than the grace of api-signing \(10m\)/s,
  );
});

it('refuses unknown authenticators and signing keys, reserved claims and authenticator parameters it does not know', async () => {
  await expect(parseConfig(config('{ authenticator: nope, subjects: ["*"], token: { signingKey: missing, audience: api } }'), 'rekey.yaml', providers)).rejects.toThrow(
    /no authenticator named "nope"[\s\S]*no managed secret named "missing"/,
  );
  await expect(parseConfig(config('{ authenticator: app, subjects: ["*"], token: { signingKey: api-signing, audience: api, claims: { fixed: { sub: x } } } }'), 'rekey.yaml', providers)).rejects.toThrow(
    /rekey sets iss, sub/,
  );
  await expect(parseConfig(config('{ authenticator: app, subjects: ["*"], token: { signingKey: api-signing, audience: api } }').replace('audience: rekey }', 'audience: rekey, alg: none }'), 'rekey.yaml', providers)).rejects.toThrow(
    /delivery\.authenticators\.app/,
  );
});

it('accepts a value grant, refuses one naming no managed secret, and one with both token: and value: or neither', async () => {
  const loaded = await parseConfig(config('{ authenticator: app, subjects: ["app:*"], value: { secret: app-attestation, ttl: 2m } }'), 'rekey.yaml', providers);
  expect(loaded.config.delivery?.grants.mobile).toEqual({ name: 'mobile', authenticator: 'app', subjects: ['app:*'], value: { secret: 'app-attestation', ttlMs: 120_000 } });
  expect(loaded.config.delivery?.rateLimit).toEqual({ max: 120, windowMs: 60_000, streams: 100 });
  expect(formatPlan(computePlan(loaded, [], undefined), 'rekey.yaml')).toContain('+ delivery.grants.mobile');
  await expect(parseConfig(config('{ authenticator: app, subjects: ["*"], value: { secret: missing } }'), 'rekey.yaml', providers)).rejects.toThrow(/delivery\.grants\.mobile\.value\.secret.*no managed secret named "missing"/s);
  await expect(parseConfig(config('{ authenticator: app, subjects: ["*"], value: { secret: app-attestation }, token: { signingKey: api-signing, audience: api } }'), 'rekey.yaml', providers)).rejects.toThrow(/either token: or value:/);
  await expect(parseConfig(config('{ authenticator: app, subjects: ["*"] }'), 'rekey.yaml', providers)).rejects.toThrow(/either token: or value:/);
});

it('refuses a value TTL longer than its secret grace when a file is applied; a stored revision still loads', async () => {
  // A caller keeps a value up to its ttl; a rotation off the schedule (rekey rotate, a fleet) retires the old value when the grace ends.
  const longer = config('{ authenticator: app, subjects: ["*"], value: { secret: app-attestation, ttl: 2h } }');
  await expect(parseConfig(longer, 'rekey.yaml', providers)).rejects.toThrow(/delivery\.grants\.mobile\.value\.ttl: ttl 2h is longer than the grace of app-attestation \(1h\)/);
  await expect(parseConfig(config('{ authenticator: app, subjects: ["*"], value: { secret: app-attestation, ttl: 1h } }'), 'rekey.yaml', providers)).resolves.toBeDefined();
  // The default ttl (5m) against a grace shorter than it.
  await expect(parseConfig(config('{ authenticator: app, subjects: ["*"], value: { secret: api-signing } }').replace('grace: 10m', 'grace: 1m'), 'rekey.yaml', providers)).rejects.toThrow(/value\.ttl: ttl 5m is longer than the grace of api-signing \(1m\)/);
  // A revision applied before the check still loads in the workers: its rotations and leaks go on.
  await expect(fromDocument(parse(longer) as Record<string, unknown>, 'config revision 1', providers)).resolves.toHaveProperty(['config', 'delivery', 'grants', 'mobile', 'value', 'ttlMs'], 7_200_000);
});

it('refuses a token grant whose signing key is a secret whose issuer does not sign JWTs, at validation, naming the field', async () => {
  // app-attestation is an hmac-key: accepted here, every POST /v1/token of the grant would fail with REKEY_ERR_CONFIG.
  await expect(parseConfig(config('{ authenticator: app, subjects: ["*"], token: { signingKey: app-attestation, audience: api, ttl: 10m } }'), 'rekey.yaml', providers)).rejects.toThrow(
    /delivery\.grants\.mobile\.token\.signingKey: the issuer of app-attestation \(hmac-key\) does not sign JWTs/,
  );
  // A revision stored before the check still loads in the workers: its rotations and leaks go on.
  const stored = parse(config('{ authenticator: app, subjects: ["*"], token: { signingKey: app-attestation, audience: api, ttl: 10m } }')) as Record<string, unknown>;
  await expect(fromDocument(stored, 'config revision 1', providers)).resolves.toHaveProperty(['config', 'secrets', 'app-attestation']);
});
