import { createHmac, createSecretKey } from 'node:crypto';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { jwtRefusalReason } from '../../../src/core/kit/jwt-errors.js';
import { verifyHs256 } from '../hs256.js';

const secret = Buffer.from('s'.repeat(43));
const key = createSecretKey(secret);
const options = { audience: 'rekey', requiredClaims: ['exp', 'iat'], maxTokenAge: 300 };
const now = () => Math.floor(Date.now() / 1000);
const sign = (claims: Record<string, unknown> = {}, k: Uint8Array = secret) =>
  new SignJWT({ sub: 'app:a', aud: 'rekey', iat: now(), exp: now() + 120, ...claims }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(k);
/** A token with any header, MACed with the key as a signer would. */
const withHeader = (header: object, payload: string) => {
  const h = Buffer.from(JSON.stringify(header)).toString('base64url');
  return `${h}.${payload}.${createHmac('sha256', secret).update(`${h}.${payload}`).digest('base64url')}`;
};
const reason = (token: string) => {
  try {
    verifyHs256(token, key, options);
    return 'accepted';
  } catch (error) {
    return jwtRefusalReason(error);
  }
};

describe('verifyHs256', () => {
  it('accepts what jose signs with the key, and checks the claims as jose does', async () => {
    expect(verifyHs256(await sign(), key, options)).toMatchObject({ sub: 'app:a', aud: 'rekey' });
    expect(reason(await sign({ aud: 'other' }))).toBe('claim aud');
    expect(reason(await sign({ exp: now() - 10 }))).toBe('expired');
  });

  it('refuses another key, a changed payload, a header that is not exactly HS256 or has crit, and malformed parts', async () => {
    const valid = await sign();
    const [header, payload, signature] = valid.split('.') as [string, string, string];
    expect(reason(await sign({}, Buffer.from('t'.repeat(43))))).toBe('signature');
    expect(reason(`${header}.${Buffer.from(JSON.stringify({ sub: 'app:admin', aud: 'rekey' })).toString('base64url')}.${signature}`)).toBe('signature');
    expect(reason(`${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`)).toBe('algorithm');
    expect(reason(withHeader({ alg: 'RS256' }, payload))).toBe('algorithm');
    expect(reason(withHeader({ alg: 'HS256', crit: ['b64'], b64: false }, payload))).toBe('malformed');
    expect(reason(withHeader({ alg: 'HS256', kid: 'any' }, payload))).toBe('accepted');
    expect(reason(`${header}.${payload}.${signature}!`)).toBe('malformed');
    expect(reason(`${header}.${payload}.${signature.slice(0, -2)}`)).toBe('signature');
    expect(reason(`${header}.${payload}`)).toBe('malformed');
  });
});
