/**
 * jwt-signing-key: an asymmetric JWT signing key pair per version (kid = version id), the
 * private JWK in the store, the public JWK in the issuer state for the published JWKS.
 */
import { defineProvider } from '../../src/core/provider.js';
import { JwtSigningKeyIssuer } from './jwt-signing-key.issuer.js';
import {
  jwtSigningKeyConfig,
  jwtSigningKeyIssuerBinding,
  type JwtSigningKeyConfig,
  type JwtSigningKeyIssuerBinding,
} from './jwt-signing-key.schema.js';

export { buildJwks, jwtSignerFromValue, publicJwkFromState, type JwtSigner } from './jwks.js';
export { JWT_ALGORITHMS, type JwtAlgorithm } from './jwt-signing-key.schema.js';

export default defineProvider<JwtSigningKeyConfig, never, JwtSigningKeyIssuerBinding>({
  type: 'jwt-signing-key',
  summary: 'JWT signing key pairs (ES256, RS256, EdDSA) with kid = version id and a JWKS of current and previous keys',
  config: jwtSigningKeyConfig,
  bindings: { issuer: jwtSigningKeyIssuerBinding },
  signsJwt: true,
  open(_config, ctx) {
    return { issuer: ({ params }) => new JwtSigningKeyIssuer(ctx.name, params) };
  },
});
