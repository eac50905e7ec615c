import { compactVerify, exportJWK, generateKeyPair, importJWK } from 'jose';
import { ProviderError } from '../../src/core/errors.js';
import type { Call, IssuedRef, Issuer, JsonObject, VersionRef } from '../../src/core/ports.js';
import { SecretValue } from '../../src/core/secret-value.js';
import { jwtSignerFromValue, publicJwkFromState, type JwtSigner } from './jwks.js';
import type { JwtSigningKeyIssuerBinding } from './jwt-signing-key.schema.js';

/**
 * Mints a key pair per version with `kid` = the version id. The private JWK is the value
 * (it goes to the store); the public JWK is the issuer state (public, it goes to the JWKS).
 * There is no upstream: a version stops being trusted when its public key leaves the
 * published JWKS, which core controls by version state, so revoke is a no-op.
 */
export class JwtSigningKeyIssuer implements Issuer {
  private readonly signers = new WeakMap<SecretValue, JwtSigner>();

  constructor(
    private readonly provider: string,
    private readonly params: JwtSigningKeyIssuerBinding,
  ) {}

  async issue(version: VersionRef, _call: Call): Promise<{ value: SecretValue; state: JsonObject }> {
    const { alg } = this.params;
    const pair = await generateKeyPair(alg, {
      extractable: true,
      ...(alg === 'RS256' ? { modulusLength: this.params.modulusLength } : {}),
      ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
    });
    const meta = { kid: version.versionId, alg, use: 'sig' };
    const privateJwk = { ...(await exportJWK(pair.privateKey)), ...meta };
    const publicJwk = { ...(await exportJWK(pair.publicKey)), ...meta };
    return { value: SecretValue.of(JSON.stringify(privateJwk)), state: { kid: meta.kid, alg, publicJwk } };
  }

  /** The version's public JWK (kid = version id), for the server's JWKS. */
  publicKey(state: JsonObject): JsonObject | undefined {
    return publicJwkFromState(state);
  }

  /** Signs `payload` with the version's private key; header `{ alg, kid: version id, typ: JWT }`. */
  signJwt(version: IssuedRef, value: SecretValue, payload: JsonObject): Promise<string> {
    try {
      return this.signer(value).sign(payload);
    } catch (e) {
      return Promise.reject(new ProviderError('REKEY_ERR_INVALID', `secret ${version.secret} version ${version.versionId}: the value is not a private JWK`, { provider: this.provider, cause: e }));
    }
  }

  /** Signs a probe with the private key and checks it against the public key in the state. */
  async verify(version: IssuedRef, value: SecretValue, _call: Call): Promise<void> {
    const fail = (why: string, cause?: unknown) =>
      new ProviderError('REKEY_ERR_VERIFY_FAILED', `secret ${version.secret} version ${version.versionId}: ${why}`, {
        provider: this.provider,
        retryable: false,
        cause,
      });
    let signer: JwtSigner;
    try {
      signer = this.signer(value);
    } catch (e) {
      throw fail('the value is not a private JWK', e);
    }
    const publicJwk = publicJwkFromState(version.issuerState);
    if (!publicJwk || signer.kid !== version.versionId || publicJwk.kid !== version.versionId) {
      throw fail('kid does not match the version id');
    }
    const probe = await signer.sign({ probe: `rekey-probe:${version.versionId}` });
    try {
      await compactVerify(probe, await importJWK(publicJwk, signer.alg));
    } catch (error) {
      throw fail('the private key does not match the published public key', error);
    }
  }

  /** The value's signer, imported once per value object (the delivery cache hands the same one out). */
  private signer(value: SecretValue): JwtSigner {
    let signer = this.signers.get(value);
    if (!signer) {
      signer = jwtSignerFromValue(value);
      this.signers.set(value, signer);
    }
    return signer;
  }

  revoke(_version: IssuedRef, _call: Call): Promise<void> {
    return Promise.resolve();
  }
}
