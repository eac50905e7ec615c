/**
 * oidc: an authenticator for any OpenID Connect issuer's JWTs (CI systems, cloud workload
 * identity, an identity provider's ID or access tokens), verified against the issuer's JWKS
 * found through its discovery document, with issuer, audience and claim rules.
 */
import { defineProvider } from '../../src/core/provider.js';
import { OidcAuthenticator } from './oidc.authenticator.js';
import { oidcBinding, oidcConfig, type OidcBinding, type OidcConfig } from './oidc.schema.js';

export default defineProvider<OidcConfig, never, never, never, OidcBinding>({
  type: 'oidc',
  summary: "Authenticator of OpenID Connect JWTs: the issuer's JWKS through its discovery document, with issuer, audience and claim rules",
  config: oidcConfig,
  bindings: { authenticator: oidcBinding },
  open() {
    return { authenticator: ({ name, params }) => new OidcAuthenticator(name, params) };
  },
});
