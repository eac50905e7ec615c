/**
 * attestation-jwt: an authenticator for app attestation tokens, HS256 JWTs signed with a
 * secret shared with the attestation service, verified against the current and previous
 * versions of that secret, which rekey itself rotates.
 */
import { defineProvider } from '../../src/core/provider.js';
import { AttestationJwtAuthenticator } from './attestation-jwt.authenticator.js';
import { attestationJwtBinding, attestationJwtConfig, type AttestationJwtBinding, type AttestationJwtConfig } from './attestation-jwt.schema.js';

export default defineProvider<AttestationJwtConfig, never, never, never, AttestationJwtBinding>({
  type: 'attestation-jwt',
  summary: 'Authenticator of app attestation tokens: HS256 JWTs under a shared secret rekey rotates (current and previous versions)',
  config: attestationJwtConfig,
  bindings: { authenticator: attestationJwtBinding },
  open(_config, ctx) {
    return { authenticator: ({ name, params }) => new AttestationJwtAuthenticator(name, params, (secret, call, recheck) => ctx.liveValues(secret, call, recheck)) };
  },
});
