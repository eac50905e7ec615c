/**
 * hmac-key: random request-signing secrets (webhook and service-to-service HMAC keys), with a
 * verifier that accepts the current and previous versions during the overlap.
 */
import { defineProvider } from '../../src/core/provider.js';
import { HmacKeyIssuer } from './hmac-key.issuer.js';
import { hmacKeyConfig, hmacKeyIssuerBinding, type HmacKeyConfig, type HmacKeyIssuerBinding } from './hmac-key.schema.js';

export { createHmacVerifier, hmacDigest, signPayload, HMAC_SIGNATURE_HEADER } from './hmac-key.verifier.js';
export { storeReader } from './store-reader.js';
export type { HmacVerdict, HmacVerifier, HmacVerifierOptions } from './hmac-key.verifier.js';

export default defineProvider<HmacKeyConfig, never, HmacKeyIssuerBinding>({
  type: 'hmac-key',
  summary: 'Random HMAC request-signing secrets, verified against the current and previous versions',
  config: hmacKeyConfig,
  bindings: { issuer: hmacKeyIssuerBinding },
  open(_config, ctx) {
    return { issuer: ({ params }) => new HmacKeyIssuer(ctx.name, params) };
  },
});
