import { readFileSync } from 'node:fs';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../../src/core/ports.js';
import { SecretValue } from '../../../src/core/secret-value.js';
import { issuerConformance } from '../../../test/conformance/issuer.js';
import { call, issued, newVersion } from '../../../test/conformance/refs.js';
import { testProviderContext } from '../../../test/support/provider-context.js';
import * as exported from '../index.js';
import jwtSigningKey, { buildJwks, jwtSignerFromValue } from '../index.js';

const open = (params: unknown = {}) =>
  jwtSigningKey.open(jwtSigningKey.config.parse({}), testProviderContext('jwt-signing-key')).issuer!({
    secret: 'session-tokens',
    params: jwtSigningKey.bindings.issuer!.parse(params),
  });

issuerConformance('jwt-signing-key', () => Promise.resolve({ issuer: open(), secret: 'session-tokens', unknownState: {} }), {
  revokeIsObservable: false,
});

async function mint(alg: string) {
  const issuer = open({ alg });
  const { ref } = newVersion('session-tokens');
  const { value, state } = await issuer.issue(ref, call());
  return { issuer, ref, value, state };
}

async function token(value: SecretValue): Promise<string> {
  return jwtSignerFromValue(value).sign({ sub: 'user-1', iss: 'https://auth.example.test', exp: Math.floor(Date.now() / 1000) + 300 });
}

const accepts = async (jwks: ReturnType<typeof buildJwks>, jwt: string) =>
  jwtVerify(jwt, createLocalJWKSet(jwks), { issuer: 'https://auth.example.test' }).then(
    () => true,
    (error: { code?: string }) => error.code ?? 'error',
  );

describe.each(['ES256', 'RS256', 'EdDSA'])('jwt-signing-key %s', (alg) => {
  it('publishes only public keys with kid = version id and verifies its own pair', async () => {
    const { issuer, ref, value, state } = await mint(alg);
    expect(state).toMatchObject({ kid: ref.versionId, alg });
    const jwks = buildJwks([state]);
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kid: ref.versionId, alg, use: 'sig' });
    expect(jwks.keys[0]).not.toHaveProperty('d');
    expect(JSON.stringify(state)).not.toContain((JSON.parse(value.reveal()) as { d: string }).d);
    await issuer.verify(issued(ref, state), value, call());
  });

  it('signJwt (node:crypto) mints tokens jose verifies against the published key, header { alg, kid, typ }', async () => {
    const { issuer, ref, value, state } = await mint(alg);
    const jwt = await issuer.signJwt!(issued(ref, state), value, { iss: 'https://auth.example.test', sub: 'user-1', exp: Math.floor(Date.now() / 1000) + 60 });
    const { payload, protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(buildJwks([state])), { issuer: 'https://auth.example.test', algorithms: [alg] });
    expect(protectedHeader).toEqual({ alg, kid: ref.versionId, typ: 'JWT' });
    expect(payload.sub).toBe('user-1');
    // Another version's key does not verify it.
    const other = await mint(alg);
    expect(await accepts(buildJwks([{ ...other.state, publicJwk: { ...(other.state.publicJwk as JsonObject), kid: ref.versionId } }]), jwt)).toBe('ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
    await expect(issuer.signJwt!(issued(ref, state), SecretValue.of('{"kty":"EC"}'), {})).rejects.toMatchObject({ code: 'REKEY_ERR_INVALID' });
  });
});

describe('jwt-signing-key rotation through the JWKS', () => {
  it('accepts current and previous kids during the overlap and rejects a retired kid', async () => {
    const previous = await mint('ES256');
    const current = await mint('ES256');
    const oldJwt = await token(previous.value);
    const newJwt = await token(current.value);

    const overlap = buildJwks([current.state, previous.state]);
    expect(await accepts(overlap, newJwt)).toBe(true);
    expect(await accepts(overlap, oldJwt)).toBe(true);

    // previous retired: the server publishes the current key only.
    const after = buildJwks([current.state]);
    expect(await accepts(after, newJwt)).toBe(true);
    expect(await accepts(after, oldJwt)).toBe('ERR_JWKS_NO_MATCHING_KEY');
  });

  it('fails verify when the value does not match the published key or the kid', async () => {
    const a = await mint('ES256');
    const b = await mint('ES256');
    const mismatched = await a.issuer.verify(issued(a.ref, b.state), a.value, call()).catch((e: unknown) => e);
    expect(mismatched).toMatchObject({ code: 'REKEY_ERR_VERIFY_FAILED' });
    const garbage = await a.issuer.verify(issued(a.ref, a.state), SecretValue.of('{"kty":"EC"}'), call()).catch((e: unknown) => e);
    expect(garbage).toMatchObject({ code: 'REKEY_ERR_VERIFY_FAILED' });
  });

  it('ignores foreign states, duplicates and private members in buildJwks', async () => {
    const a = await mint('EdDSA');
    const leaky: JsonObject = { publicJwk: { ...(a.state.publicJwk as JsonObject), d: 'private-part' } };
    const jwks = buildJwks([a.state, a.state, leaky, { keyId: 'AKIA...' }, {}]);
    expect(jwks.keys).toHaveLength(1);
    const stripped = buildJwks([leaky]).keys[0];
    expect(stripped).toMatchObject({ kid: a.ref.versionId });
    expect(stripped).not.toHaveProperty('d');
  });
});

it('the README names helpers this provider exports', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const called = [...readme.matchAll(/`(\w+)\(/g)].map((m) => m[1]!);
  const imported = [...readme.matchAll(/import \{([^}]+)\} from 'providers\/jwt-signing-key\/index\.js'/g)].flatMap((m) => m[1]!.split(',').map((name) => name.trim()));
  expect(called.length + imported.length).toBeGreaterThan(0);
  expect([...called, ...imported].filter((name) => !(name in exported))).toEqual([]);
});
